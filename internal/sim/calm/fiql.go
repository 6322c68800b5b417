package calm

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// A filter is a parsed FIQL expression as Calm's list calls take it:
// ";" is AND, "," is OR (AND binds tighter), parentheses group, and a
// comparison is selector, operator, value. Values are percent-decoded, so
// a client escapes ";", ",", "(", ")" and anything else special as %XX.
//
// Operators: "==" (equals), "!=" (differs), "=cs=" (contains). An "=="
// or "!=" value holding unescaped regular-expression characters
// (* [ ] | ^ $ + ? { } \) is matched as an anchored regular expression,
// which is how calm-dsl asks for names case-insensitively
// (name==.*[w|W][e|E][b|B].*); escaped characters are always literal.
type filter interface {
	match(get func(attr string) string) bool
}

type andFilter []filter
type orFilter []filter

type comparison struct {
	attr  string
	op    string
	value string         // decoded
	re    *regexp.Regexp // set when the value is a pattern
}

func (f andFilter) match(get func(string) string) bool {
	for _, c := range f {
		if !c.match(get) {
			return false
		}
	}
	return true
}

func (f orFilter) match(get func(string) string) bool {
	for _, c := range f {
		if c.match(get) {
			return true
		}
	}
	return false
}

func (c *comparison) match(get func(string) string) bool {
	v := get(c.attr)
	switch c.op {
	case "==":
		return c.equal(v)
	case "!=":
		return !c.equal(v)
	case "=cs=":
		return strings.Contains(v, c.value)
	}
	return false
}

func (c *comparison) equal(v string) bool {
	if c.re != nil {
		return c.re.MatchString(v)
	}
	return v == c.value
}

// matchAll is the empty filter.
type matchAll struct{}

func (matchAll) match(func(string) string) bool { return true }

// parseFilter parses s, accepting only the selectors in attrs. The error
// says where and what went wrong; callers answer it with 400.
func parseFilter(s string, attrs map[string]bool) (filter, error) {
	if strings.TrimSpace(s) == "" {
		return matchAll{}, nil
	}
	p := &fiqlParser{s: s, attrs: attrs}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.s) {
		return nil, p.errorf("unexpected %q", p.s[p.pos])
	}
	return f, nil
}

type fiqlParser struct {
	s     string
	pos   int
	attrs map[string]bool
}

func (p *fiqlParser) errorf(format string, a ...any) error {
	return fmt.Errorf("invalid filter %q at offset %d: %s", p.s, p.pos, fmt.Sprintf(format, a...))
}

func (p *fiqlParser) or() (filter, error) {
	var kids orFilter
	for {
		f, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, f)
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		break
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return kids, nil
}

func (p *fiqlParser) and() (filter, error) {
	var kids andFilter
	for {
		f, err := p.term()
		if err != nil {
			return nil, err
		}
		kids = append(kids, f)
		if p.pos < len(p.s) && p.s[p.pos] == ';' {
			p.pos++
			continue
		}
		break
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return kids, nil
}

func (p *fiqlParser) term() (filter, error) {
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		p.pos++
		f, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			return nil, p.errorf("missing )")
		}
		p.pos++
		return f, nil
	}
	return p.comparison()
}

func isSelectorByte(b byte) bool {
	return b == '_' || b == '.' || b == '-' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

func (p *fiqlParser) comparison() (filter, error) {
	start := p.pos
	for p.pos < len(p.s) && isSelectorByte(p.s[p.pos]) {
		p.pos++
	}
	attr := p.s[start:p.pos]
	if attr == "" {
		if p.pos >= len(p.s) {
			return nil, p.errorf("expected a comparison, found the end")
		}
		return nil, p.errorf("expected a selector, found %q", p.s[p.pos])
	}
	if !p.attrs[attr] {
		p.pos = start
		return nil, p.errorf("unknown attribute %q (filterable: %s)", attr, strings.Join(sortedKeys(p.attrs), ", "))
	}
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	vstart := p.pos
	for p.pos < len(p.s) && !strings.ContainsRune(";,)", rune(p.s[p.pos])) {
		if p.s[p.pos] == '(' {
			return nil, p.errorf("unescaped ( in the value of %s (escape it as %%28)", attr)
		}
		p.pos++
	}
	raw := p.s[vstart:p.pos]
	if raw == "" {
		return nil, p.errorf("empty value for %s", attr)
	}
	c := &comparison{attr: attr, op: op}
	value, err := url.PathUnescape(raw)
	if err != nil {
		p.pos = vstart
		return nil, p.errorf("bad percent-escape in the value of %s", attr)
	}
	c.value = value
	if op != "=cs=" && strings.ContainsAny(raw, `*[]|^$+?{}\`) {
		re, err := compilePattern(raw)
		if err != nil {
			p.pos = vstart
			return nil, p.errorf("the value of %s is not a valid pattern: %v", attr, err)
		}
		c.re = re
	}
	return c, nil
}

func (p *fiqlParser) operator() (string, error) {
	rest := p.s[p.pos:]
	switch {
	case strings.HasPrefix(rest, "=="):
		p.pos += 2
		return "==", nil
	case strings.HasPrefix(rest, "!="):
		p.pos += 2
		return "!=", nil
	case strings.HasPrefix(rest, "="):
		end := strings.IndexByte(rest[1:], '=')
		if end >= 0 {
			op := rest[:end+2]
			if op == "=cs=" {
				p.pos += len(op)
				return op, nil
			}
			return "", p.errorf("unsupported operator %s (supported: ==, !=, =cs=)", op)
		}
	}
	return "", p.errorf("expected an operator (==, !=, =cs=)")
}

// compilePattern turns a raw FIQL value into an anchored regular
// expression; percent-escaped characters match themselves.
func compilePattern(raw string) (*regexp.Regexp, error) {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' {
			if i+2 >= len(raw) {
				return nil, fmt.Errorf("truncated percent-escape")
			}
			s, err := url.PathUnescape(raw[i : i+3])
			if err != nil {
				return nil, err
			}
			b.WriteString(regexp.QuoteMeta(s))
			i += 2
			continue
		}
		b.WriteByte(raw[i])
	}
	return regexp.Compile("^(?:" + b.String() + ")$")
}
