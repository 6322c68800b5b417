package infoblox

import (
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// queryArgs is a request's query string, split the way WAPI splits it:
// arguments (leading '_'), search fields (name, name~, *EA:) and, on a
// function call, the function's parameters.
type queryArgs struct {
	returnFields     []string
	returnFieldsPlus []string
	hasReturnFields  bool
	maxResults       int
	maxResultsSet    bool
	paging           bool
	pageID           string
	asObject         bool
	pretty           bool
	function         string
	schema           bool
	params           map[string][]string // non-argument keys, in arrival order per key
	paramOrder       []string
}

var knownArgs = map[string]bool{
	"_return_fields": true, "_return_fields+": true, "_max_results": true,
	"_paging": true, "_page_id": true, "_return_as_object": true,
	"_return_type": true, "_proxy_search": true, "_function": true,
	"_schema": true, "_schema_version": true, "_inheritance": true,
}

// parseQuery reads a raw query string. Keys are decoded with '+' as a
// space (Go and Python clients encode spaces that way, e.g. "*Terraform+Internal+ID"),
// except the literal argument "_return_fields+".
func parseQuery(raw string) (*queryArgs, *wapiError) {
	q := &queryArgs{maxResults: -1000, params: map[string][]string{}}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		var key string
		if rawKey == "_return_fields+" {
			key = rawKey
		} else {
			k, err := url.QueryUnescape(rawKey)
			if err != nil {
				return nil, errProto("Invalid argument encoding: %s", rawKey)
			}
			key = k
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, errProto("Invalid value encoding for argument %s", key)
		}
		if strings.HasPrefix(key, "_") {
			if !knownArgs[key] {
				return nil, errProto("Unknown argument/field: '%s'", key)
			}
			if err := q.setArg(key, val); err != nil {
				return nil, err
			}
			continue
		}
		if _, seen := q.params[key]; !seen {
			q.paramOrder = append(q.paramOrder, key)
		}
		q.params[key] = append(q.params[key], val)
	}
	return q, nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (q *queryArgs) setArg(key, val string) *wapiError {
	switch key {
	case "_return_fields":
		q.returnFields = append(q.returnFields, splitList(val)...)
		q.hasReturnFields = true
	case "_return_fields+":
		q.returnFieldsPlus = append(q.returnFieldsPlus, splitList(val)...)
		q.hasReturnFields = true
	case "_max_results":
		n, err := strconv.Atoi(val)
		if err != nil || n == 0 {
			return errProto("Invalid value for _max_results: %s", val)
		}
		q.maxResults, q.maxResultsSet = n, true
	case "_paging":
		q.paging = val == "1"
	case "_page_id":
		q.pageID = val
	case "_return_as_object":
		q.asObject = val == "1"
	case "_return_type":
		switch val {
		case "json":
		case "json-pretty":
			q.pretty = true
		default:
			return errProto("Unsupported _return_type %s: this grid answers json and json-pretty only", val)
		}
	case "_function":
		q.function = val
	case "_schema":
		q.schema = true
	}
	return nil
}

// filter is one search condition: a field (or *extensible attribute), its
// modifiers and the values it accepts (repeating a key ORs its values).
type filter struct {
	field   string
	ea      bool
	negate  bool
	icase   bool
	regex   bool
	le, ge  bool
	values  []string
	regexps []*regexp.Regexp
}

// filters turns the search keys of q into conditions valid for spec.
func (q *queryArgs) filters(spec *objectSpec) ([]*filter, *wapiError) {
	var out []*filter
	for _, key := range q.paramOrder {
		name := strings.TrimRight(key, "!:~<>")
		mods := key[len(name):]
		f := &filter{field: name, values: q.params[key]}
		if strings.HasPrefix(name, "*") {
			if !spec.ea {
				return nil, errProto("Unknown argument/field: '%s'", key)
			}
			f.ea, f.field = true, name[1:]
		} else {
			fs, ok := spec.field(name)
			if !ok {
				return nil, errProto("Unknown argument/field: '%s'", name)
			}
			if fs.search == "" {
				return nil, errProto("Field is not searchable: %s", name)
			}
			for _, m := range mods {
				if m != '!' && !strings.ContainsRune(fs.search, m) {
					return nil, errProto("Search modifier '%c' is not allowed for field %s", m, name)
				}
			}
		}
		for _, m := range mods {
			switch m {
			case '!':
				f.negate = true
			case ':':
				f.icase = true
			case '~':
				f.regex = true
			case '<':
				f.le = true
			case '>':
				f.ge = true
			}
		}
		if f.regex {
			for _, v := range f.values {
				expr := v
				if f.icase {
					expr = "(?i)" + expr
				}
				re, err := regexp.Compile(expr)
				if err != nil {
					return nil, errProto("Invalid regular expression for %s: %s", key, v)
				}
				f.regexps = append(f.regexps, re)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// match reports whether o satisfies f.
func (st *store) match(f *filter, o object) bool {
	if f.field == "contains_address" && !f.ea {
		n, ok := o.(*network)
		hit := false
		for _, v := range f.values {
			if a, err := netip.ParseAddr(v); ok && err == nil && n.prefix().Contains(a) {
				hit = true
			}
		}
		return hit != f.negate
	}
	var have []string
	if f.ea {
		v, ok := o.base().ExtAttrs[f.field]
		if !ok {
			return f.negate
		}
		have = eaStrings(v)
	} else {
		have = st.searchValues(o, f.field)
	}
	hit := false
	for _, h := range have {
		for i, want := range f.values {
			if f.valueMatches(h, want, i) {
				hit = true
			}
		}
	}
	return hit != f.negate
}

func (f *filter) valueMatches(have, want string, i int) bool {
	switch {
	case f.regex:
		return f.regexps[i].MatchString(have)
	case f.le || f.ge:
		h, ok1 := orderKey(have)
		w, ok2 := orderKey(want)
		if !ok1 || !ok2 {
			return false
		}
		if f.le && h <= w {
			return true
		}
		return f.ge && h >= w
	case f.icase:
		return strings.EqualFold(have, want)
	default:
		if hp, err := netip.ParsePrefix(have); err == nil {
			if wp, err := netip.ParsePrefix(want); err == nil {
				return hp == wp
			}
		}
		if strings.EqualFold(want, "true") || strings.EqualFold(want, "false") {
			return strings.EqualFold(have, want)
		}
		return have == want
	}
}

// orderKey makes addresses and networks comparable for '<' and '>'.
func orderKey(s string) (uint32, bool) {
	if u, ok := parseIPv4(s); ok {
		return u, true
	}
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
		return ip4(p.Addr()), true
	}
	return 0, false
}

// fieldSet is the list of fields to return for spec under q.
func (q *queryArgs) fieldSet(spec *objectSpec) ([]string, *wapiError) {
	var fields []string
	switch {
	case len(q.returnFields) > 0 || (q.hasReturnFields && len(q.returnFieldsPlus) == 0):
		fields = append(fields, q.returnFields...)
		fields = append(fields, q.returnFieldsPlus...)
	default:
		fields = append(spec.defaults(), q.returnFieldsPlus...)
	}
	for _, f := range fields {
		fs, ok := spec.field(f)
		if f == "extattrs" && spec.ea {
			continue
		}
		if !ok || fs.searchOnly || (f == "extattrs" && !spec.ea) {
			return nil, errProto("Unknown argument/field: '%s'", f)
		}
	}
	sort.Strings(fields)
	return fields, nil
}

// project keeps _ref and the requested fields of a rendered object.
func project(full map[string]any, fields []string) map[string]any {
	out := map[string]any{"_ref": full["_ref"]}
	for _, f := range fields {
		if v, ok := full[f]; ok {
			out[f] = v
		}
	}
	return out
}
