package tfrun

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// redactedMark replaces every form of a secret value in what a run keeps.
const redactedMark = "(redacted)"

// shortSecret is the length (in characters) below which a secret is
// redacted only where it stands as a value of its own.
//
// Why: a run's log must never hold a secret in any form, whatever its
// length. A secret of 1–3 characters ("a", "ab", "x\"y") also occurs inside
// ordinary words ("Terraform", "abort"); replacing every such substring
// would turn the log into noise, and those occurrences are not the value
// (they say nothing about it an attacker could not guess from its length).
// So a short secret is replaced only where it is delimited as a value:
// where its first character, if a letter, digit or '_', does not follow
// another one (or an escape such as \n, \u0026), and likewise its last
// character. Quoted ("a"), assigned (= a), escaped (\"a\") and listed
// (a, b) occurrences are therefore all replaced, and a secret whose edges
// are punctuation ("<&>") is replaced everywhere. The first line of
// defence is elsewhere: secret inputs reach Terraform as sensitive
// variables (see writeSecretInputsOverride), so Terraform itself prints
// "(sensitive value)" and the plan JSON marks them for masking; redaction
// catches what a module deliberately unmarks (nonsensitive()) or puts in
// an error message.
const shortSecret = 4

// redactor finds every form of a run's secret values — raw, JSON-escaped
// (Go's encoding/json with and without HTML escaping, \u escapes of
// non-ASCII, lower and upper hex), quoted the way Terraform prints strings
// (%q, %+q, with HCL template escaping), escaped twice (a jsonencode()
// printed by Terraform, JSON inside JSON), URL- and base64-encoded, in NFC
// and NFD — and replaces it with redactedMark in one pass, so that a
// replacement is never matched again.
type redactor struct {
	first map[byte][]form // forms by their first byte, longest first
	hold  int             // bytes a stream keeps back: a form may be split across writes
}

// form is one encoding of one secret. before and after: the secret is
// short and its edge is a word character, so a match needs a boundary there.
type form struct {
	text          string
	before, after bool
}

func newRedactor(values []string) *redactor {
	r := &redactor{first: map[byte][]form{}}
	seen := map[string]bool{}
	var add func(v string)
	add = func(v string) {
		if strings.TrimSpace(v) == "" || seen[v] {
			return // a blank "secret" would blank the whole log, and hides nothing
		}
		seen[v] = true
		short := utf8.RuneCountInString(v) < shortSecret
		first, _ := utf8.DecodeRuneInString(v)
		last, _ := utf8.DecodeLastRuneInString(v)
		for _, text := range encodings(v) {
			f := form{text: text, before: short && isWordRune(first), after: short && isWordRune(last)}
			r.first[text[0]] = append(r.first[text[0]], f)
			if n := len(text) + utf8.UTFMax; n > r.hold {
				r.hold = n
			}
		}
		// Terraform prints a multi-line string as a heredoc, one indented
		// line at a time: each line is redacted on its own too.
		if strings.ContainsAny(v, "\r\n") {
			for _, line := range strings.FieldsFunc(v, func(c rune) bool { return c == '\n' || c == '\r' }) {
				add(strings.TrimSpace(line))
			}
		}
	}
	for _, v := range values {
		add(v)
	}
	for b := range r.first {
		fs := r.first[b]
		sort.SliceStable(fs, func(i, j int) bool { return len(fs[i].text) > len(fs[j].text) })
	}
	return r
}

// encodings is every form of v a log, plan or error message may hold.
func encodings(v string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) bool {
		if s == "" || seen[s] {
			return false
		}
		seen[s] = true
		out = append(out, s)
		return true
	}
	// Terraform normalises strings to NFC; a secret given in NFD comes back
	// composed (and the other way round for a decomposing consumer).
	for _, b := range []string{v, norm.NFC.String(v), norm.NFD.String(v)} {
		add(b)
		for _, esc := range escapers {
			add(esc(b))
		}
		add(url.QueryEscape(b))
		add(url.PathEscape(b))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			add(enc.EncodeToString([]byte(b)))
		}
	}
	// Escaped twice: a jsonencode()d value in Terraform's output, a JSON
	// document carried in a JSON string.
	once := len(out)
	for _, s := range out[:once] {
		for _, esc := range escapers {
			add(esc(s))
		}
	}
	return out
}

// escapers give the inside of a quoted string as each printer writes it:
// encoding/json (\u003c \u003e \u0026); JSON without HTML escaping
// (json.Encoder.SetEscapeHTML(false)); JSON in ASCII only (\u00e4), lower
// and upper hex; %q and %+q, as Terraform prints strings in plans and
// outputs; and %q with HCL's template sequences escaped ($${, %%{).
var escapers = []func(string) string{
	goJSON,
	jsonStyle{}.escape,
	jsonStyle{html: true, ascii: true}.escape,
	jsonStyle{ascii: true}.escape,
	jsonStyle{html: true, ascii: true, upper: true}.escape,
	jsonStyle{ascii: true, upper: true}.escape,
	func(s string) string { return unquote(strconv.Quote(s)) },
	func(s string) string { return unquote(strconv.QuoteToASCII(s)) },
	func(s string) string {
		return strings.NewReplacer("${", "$${", "%{", "%%{").Replace(unquote(strconv.Quote(s)))
	},
}

func goJSON(s string) string {
	b, _ := json.Marshal(s)
	return unquote(string(b))
}

func unquote(q string) string { return q[1 : len(q)-1] }

// jsonStyle is one way of writing a JSON string's inside.
type jsonStyle struct{ html, ascii, upper bool }

func (st jsonStyle) escape(s string) string {
	digits := "0123456789abcdef"
	if st.upper {
		digits = "0123456789ABCDEF"
	}
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(digits[r>>shift&0xf])
		}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			u(r)
		case st.html && (r == '<' || r == '>' || r == '&'):
			u(r)
		case r == utf8.RuneError && size == 1:
			u(utf8.RuneError)
		case r == '\u2028' || r == '\u2029':
			u(r)
		case st.ascii && r > unicode.MaxASCII:
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				u(r1)
				u(r2)
			} else {
				u(r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// boundaryBefore: what precedes a match (prefix) ends a token — a
// non-word character, or an escape (\n, \t, \u0026, \xc3) that stands for one.
func boundaryBefore(prefix string) bool {
	r, size := utf8.DecodeLastRuneInString(prefix)
	if size == 0 || !isWordRune(r) {
		return true
	}
	p := prefix[:len(prefix)-size]
	if strings.HasSuffix(p, `\`) && strings.ContainsRune("nrtbfv", r) {
		return true
	}
	for _, esc := range []struct {
		lead string
		n    int
	}{{`\u`, 4}, {`\U`, 8}, {`\x`, 2}} {
		if k := len(prefix) - esc.n - len(esc.lead); k >= 0 && prefix[k:k+len(esc.lead)] == esc.lead && isHex(prefix[k+len(esc.lead):]) {
			return true
		}
	}
	return false
}

// boundaryAfter: what follows a match (rest) starts a new token.
func boundaryAfter(rest string) bool {
	r, size := utf8.DecodeRuneInString(rest)
	return size == 0 || !isWordRune(r)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return false
		}
	}
	return true
}

// lookBehind is how much already-scanned text a stream keeps for boundaryBefore.
const lookBehind = 16

// scan redacts s, which follows prev (already scanned, kept for boundary
// checks). Unless final, it stops where a form could still continue in
// the next write, and says how much of s it consumed.
func (r *redactor) scan(prev, s string, final bool) (string, int) {
	buf := prev + s
	var out strings.Builder
	i := len(prev)
next:
	for i < len(buf) {
		if !final && len(buf)-i < r.hold {
			break
		}
		for _, f := range r.first[buf[i]] {
			if strings.HasPrefix(buf[i:], f.text) &&
				(!f.before || boundaryBefore(buf[:i])) && (!f.after || boundaryAfter(buf[i+len(f.text):])) {
				out.WriteString(redactedMark)
				i += len(f.text)
				continue next
			}
		}
		_, size := utf8.DecodeRuneInString(buf[i:])
		out.WriteString(buf[i : i+size])
		i += size
	}
	return out.String(), i - len(prev)
}

// clean redacts every form of every secret from a whole text.
func (r *redactor) clean(s string) string {
	out, _ := r.scan("", s, true)
	return out
}

// redactingStream writes one output stream of Terraform to the run's log,
// secrets removed. It keeps back the last few bytes of each write, so a
// secret split across two writes is still caught; flush writes them when
// the process has exited.
type redactingStream struct {
	run           *Run
	prev, pending string
}

func (w *redactingStream) Write(p []byte) (int, error) {
	w.pending += string(p)
	return len(p), w.emit(false)
}

func (w *redactingStream) flush() error { return w.emit(true) }

func (w *redactingStream) emit(final bool) error {
	out, n := w.run.redact.scan(w.prev, w.pending, final)
	w.prev += w.pending[:n]
	if len(w.prev) > lookBehind {
		w.prev = w.prev[len(w.prev)-lookBehind:]
	}
	w.pending = w.pending[n:]
	return w.run.writeLog(out)
}
