package infoblox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The extensible attributes sas puts on every object it creates. Defining
// them on the grid is a one-time step (EnsureTagDefinitions does it if the
// WAPI user may).
const (
	AttrOwner       = "SAS-Owner"
	AttrRequestID   = "SAS-Request-ID"
	AttrBundle      = "SAS-Bundle"
	AttrEnvironment = "SAS-Environment"
	AttrManaged     = "SAS-Managed"

	// AttrHeldFor is set on an address sas holds without DNS on behalf of
	// another resource (ReserveAddress): that resource's kind and name,
	// e.g. "calm_app sas-sbx/web-1". With SAS-Request-ID it lets the
	// request find, adopt and release its address after a crash.
	AttrHeldFor = "SAS-Held-For"

	// ManagedValue is AttrManaged's value (WAPI spells booleans "True").
	ManagedValue = "True"
	// TagPrefix is reserved: callers' own attributes may not start with it.
	TagPrefix = "SAS-"
)

// TagAttributeNames lists the attributes Tags renders, in a stable order.
func TagAttributeNames() []string {
	return []string{AttrOwner, AttrRequestID, AttrBundle, AttrEnvironment, AttrManaged}
}

// DefinedAttributeNames lists every SAS-* attribute sas may set, in a
// stable order: the tags, then AttrHeldFor. EnsureTagDefinitions defines them.
func DefinedAttributeNames() []string {
	return append(TagAttributeNames(), AttrHeldFor)
}

// Tags is who and what made an object: rendered as extensible attributes
// on every object sas creates.
type Tags struct {
	Owner       string // the requester (caller identity)
	RequestID   string // the gateway request / operation that created it
	Bundle      string // the policy bundle that allowed it
	Environment string // e.g. dev, prod
}

// Validate reports a missing tag: sas never creates an untagged object.
func (t Tags) Validate() error {
	var missing []string
	for name, v := range map[string]string{"owner": t.Owner, "request id": t.RequestID, "policy bundle": t.Bundle, "environment": t.Environment} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("infoblox: tags incomplete, missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Attributes renders t as extensible attribute values, including the
// SAS-Managed marker.
func (t Tags) Attributes() map[string]string {
	return map[string]string{
		AttrOwner:       t.Owner,
		AttrRequestID:   t.RequestID,
		AttrBundle:      t.Bundle,
		AttrEnvironment: t.Environment,
		AttrManaged:     ManagedValue,
	}
}

// TagsOf reads tags back from an object's attributes; managed reports
// whether the SAS-Managed marker is set.
func TagsOf(eas map[string]string) (t Tags, managed bool) {
	return Tags{Owner: eas[AttrOwner], RequestID: eas[AttrRequestID], Bundle: eas[AttrBundle],
		Environment: eas[AttrEnvironment]}, eas[AttrManaged] == ManagedValue
}

// DriftKind says how an attribute differs from what sas wrote.
type DriftKind string

const (
	DriftChanged DriftKind = "changed" // the attribute has another value
	DriftRemoved DriftKind = "removed" // the attribute is gone
	DriftMoved   DriftKind = "moved"   // the object's reference changed (renamed outside sas)
)

// Drift is one difference between an object and what sas expects of it.
type Drift struct {
	Field string // the extensible attribute name, or "_ref"
	Want  string
	Got   string // "" when removed
	Kind  DriftKind
}

func (d Drift) String() string {
	switch d.Kind {
	case DriftRemoved:
		return fmt.Sprintf("%s removed outside sas (want %q)", d.Field, d.Want)
	case DriftMoved:
		return fmt.Sprintf("reference changed outside sas: %s -> %s", d.Want, d.Got)
	default:
		return fmt.Sprintf("%s changed outside sas: want %q, got %q", d.Field, d.Want, d.Got)
	}
}

// CheckDrift compares host's sas attributes with want. Attributes sas
// does not own are not drift (people may add their own).
func CheckDrift(host Host, want Tags) []Drift {
	var out []Drift
	wantAttrs := want.Attributes()
	for _, name := range TagAttributeNames() {
		w := wantAttrs[name]
		got, ok := host.EAs[name]
		switch {
		case !ok:
			out = append(out, Drift{Field: name, Want: w, Kind: DriftRemoved})
		case got != w:
			out = append(out, Drift{Field: name, Want: w, Got: got, Kind: DriftChanged})
		}
	}
	return out
}

// ReadManagedHost reads the host sas created at ref and reports drift. If
// the reference no longer resolves (the host was renamed outside sas, which
// changes its reference) it looks the host up by its SAS-Request-ID and
// reports the move as drift. If the host is gone, the error satisfies
// IsNotFound: the resource is gone.
func (c *Client) ReadManagedHost(ctx context.Context, ref string, want Tags) (Host, []Drift, error) {
	h, err := c.GetHost(ctx, ref)
	if err == nil {
		return h, CheckDrift(h, want), nil
	}
	if !IsNotFound(err) || want.RequestID == "" {
		return Host{}, nil, err
	}
	hosts, ferr := c.FindHostsByEA(ctx, AttrRequestID, want.RequestID)
	if ferr != nil {
		return Host{}, nil, ferr
	}
	var managed []Host
	for _, h := range hosts {
		if h.EAs[AttrManaged] == ManagedValue {
			managed = append(managed, h)
		}
	}
	if len(managed) != 1 {
		return Host{}, nil, fmt.Errorf("infoblox: host %s is gone (deleted outside sas): %w", ref, err)
	}
	h = managed[0]
	return h, append([]Drift{{Field: "_ref", Want: ref, Got: h.Ref, Kind: DriftMoved}}, CheckDrift(h, want)...), nil
}

// EnsureTagDefinitions defines the SAS-* extensible attributes on the grid
// if they are missing (the grid refuses attributes nobody defined). It
// needs a WAPI user allowed to manage definitions; otherwise a grid admin
// defines them once, as STRING attributes.
func (c *Client) EnsureTagDefinitions(ctx context.Context) error {
	q := url.Values{"name~": {"^" + TagPrefix}, "_return_fields": {"name,type"}}
	var defs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := c.call(ctx, http.MethodGet, "extensibleattributedef", q, nil, &defs); err != nil {
		return fmt.Errorf("infoblox: list extensible attribute definitions: %w", err)
	}
	have := map[string]bool{}
	for _, d := range defs {
		have[d.Name] = true
	}
	for _, name := range DefinedAttributeNames() {
		if have[name] {
			continue
		}
		def := map[string]any{"name": name, "type": "STRING",
			"comment": "Set by sas on every object it creates; do not edit"}
		var ref string
		err := c.call(ctx, http.MethodPost, "extensibleattributedef", nil, def, &ref)
		if err != nil && !IsConflict(err) { // a concurrent caller defined it: fine
			return fmt.Errorf("infoblox: define extensible attribute %s (ask a grid admin to define the SAS-* attributes as STRING): %w", name, err)
		}
	}
	return nil
}

// isUndefinedTag reports whether err is the grid refusing one of the SAS-*
// attributes because it is not defined yet.
func isUndefinedTag(err error) bool {
	name, ok := undefinedEA(err)
	return ok && strings.HasPrefix(name, TagPrefix)
}

// undefinedEA returns the attribute the grid refused because nobody
// defined it ("Unknown extensible attribute: <name>").
func undefinedEA(err error) (string, bool) {
	var e *APIError
	if !errors.As(err, &e) || e.Code != CodeProto {
		return "", false
	}
	return strings.CutPrefix(e.Text, "Unknown extensible attribute: ")
}

// eaWire renders attribute values the way WAPI takes them.
func eaWire(attrs ...map[string]string) map[string]any {
	out := map[string]any{}
	for _, m := range attrs {
		for k, v := range m {
			out[k] = map[string]any{"value": v}
		}
	}
	return out
}

// eaValues reads WAPI extattrs into strings: numbers print as numbers,
// multi-value attributes are joined with commas.
func eaValues(raw map[string]struct {
	Value json.RawMessage `json:"value"`
}) map[string]string {
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		out[k] = eaString(v.Value)
	}
	return out
}

func eaString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = eaString(e)
		}
		return strings.Join(parts, ",")
	}
	return strings.TrimSpace(string(raw))
}

func checkOwnAttributes(eas map[string]string) error {
	for k := range eas {
		if strings.HasPrefix(k, TagPrefix) {
			return fmt.Errorf("infoblox: extensible attribute %s uses the reserved prefix %s; set Tags instead", k, TagPrefix)
		}
	}
	return nil
}
