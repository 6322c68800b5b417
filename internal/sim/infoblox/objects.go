package infoblox

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The stored objects. Field names follow WAPI; the JSON tags are the state
// file's format, not the wire format (rendering is explicit, below).

type objBase struct {
	Seq      uint64         `json:"seq"`
	ExtAttrs map[string]any `json:"extattrs,omitempty"` // name -> value (string, json.Number or []any)
}

func (b *objBase) base() *objBase { return b }

type object interface{ base() *objBase }

type networkView struct {
	objBase
	Name      string `json:"name"`
	IsDefault bool   `json:"is_default,omitempty"`
	Comment   string `json:"comment,omitempty"`
}

type dnsView struct {
	objBase
	Name        string `json:"name"`
	NetworkView string `json:"network_view"`
	IsDefault   bool   `json:"is_default,omitempty"`
	Comment     string `json:"comment,omitempty"`
}

type network struct {
	objBase
	Network     string `json:"network"` // canonical CIDR
	NetworkView string `json:"network_view"`
	Comment     string `json:"comment,omitempty"`
}

func (n *network) prefix() netip.Prefix { return netip.MustParsePrefix(n.Network) }

type fixedAddress struct {
	objBase
	IPv4Addr    string `json:"ipv4addr"`
	MAC         string `json:"mac,omitempty"`
	NetworkView string `json:"network_view"`
	Name        string `json:"name,omitempty"`
	Comment     string `json:"comment,omitempty"`
	MatchClient string `json:"match_client,omitempty"`
	Disable     bool   `json:"disable,omitempty"`
}

type hostAddr struct {
	Seq              uint64 `json:"seq"`
	IPv4Addr         string `json:"ipv4addr"`
	MAC              string `json:"mac,omitempty"`
	ConfigureForDHCP bool   `json:"configure_for_dhcp,omitempty"`
}

type hostRecord struct {
	objBase
	Name            string      `json:"name"`
	View            string      `json:"view"`
	NetworkView     string      `json:"network_view"`
	Addrs           []*hostAddr `json:"ipv4addrs"`
	Aliases         []string    `json:"aliases,omitempty"`
	Comment         string      `json:"comment,omitempty"`
	ConfigureForDNS bool        `json:"configure_for_dns"`
	Disable         bool        `json:"disable,omitempty"`
	UseTTL          bool        `json:"use_ttl,omitempty"`
	TTL             uint32      `json:"ttl,omitempty"`
}

func (h *hostRecord) clone() *hostRecord {
	c := *h
	c.ExtAttrs = cloneEAs(h.ExtAttrs)
	c.Aliases = append([]string(nil), h.Aliases...)
	c.Addrs = make([]*hostAddr, len(h.Addrs))
	for i, a := range h.Addrs {
		ac := *a
		c.Addrs[i] = &ac
	}
	return &c
}

// zone is the parent domain of the host name; the simulator does not keep
// authoritative zones, so this is derived rather than looked up.
func (h *hostRecord) zone() string {
	if i := strings.IndexByte(h.Name, '.'); i >= 0 {
		return h.Name[i+1:]
	}
	return ""
}

type eaDefinition struct {
	objBase
	Name               string   `json:"name"`
	Type               string   `json:"type"`
	Comment            string   `json:"comment,omitempty"`
	Flags              string   `json:"flags,omitempty"`
	ListValues         []string `json:"list_values,omitempty"`
	DefaultValue       string   `json:"default_value,omitempty"`
	AllowedObjectTypes []string `json:"allowed_object_types,omitempty"`
}

func cloneEAs(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// --- references ---------------------------------------------------------

// A reference is objtype/<base64 data>:<readable parts>. The base64 part
// identifies the object; like the appliance's, a host's encodes its view
// and name, so renaming a host changes its reference and the old one stops
// resolving. Everything after ':' is for humans and ignored on lookup.

func refData(kind string, seq uint64, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%s$%d$%s", kind, seq, key)))
}

// parseRefData returns the sequence number encoded in a reference's data.
func parseRefData(data string) (uint64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil {
		return 0, false
	}
	parts := strings.SplitN(string(raw), "$", 3)
	if len(parts) != 3 {
		return 0, false
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	return seq, err == nil
}

func refOf(o object) string {
	switch v := o.(type) {
	case *networkView:
		return fmt.Sprintf("networkview/%s:%s/%t", refData("dns.network_view", v.Seq, ""), v.Name, v.IsDefault)
	case *dnsView:
		return fmt.Sprintf("view/%s:%s/%t", refData("dns.view", v.Seq, ""), v.Name, v.IsDefault)
	case *network:
		return fmt.Sprintf("network/%s:%s/%s", refData("dns.network", v.Seq, ""), v.Network, v.NetworkView)
	case *fixedAddress:
		return fmt.Sprintf("fixedaddress/%s:%s/%s", refData("dns.fixed_address", v.Seq, ""), v.IPv4Addr, v.NetworkView)
	case *hostRecord:
		return fmt.Sprintf("record:host/%s:%s/%s", refData("dns.host", v.Seq, v.View+"."+strings.ToLower(v.Name)), v.Name, v.View)
	case *eaDefinition:
		return fmt.Sprintf("extensibleattributedef/%s:%s", refData("ea.definition", v.Seq, ""), v.Name)
	}
	panic(fmt.Sprintf("refOf: unexpected %T", o))
}

func hostAddrRef(h *hostRecord, a *hostAddr) string {
	return fmt.Sprintf("record:host_ipv4addr/%s:%s/%s/%s",
		refData("dns.host_address", a.Seq, a.IPv4Addr), a.IPv4Addr, h.Name, h.View)
}

// --- rendering ----------------------------------------------------------

func renderEAs(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = map[string]any{"value": v}
	}
	return out
}

func putIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// render returns every readable field of o in wire form. Optional fields
// that are not set are left out, as the appliance does.
func (st *store) render(o object) map[string]any {
	m := map[string]any{"_ref": refOf(o), "extattrs": renderEAs(o.base().ExtAttrs)}
	switch v := o.(type) {
	case *networkView:
		m["name"] = v.Name
		m["is_default"] = v.IsDefault
		putIf(m, "comment", v.Comment)
	case *dnsView:
		m["name"] = v.Name
		m["network_view"] = v.NetworkView
		m["is_default"] = v.IsDefault
		putIf(m, "comment", v.Comment)
	case *network:
		m["network"] = v.Network
		m["network_view"] = v.NetworkView
		putIf(m, "comment", v.Comment)
	case *fixedAddress:
		m["ipv4addr"] = v.IPv4Addr
		m["network_view"] = v.NetworkView
		putIf(m, "mac", v.MAC)
		putIf(m, "name", v.Name)
		putIf(m, "comment", v.Comment)
		m["match_client"] = v.MatchClient
		m["disable"] = v.Disable
		if n := st.networkContaining(v.NetworkView, v.IPv4Addr); n != nil {
			m["network"] = n.Network
		}
	case *hostRecord:
		addrs := make([]any, 0, len(v.Addrs))
		for _, a := range v.Addrs {
			am := map[string]any{
				"_ref":               hostAddrRef(v, a),
				"ipv4addr":           a.IPv4Addr,
				"host":               v.Name,
				"configure_for_dhcp": a.ConfigureForDHCP,
			}
			putIf(am, "mac", a.MAC)
			addrs = append(addrs, am)
		}
		m["name"] = v.Name
		m["view"] = v.View
		m["network_view"] = v.NetworkView
		m["ipv4addrs"] = addrs
		m["ipv6addrs"] = []any{}
		aliases := v.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		m["aliases"] = aliases
		putIf(m, "comment", v.Comment)
		m["configure_for_dns"] = v.ConfigureForDNS
		m["disable"] = v.Disable
		m["use_ttl"] = v.UseTTL
		if v.UseTTL {
			m["ttl"] = v.TTL
		}
		putIf(m, "zone", v.zone())
	case *eaDefinition:
		m["name"] = v.Name
		m["type"] = v.Type
		putIf(m, "comment", v.Comment)
		putIf(m, "flags", v.Flags)
		putIf(m, "default_value", v.DefaultValue)
		if len(v.ListValues) > 0 {
			lv := make([]any, len(v.ListValues))
			for i, s := range v.ListValues {
				lv[i] = map[string]any{"value": s}
			}
			m["list_values"] = lv
		}
		if len(v.AllowedObjectTypes) > 0 {
			m["allowed_object_types"] = v.AllowedObjectTypes
		}
		delete(m, "extattrs")
	}
	return m
}

// searchValues returns the values a search on field compares against.
func (st *store) searchValues(o object, field string) []string {
	switch v := o.(type) {
	case *networkView:
		switch field {
		case "name":
			return []string{v.Name}
		case "is_default":
			return []string{strconv.FormatBool(v.IsDefault)}
		case "comment":
			return []string{v.Comment}
		}
	case *dnsView:
		switch field {
		case "name":
			return []string{v.Name}
		case "network_view":
			return []string{v.NetworkView}
		case "is_default":
			return []string{strconv.FormatBool(v.IsDefault)}
		case "comment":
			return []string{v.Comment}
		}
	case *network:
		switch field {
		case "network":
			return []string{v.Network}
		case "network_view":
			return []string{v.NetworkView}
		case "comment":
			return []string{v.Comment}
		}
	case *fixedAddress:
		switch field {
		case "ipv4addr":
			return []string{v.IPv4Addr}
		case "mac":
			return []string{v.MAC}
		case "network_view":
			return []string{v.NetworkView}
		case "name":
			return []string{v.Name}
		case "comment":
			return []string{v.Comment}
		case "network":
			if n := st.networkContaining(v.NetworkView, v.IPv4Addr); n != nil {
				return []string{n.Network}
			}
			return nil
		}
	case *hostRecord:
		switch field {
		case "name":
			return []string{v.Name}
		case "view":
			return []string{v.View}
		case "network_view":
			return []string{v.NetworkView}
		case "comment":
			return []string{v.Comment}
		case "zone":
			return []string{v.zone()}
		case "aliases":
			return v.Aliases
		case "ipv4addr":
			out := make([]string, len(v.Addrs))
			for i, a := range v.Addrs {
				out[i] = a.IPv4Addr
			}
			return out
		case "mac":
			var out []string
			for _, a := range v.Addrs {
				if a.MAC != "" {
					out = append(out, a.MAC)
				}
			}
			return out
		}
	case *eaDefinition:
		switch field {
		case "name":
			return []string{v.Name}
		case "type":
			return []string{v.Type}
		case "comment":
			return []string{v.Comment}
		}
	}
	return nil
}

// eaStrings returns the string forms of an extensible attribute value.
func eaStrings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, eaStrings(e)...)
		}
		return out
	default:
		return []string{fmt.Sprint(x)}
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
