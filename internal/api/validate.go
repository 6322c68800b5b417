package api

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

var (
	reName       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	reLabel      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reModule     = regexp.MustCompile(`^[a-z0-9][a-z0-9_/-]{0,127}$`)
	reVersion    = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]{1,32})?$`)
	reVarName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	reTicket     = regexp.MustCompile(`^[A-Z]{2,6}[0-9]{4,10}$`)
	reID         = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	reProfile    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _-]{0,62}$`)
	maxVariables = 50
)

// fieldErrors collects errors; nil when empty.
type fieldErrors []FieldError

func (f *fieldErrors) add(path, format string, args ...any) {
	*f = append(*f, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &InvalidRequestError{Fields: f}
}

// The bodies validate themselves against the kinds table (kinds_table.go).

// Validate checks an IP reservation create; it lowercases hostname and dns_zone.
func (r *IPReservationRequest) Validate() error {
	return validateBody(KindIPReservation, ActionCreate, r)
}

// Validate checks an IP reservation update: only mutable fields, at least one.
func (r *IPReservationUpdate) Validate() error {
	return validateBody(KindIPReservation, ActionUpdate, r)
}

// Validate checks a delete's optional change ticket (every kind's delete body).
func (r *DeleteRequest) Validate() error { return validateBody(KindIPReservation, ActionDelete, r) }

// Validate checks a Calm app create.
func (r *CalmAppRequest) Validate() error { return validateBody(KindCalmApp, ActionCreate, r) }

// Validate checks a Calm app update.
func (r *CalmAppUpdate) Validate() error { return validateBody(KindCalmApp, ActionUpdate, r) }

// Validate checks a module run create.
func (r *ModuleRunRequest) Validate() error { return validateBody(KindModuleRun, ActionCreate, r) }

// Validate checks a module run update.
func (r *ModuleRunUpdate) Validate() error { return validateBody(KindModuleRun, ActionUpdate, r) }

// Validate checks a decision request's envelope; the embedded request is
// checked by DecodeKind.
func (r *DecisionRequest) Validate() error {
	var f fieldErrors
	checkEnum(&f, "/kind", r.Kind, Kinds)
	checkEnum(&f, "/action", r.Action, Actions)
	if r.TargetID != "" {
		checkPattern(&f, "/target_id", r.TargetID, reID, "a resource id")
	}
	if len(r.Request) == 0 && (r.Action == ActionCreate || r.Action == ActionUpdate) {
		f.add("/request", "required: the body the %s would carry", r.Action)
	}
	return f.err()
}

// ValidID reports whether s can be a resource or operation id — checked
// before an id from a URL path is looked up or recorded anywhere.
func ValidID(s string) bool { return reID.MatchString(s) }

// Quote renders a caller-sent value for an error message: quoted, with
// control and invisible characters escaped.
func Quote(s string) string { return quote(s) }

// Validator is a request body that can check itself.
type Validator interface{ Validate() error }

// NewRequestBody returns an empty body for kind and action (nil when the
// action has no body), for DecodeKind — from the kinds table.
func NewRequestBody(kind, action string) Validator {
	k, ok := KindByName(kind)
	if !ok {
		return nil
	}
	if b := k.BodyFor(action); b != nil {
		return b.New()
	}
	return nil
}

// DecodeKind strictly decodes and validates a body for kind and action,
// prefixing field paths with prefix (e.g. "/request" inside a decision).
func DecodeKind(kind, action string, body []byte, prefix string) (Validator, error) {
	v := NewRequestBody(kind, action)
	if v == nil {
		return nil, Invalid(prefix, "%s %s takes no request body", action, kind)
	}
	if err := DecodeStrict(body, v); err != nil {
		return nil, prefixed(err, prefix)
	}
	if err := v.Validate(); err != nil {
		return nil, prefixed(err, prefix)
	}
	return v, nil
}

// AsMap renders a decoded request as the generic document policies see.
func AsMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// InvalidFields is an *InvalidRequestError listing fields (a check's
// findings, such as a module run's inputs against the operator's catalog),
// their paths under prefix ("" or "/request" in a dry run); nil when
// fields is empty.
func InvalidFields(prefix string, fields []FieldError) error {
	if len(fields) == 0 {
		return nil
	}
	return prefixed(&InvalidRequestError{Fields: slices.Clone(fields)}, prefix)
}

func prefixed(err error, prefix string) error {
	ie, ok := err.(*InvalidRequestError)
	if !ok || prefix == "" {
		return err
	}
	out := &InvalidRequestError{Fields: make([]FieldError, len(ie.Fields))}
	for i, f := range ie.Fields {
		out.Fields[i] = FieldError{Path: prefix + f.Path, Message: f.Message}
	}
	return out
}

func checkPattern(f *fieldErrors, path, v string, re *regexp.Regexp, what string) {
	if !re.MatchString(v) {
		f.add(path, "%s is not %s", quote(v), what)
	}
}

func checkEnum(f *fieldErrors, path, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		f.add(path, "%s is not one of %s", quote(v), strings.Join(allowed, ", "))
	}
}

// checkNetwork accepts a CIDR in canonical form (the network address) or a
// network name; which ones are allowed is the bundle's decision.
func checkNetwork(f *fieldErrors, path, v string) {
	if v == "" {
		f.add(path, "required: a CIDR such as 10.10.0.0/24, or a network name from the bundle")
		return
	}
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			f.add(path, "%s is not a CIDR", quote(v))
			return
		}
		// IPv4 only, and in IPv4 notation: an IPv4-mapped IPv6 prefix
		// (::ffff:10.10.0.0/120) names the same addresses in a form the
		// policy's CIDR checks do not see as IPv4.
		if !p.Addr().Is4() {
			f.add(path, "%s is not an IPv4 network; write it as IPv4 (such as 10.10.0.0/24)", quote(v))
			return
		}
		if p.Masked() != p {
			f.add(path, "%s is not a network address; did you mean %s?", quote(v), p.Masked().String())
		}
		return
	}
	checkPattern(f, path, v, reName, "a CIDR or a network name")
}

func checkFQDN(f *fieldErrors, path, v string, required bool) {
	if v == "" {
		if required {
			f.add(path, "required: a DNS name such as sbx.example.internal")
		}
		return
	}
	if len(v) > 253 {
		f.add(path, "longer than 253 characters")
		return
	}
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		f.add(path, "%s is not a fully qualified DNS name", quote(v))
		return
	}
	for _, l := range labels {
		if !reLabel.MatchString(l) {
			f.add(path, "%s is not a valid DNS name (label %s)", quote(v), quote(l))
			return
		}
	}
}

// checkValueBytes refuses a map value larger than max bytes as JSON (0: no limit).
func checkValueBytes(f *fieldErrors, path string, max int, v reflect.Value) {
	if max <= 0 {
		return
	}
	if n := jsonSize(v); n > max {
		f.add(path, "is %d bytes as JSON; a value may be at most %s", n, byteSize(max))
	}
}

// checkSizeLimits refuses fields that together are larger than a limit
// allows, at the largest of them (what to shrink first).
func checkSizeLimits(f *fieldErrors, limits []SizeLimit, v reflect.Value) {
	for _, l := range limits {
		if slices.ContainsFunc(*f, func(e FieldError) bool {
			return slices.ContainsFunc(l.Fields, func(name string) bool { return strings.HasPrefix(e.Path, "/"+name+"/") })
		}) {
			continue // a value too large (or wrong) is named already: that is what to fix first
		}
		total, largest, largestSize := 0, "", -1
		for _, name := range l.Fields {
			fv := jsonField(v, name)
			if !fv.IsValid() {
				panic(fmt.Sprintf("api: size limit names %s, which is not a field", name))
			}
			if fv.Kind() == reflect.Pointer && fv.IsNil() || (fv.Kind() == reflect.Map || fv.Kind() == reflect.Slice) && fv.Len() == 0 {
				continue
			}
			n := jsonSize(fv)
			total += n
			if n > largestSize {
				largest, largestSize = name, n
			}
		}
		if total > l.MaxBytes {
			f.add("/"+largest, "%s come to %d bytes as JSON; together they may be at most %s", strings.Join(l.Fields, " and "), total, byteSize(l.MaxBytes))
		}
	}
}

// jsonSize is v's size serialized as JSON, as the gateway stores it.
func jsonSize(v reflect.Value) int {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return 0 // decoded from JSON: it marshals
	}
	return len(b)
}

// byteSize renders a limit in bytes, with KiB when whole ("4096 bytes (4 KiB)").
func byteSize(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d bytes (%d KiB)", n, n/1024)
	}
	return fmt.Sprintf("%d bytes", n)
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// quote shows a value in an error, cut short so an attacker cannot make
// errors (and logs) arbitrarily large.
func quote(v string) string {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return fmt.Sprintf("%q", v)
}
