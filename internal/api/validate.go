package api

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
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

// Validate checks every field of an IP reservation request.
func (r *IPReservationRequest) Validate() error {
	var f fieldErrors
	checkNetwork(&f, "/network", r.Network)
	r.Hostname = strings.ToLower(r.Hostname)
	checkRequired(&f, "/hostname", r.Hostname, reLabel, "a DNS label (lowercase letters, digits and '-', 1–63 characters)")
	r.DNSZone = strings.TrimSuffix(strings.ToLower(r.DNSZone), ".")
	checkFQDN(&f, "/dns_zone", r.DNSZone, true)
	if r.DNSView != "" {
		checkPattern(&f, "/dns_view", r.DNSView, reName, "a view name")
	}
	checkMAC(&f, "/mac", r.MAC)
	checkAliases(&f, "/aliases", r.Aliases)
	checkComment(&f, "/comment", r.Comment)
	checkTicket(&f, "/change_ticket", r.ChangeTicket)
	if len(r.Hostname)+1+len(r.DNSZone) > 253 {
		f.add("/hostname", "hostname.dns_zone is longer than 253 characters")
	}
	return f.err()
}

// Validate checks an IP reservation update: only mutable fields, at least one.
func (r *IPReservationUpdate) Validate() error {
	var f fieldErrors
	if r.MAC == nil && r.Aliases == nil && r.Comment == nil {
		f.add("", "nothing to update; send at least one of mac, aliases, comment")
	}
	if r.MAC != nil {
		checkMAC(&f, "/mac", *r.MAC)
	}
	if r.Aliases != nil {
		checkAliases(&f, "/aliases", *r.Aliases)
	}
	if r.Comment != nil {
		checkComment(&f, "/comment", *r.Comment)
	}
	checkTicket(&f, "/change_ticket", r.ChangeTicket)
	return f.err()
}

// Validate checks a delete's optional change ticket.
func (r *DeleteRequest) Validate() error {
	var f fieldErrors
	checkTicket(&f, "/change_ticket", r.ChangeTicket)
	return f.err()
}

// Validate checks every field of a Calm app request.
func (r *CalmAppRequest) Validate() error {
	var f fieldErrors
	checkRequired(&f, "/name", r.Name, reLabel, "a lowercase name (letters, digits and '-', 1–63 characters)")
	checkRequired(&f, "/blueprint", r.Blueprint, reName, "a blueprint name from the catalog")
	if r.Profile != "" {
		checkPattern(&f, "/profile", r.Profile, reProfile, "an app profile name")
	}
	if r.Project != "" {
		checkPattern(&f, "/project", r.Project, reName, "a project name")
	}
	checkNetwork(&f, "/network", r.Network)
	checkRange(&f, "/size/vcpus", r.Size.VCPUs, 1, 64)
	checkRange(&f, "/size/memory_gib", r.Size.MemoryGiB, 1, 1024)
	checkRange(&f, "/size/disk_gib", r.Size.DiskGiB, 1, 16384)
	if len(r.Variables) > maxVariables {
		f.add("/variables", "at most %d variables", maxVariables)
	}
	for k, v := range r.Variables {
		p := "/variables/" + escapePointer(k)
		if !reVarName.MatchString(k) {
			f.add(p, "variable names are letters, digits and '_', starting with a letter or '_'")
		}
		if len(v) > 1024 || !printable(v) {
			f.add(p, "values are printable text of at most 1024 characters")
		}
	}
	checkTicket(&f, "/change_ticket", r.ChangeTicket)
	return f.err()
}

// Validate checks every field of a module run request.
func (r *ModuleRunRequest) Validate() error {
	var f fieldErrors
	checkRequired(&f, "/module", r.Module, reModule, "a module name from the catalog")
	if r.Version != "" {
		checkPattern(&f, "/version", r.Version, reVersion, "a semantic version such as 1.2.3")
	}
	if len(r.Variables) > maxVariables {
		f.add("/variables", "at most %d variables", maxVariables)
	}
	for k := range r.Variables {
		if !reVarName.MatchString(k) {
			f.add("/variables/"+escapePointer(k), "variable names are letters, digits and '_', starting with a letter or '_'")
		}
	}
	checkTicket(&f, "/change_ticket", r.ChangeTicket)
	return f.err()
}

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
// action has no body), for DecodeKind.
func NewRequestBody(kind, action string) Validator {
	switch action {
	case ActionCreate:
		switch kind {
		case KindIPReservation:
			return &IPReservationRequest{}
		case KindCalmApp:
			return &CalmAppRequest{}
		case KindModuleRun:
			return &ModuleRunRequest{}
		}
	case ActionUpdate:
		if kind == KindIPReservation {
			return &IPReservationUpdate{}
		}
	case ActionDelete:
		if slices.Contains(Kinds, kind) {
			return &DeleteRequest{}
		}
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

func checkRequired(f *fieldErrors, path, v string, re *regexp.Regexp, what string) {
	if v == "" {
		f.add(path, "required: %s", what)
		return
	}
	checkPattern(f, path, v, re, what)
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

func checkRange(f *fieldErrors, path string, v, lo, hi int) {
	if v < lo || v > hi {
		f.add(path, "%d is outside %d–%d", v, lo, hi)
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

func checkMAC(f *fieldErrors, path, v string) {
	if v == "" {
		return
	}
	hw, err := net.ParseMAC(v)
	if err != nil || len(hw) != 6 {
		f.add(path, "%s is not a MAC address such as 00:50:56:aa:bb:cc", quote(v))
	}
}

func checkAliases(f *fieldErrors, path string, aliases []string) {
	if len(aliases) > 20 {
		f.add(path, "at most 20 aliases")
	}
	seen := map[string]bool{}
	for i, a := range aliases {
		p := fmt.Sprintf("%s/%d", path, i)
		checkFQDN(f, p, strings.ToLower(a), true)
		if seen[strings.ToLower(a)] {
			f.add(p, "duplicate alias")
		}
		seen[strings.ToLower(a)] = true
	}
}

func checkComment(f *fieldErrors, path, v string) {
	if len(v) > 256 || !printable(v) {
		f.add(path, "comments are printable text of at most 256 characters")
	}
}

func checkTicket(f *fieldErrors, path, v string) {
	if v != "" && !reTicket.MatchString(v) {
		f.add(path, "%s is not a change ticket id such as CHG0012345", quote(v))
	}
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
