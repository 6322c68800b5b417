package infoblox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// body is a decoded POST or PUT payload.
type body map[string]json.RawMessage

func decodeBody(raw []byte) (body, *wapiError) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return body{}, nil
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil || b == nil {
		return nil, errProto("Invalid JSON in request body: the body must be a JSON object")
	}
	return b, nil
}

func (b body) has(k string) bool { _, ok := b[k]; return ok }

func (b body) str(k string) (string, *wapiError) {
	raw, ok := b[k]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errProto("Invalid value for %s: %s is not a string", k, raw)
	}
	return s, nil
}

func (b body) boolean(k string) (bool, *wapiError) {
	raw, ok := b[k]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		// The appliance also takes the strings "true"/"false" here.
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if p, err := strconv.ParseBool(s); err == nil {
				return p, nil
			}
		}
		return false, errProto("Invalid value for %s: %s is not a boolean", k, raw)
	}
	return v, nil
}

func (b body) uint32(k string) (uint32, *wapiError) {
	raw, ok := b[k]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(raw), 10, 32)
	if err != nil {
		return 0, errProto("Invalid value for %s: %s is not an unsigned 32-bit integer", k, raw)
	}
	return uint32(n), nil
}

func (b body) strings(k string) ([]string, *wapiError) {
	raw, ok := b[k]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errProto("Invalid value for %s: expected a list of strings", k)
	}
	return v, nil
}

// checkKeys rejects fields the object does not have or that the method may
// not set. "_ref" in a PUT body is tolerated: the vendor's Go client sends it.
func checkKeys(spec *objectSpec, b body, update bool) *wapiError {
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "_ref" && update {
			continue
		}
		name, op := k, ""
		if n := len(k); n > 1 && (k[n-1] == '+' || k[n-1] == '-') {
			name, op = k[:n-1], k[n-1:]
		}
		f, ok := spec.field(name)
		if name == "extattrs" && spec.ea {
			f, ok = extattrsField, true
		}
		if !ok || f.searchOnly || (op != "" && !(update && (f.list || name == "extattrs"))) {
			return errProto("Unknown argument/field: '%s'", k)
		}
		if (!update && !f.create) || (update && !f.update && !f.create) {
			return errProto("Field is not writable: %s", name)
		}
	}
	return nil
}

// createOnly rejects a PUT that changes a field fixed at creation.
func createOnly(b body, k, current string) *wapiError {
	if !b.has(k) {
		return nil
	}
	v, err := b.str(k)
	if err != nil {
		return err
	}
	if v != current {
		return errProto("Field is not writable: %s", k)
	}
	return nil
}

// --- extensible attributes ------------------------------------------------

var eaTypes = map[string]bool{"STRING": true, "INTEGER": true, "EMAIL": true, "URL": true, "DATE": true, "ENUM": true}

// parseEAs validates an extattrs value against the definitions: the grid
// refuses attributes nobody defined. With names=true (extattrs-) only the
// names matter.
func (st *store) parseEAs(raw json.RawMessage, namesOnly bool) (map[string]any, *wapiError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errProto("Invalid value for extattrs: expected {\"Name\": {\"value\": ...}}")
	}
	out := make(map[string]any, len(m))
	for name, rawVal := range m {
		def := st.eaDef(name)
		if def == nil {
			return nil, errProto("Unknown extensible attribute: %s", name)
		}
		if namesOnly {
			out[name] = nil
			continue
		}
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(rawVal, &wrapper); err != nil {
			return nil, errProto("Invalid value for extensible attribute %s: expected {\"value\": ...}", name)
		}
		vraw, ok := wrapper["value"]
		if !ok {
			return nil, errProto("Extensible attribute %s has no value", name)
		}
		dec := json.NewDecoder(bytes.NewReader(vraw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, errProto("Invalid value for extensible attribute %s", name)
		}
		if err := checkEAValue(def, v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

func checkEAValue(def *eaDefinition, v any) *wapiError {
	if list, ok := v.([]any); ok {
		if !strings.Contains(def.Flags, "V") {
			return errProto("Extensible attribute %s does not allow multiple values", def.Name)
		}
		for _, e := range list {
			if err := checkEAValue(&eaDefinition{Name: def.Name, Type: def.Type, ListValues: def.ListValues}, e); err != nil {
				return err
			}
		}
		return nil
	}
	switch def.Type {
	case "INTEGER":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return errProto("Invalid value for extensible attribute %s: %v is not an integer", def.Name, v)
		}
	case "ENUM":
		s, ok := v.(string)
		if !ok || !contains(def.ListValues, s) {
			return errProto("Invalid value for extensible attribute %s: %v is not one of its list values", def.Name, v)
		}
	default:
		if _, ok := v.(string); !ok {
			return errProto("Invalid value for extensible attribute %s: %v is not a string", def.Name, v)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// applyEAs handles extattrs (replace), extattrs+ (merge) and extattrs- (remove).
func (st *store) applyEAs(cur map[string]any, b body) (map[string]any, *wapiError) {
	out := cloneEAs(cur)
	if raw, ok := b["extattrs"]; ok {
		m, err := st.parseEAs(raw, false)
		if err != nil {
			return nil, err
		}
		out = m
	}
	if raw, ok := b["extattrs+"]; ok {
		m, err := st.parseEAs(raw, false)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]any{}
		}
		for k, v := range m {
			out[k] = v
		}
	}
	if raw, ok := b["extattrs-"]; ok {
		m, err := st.parseEAs(raw, true)
		if err != nil {
			return nil, err
		}
		for k := range m {
			delete(out, k)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, nil
}

// --- names, MACs ----------------------------------------------------------

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

func checkFQDN(field, name string) *wapiError {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return errProto("Invalid value for %s: '%s' is not a valid domain name", field, name)
	}
	for _, l := range strings.Split(n, ".") {
		if !labelRE.MatchString(l) {
			return errProto("Invalid value for %s: '%s' is not a valid domain name", field, name)
		}
	}
	return nil
}

func normalizeMAC(s string) (string, *wapiError) {
	if s == "" {
		return "", nil
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", errProto("Invalid MAC address: %s", s)
	}
	return hw.String(), nil
}

// --- address requests ---------------------------------------------------------

// allocRequest is a next-available-IP function call, in either the
// string form "func:nextavailableip:<cidr>[,<netview>]" (or a network
// reference instead of the CIDR) or the object form.
type allocRequest struct {
	label     string // the argument as given, for error messages
	cidr      string
	netview   string
	netRef    string
	objParams map[string]string
	exclude   []string
}

type addrRequest struct {
	ref  string
	ip   string
	fn   *allocRequest
	mac  *string
	dhcp *bool
}

func parseAllocString(arg string) *allocRequest {
	a := &allocRequest{label: arg}
	if strings.HasPrefix(arg, "network/") {
		a.netRef = arg
		return a
	}
	cidr, nv, _ := strings.Cut(arg, ",")
	a.cidr, a.netview = strings.TrimSpace(cidr), strings.TrimSpace(nv)
	return a
}

// parseIPValue reads an ipv4addr value: an address, a function string or a
// function object. Object-form extras the vendor's client puts inside the
// function object (mac, configure_for_dhcp) are returned to the caller.
func parseIPValue(raw json.RawMessage) (ip string, fn *allocRequest, mac *string, dhcp *bool, werr *wapiError) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if arg, ok := strings.CutPrefix(s, "func:nextavailableip:"); ok {
			return "", parseAllocString(arg), nil, nil, nil
		}
		if _, ok := parseIPv4(s); !ok {
			return "", nil, nil, nil, errProto("Invalid IP address: %s", s)
		}
		return ip4Addr(mustIPv4(s)).String(), nil, nil, nil, nil
	}
	var obj struct {
		Function    *string        `json:"_object_function"`
		ResultField string         `json:"_result_field"`
		Object      string         `json:"_object"`
		ObjParams   map[string]any `json:"_object_parameters"`
		Params      map[string]any `json:"_parameters"`
		NetworkView string         `json:"network_view"`
		UseEA       *bool          `json:"use_for_ea_inheritance"`
		DHCP        *bool          `json:"configure_for_dhcp"`
		MAC         *string        `json:"mac"`
		DUID        string         `json:"duid"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return "", nil, nil, nil, errProto("Invalid value for ipv4addr: %s", truncate(string(raw), 120))
	}
	if obj.Function == nil || *obj.Function != "next_available_ip" {
		return "", nil, nil, nil, errProto("Unknown function call for ipv4addr: only next_available_ip is supported")
	}
	if obj.ResultField != "ips" {
		return "", nil, nil, nil, errProto("Invalid _result_field '%s' for next_available_ip: expected 'ips'", obj.ResultField)
	}
	if obj.Object != "network" {
		return "", nil, nil, nil, errProto("Object type '%s' is not supported for next_available_ip", obj.Object)
	}
	a := &allocRequest{objParams: map[string]string{}, netview: obj.NetworkView}
	keys := make([]string, 0, len(obj.ObjParams))
	for k, v := range obj.ObjParams {
		a.objParams[k] = fmt.Sprint(v)
		keys = append(keys, k+"="+fmt.Sprint(v))
	}
	sort.Strings(keys)
	a.label = strings.Join(keys, ",")
	if ex, ok := obj.Params["exclude"].([]any); ok {
		for _, e := range ex {
			a.exclude = append(a.exclude, fmt.Sprint(e))
		}
	}
	if obj.MAC != nil && *obj.MAC == "" {
		obj.MAC = nil
	}
	return "", a, obj.MAC, obj.DHCP, nil
}

func mustIPv4(s string) uint32 {
	u, _ := parseIPv4(s)
	return u
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func parseAddrRequests(raw json.RawMessage) ([]addrRequest, *wapiError) {
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, errProto("Invalid value for ipv4addrs: expected a list of address structs")
	}
	out := make([]addrRequest, 0, len(entries))
	for _, e := range entries {
		var r addrRequest
		for k, v := range e {
			switch k {
			case "_ref":
				if err := json.Unmarshal(v, &r.ref); err != nil {
					return nil, errProto("Invalid value for _ref in ipv4addrs")
				}
			case "ipv4addr":
				ip, fn, mac, dhcp, err := parseIPValue(v)
				if err != nil {
					return nil, err
				}
				r.ip, r.fn = ip, fn
				if r.mac == nil {
					r.mac = mac
				}
				if r.dhcp == nil {
					r.dhcp = dhcp
				}
			case "mac":
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, errProto("Invalid value for mac in ipv4addrs")
				}
				r.mac = &s
			case "configure_for_dhcp":
				var bv bool
				if err := json.Unmarshal(v, &bv); err != nil {
					return nil, errProto("Invalid value for configure_for_dhcp in ipv4addrs")
				}
				r.dhcp = &bv
			case "host":
				// read-only, echoed back by clients that PUT what they GOT
			default:
				return nil, errProto("Unknown argument/field: '%s'", k)
			}
		}
		if r.ref == "" && r.ip == "" && r.fn == nil {
			return nil, errProto("Field ipv4addr is required in each entry of ipv4addrs")
		}
		out = append(out, r)
	}
	return out, nil
}

// allocNetwork finds the network an allocation request names.
func (st *store) allocNetwork(a *allocRequest, defaultNetview string) (*network, *wapiError) {
	notFound := errProto("%s does not match any unique networks/ranges (ipv4addr)", a.label)
	switch {
	case a.netRef != "":
		objtype, data, _ := splitRef(a.netRef)
		if objtype != "network" {
			return nil, notFound
		}
		n, _ := st.resolve("network", data).(*network)
		if n == nil {
			return nil, notFound
		}
		return n, nil
	case a.objParams != nil:
		q := &queryArgs{params: map[string][]string{}}
		keys := make([]string, 0, len(a.objParams))
		for k := range a.objParams {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q.paramOrder = append(q.paramOrder, k)
			q.params[k] = []string{a.objParams[k]}
		}
		if _, ok := a.objParams["network_view"]; !ok {
			nv := a.netview
			if nv == "" {
				nv = defaultNetview
			}
			q.paramOrder = append(q.paramOrder, "network_view")
			q.params["network_view"] = []string{nv}
		}
		filters, err := q.filters(objectSpecs["network"])
		if err != nil {
			return nil, err
		}
		var hits []*network
		for _, o := range st.objects("network") {
			ok := true
			for _, f := range filters {
				ok = ok && st.match(f, o)
			}
			if ok {
				hits = append(hits, o.(*network))
			}
		}
		if len(hits) != 1 {
			return nil, notFound
		}
		return hits[0], nil
	default:
		p, err := parseNetwork(a.cidr)
		if err != nil {
			return nil, notFound
		}
		nv := a.netview
		if nv == "" {
			nv = defaultNetview
		}
		n := st.networkByCIDR(nv, p.String())
		if n == nil {
			return nil, notFound
		}
		return n, nil
	}
}

// buildAddrs turns address requests into the host's new address list,
// reusing existing entries (matched by reference or address) and
// allocating from networks where asked. It runs under the store lock, so
// allocation is atomic with the write that records it.
func (st *store) buildAddrs(h *hostRecord, existing []*hostAddr, reqs []addrRequest) ([]*hostAddr, *wapiError) {
	taken := map[uint32]bool{}
	for _, r := range reqs {
		if r.ip != "" {
			taken[mustIPv4(r.ip)] = true
		}
	}
	var out []*hostAddr
	seen := map[string]bool{}
	for _, r := range reqs {
		var a *hostAddr
		switch {
		case r.ref != "":
			objtype, data, _ := splitRef(r.ref)
			for _, e := range existing {
				if objtype == "record:host_ipv4addr" && data == refData("dns.host_address", e.Seq, e.IPv4Addr) {
					c := *e
					a = &c
				}
			}
			if a == nil {
				return nil, errNotFound("Reference %s not found", r.ref)
			}
		case r.ip != "":
			for _, e := range existing {
				if e.IPv4Addr == r.ip {
					c := *e
					a = &c
				}
			}
			if a == nil {
				a = &hostAddr{Seq: st.nextSeq(), IPv4Addr: r.ip}
			}
		default:
			n, err := st.allocNetwork(r.fn, h.NetworkView)
			if err != nil {
				return nil, err
			}
			exclude := map[uint32]bool{}
			for _, e := range r.fn.exclude {
				if u, ok := parseIPv4(e); ok {
					exclude[u] = true
				}
			}
			ips, err := st.nextAvailable(n, 1, exclude, taken)
			if err != nil {
				return nil, err
			}
			taken[mustIPv4(ips[0])] = true
			a = &hostAddr{Seq: st.nextSeq(), IPv4Addr: ips[0]}
		}
		if r.mac != nil {
			mac, err := normalizeMAC(*r.mac)
			if err != nil {
				return nil, err
			}
			a.MAC = mac
		}
		if r.dhcp != nil {
			a.ConfigureForDHCP = *r.dhcp
		}
		if seen[a.IPv4Addr] {
			return nil, errProto("Duplicate IP address %s in ipv4addrs", a.IPv4Addr)
		}
		seen[a.IPv4Addr] = true
		out = append(out, a)
	}
	return out, nil
}

// checkHostAddrs applies the appliance's rules to a host's addresses:
// addresses inside a network may not be its network or broadcast address;
// a DHCP-enabled address needs a MAC, a parent network, and no other DHCP
// object on the same address. (DNS-only hosts may share addresses, as on
// the appliance; next-available never hands out a used one.)
func (st *store) checkHostAddrs(h *hostRecord) *wapiError {
	if len(h.Addrs) == 0 {
		return errProto("A host record needs at least one IP address (ipv4addrs)")
	}
	for _, a := range h.Addrs {
		n := st.networkContaining(h.NetworkView, a.IPv4Addr)
		if n != nil {
			first, last := bounds(n.prefix())
			if u := mustIPv4(a.IPv4Addr); u == first || u == last {
				return errProto("Invalid IP address %s: it is the network or broadcast address of %s", a.IPv4Addr, n.Network)
			}
		}
		if !a.ConfigureForDHCP {
			continue
		}
		if a.MAC == "" {
			return errProto("A MAC address is required when configure_for_dhcp is true (%s)", a.IPv4Addr)
		}
		if n == nil {
			return errConflict("The action is not allowed. A parent was not found.")
		}
		if st.dhcpObjectAt(h.NetworkView, a.IPv4Addr, h.Seq, 0) {
			return errConflict("The IP address %s is already used by a DHCP object in network view %s.", a.IPv4Addr, h.NetworkView)
		}
	}
	return nil
}

// dhcpObjectAt reports whether a fixed address or DHCP-enabled host address
// other than the excluded ones holds ip in netview.
func (st *store) dhcpObjectAt(netview, ip string, exceptHost, exceptFixed uint64) bool {
	for _, f := range st.fixed {
		if f.Seq != exceptFixed && f.NetworkView == netview && f.IPv4Addr == ip {
			return true
		}
	}
	for _, h := range st.hosts {
		if h.Seq == exceptHost || h.NetworkView != netview {
			continue
		}
		for _, a := range h.Addrs {
			if a.ConfigureForDHCP && a.IPv4Addr == ip {
				return true
			}
		}
	}
	return false
}

func (st *store) checkHostNames(h *hostRecord) *wapiError {
	if err := checkFQDN("name", h.Name); err != nil {
		return err
	}
	if h.ConfigureForDNS && !strings.Contains(strings.TrimSuffix(h.Name, "."), ".") {
		return errConflict("The action is not allowed. A parent was not found.")
	}
	if st.hostByName(h.View, h.Name, h.Seq) != nil {
		return errConflict("The record '%s' already exists.", h.Name)
	}
	seen := map[string]bool{}
	for _, al := range h.Aliases {
		if err := checkFQDN("aliases", al); err != nil {
			return err
		}
		if strings.EqualFold(al, h.Name) || seen[strings.ToLower(al)] {
			return errProto("Duplicate alias '%s'", al)
		}
		seen[strings.ToLower(al)] = true
		if st.hostByName(h.View, al, h.Seq) != nil {
			return errConflict("The record '%s' already exists.", al)
		}
	}
	if len(h.Comment) > 256 {
		return errProto("Invalid value for comment: longer than 256 characters")
	}
	return nil
}

// --- record:host ------------------------------------------------------------

func (st *store) createHost(b body) (object, *wapiError) {
	spec := objectSpecs["record:host"]
	if err := checkKeys(spec, b, false); err != nil {
		return nil, err
	}
	h := &hostRecord{ConfigureForDNS: true}
	var err *wapiError
	if h.Name, err = b.str("name"); err != nil {
		return nil, err
	}
	if h.Name == "" {
		return nil, errProto("Required field missing: name")
	}
	if h.View, err = b.str("view"); err != nil {
		return nil, err
	}
	if h.View == "" {
		h.View = "default"
	}
	view := st.dnsView(h.View)
	if view == nil {
		return nil, errNotFound("View %s not found", h.View)
	}
	if h.NetworkView, err = b.str("network_view"); err != nil {
		return nil, err
	}
	if h.NetworkView == "" {
		h.NetworkView = view.NetworkView
	}
	if st.networkView(h.NetworkView) == nil {
		return nil, errNotFound("Network view %s not found", h.NetworkView)
	}
	if err := st.hostScalars(h, b); err != nil {
		return nil, err
	}
	if raw, ok := b["ipv6addrs"]; ok && !emptyList(raw) {
		return nil, errProto("IPv6 host addresses (ipv6addrs) are not supported by this grid simulator")
	}
	if raw, ok := b["extattrs"]; ok {
		if h.ExtAttrs, err = st.parseEAs(raw, false); err != nil {
			return nil, err
		}
		if len(h.ExtAttrs) == 0 {
			h.ExtAttrs = nil
		}
	}
	if err := st.checkHostNames(h); err != nil {
		return nil, err
	}
	raw, ok := b["ipv4addrs"]
	if !ok {
		return nil, errProto("A host record needs at least one IP address (ipv4addrs)")
	}
	reqs, err := parseAddrRequests(raw)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if r.ref != "" {
			return nil, errProto("Invalid _ref in ipv4addrs of a new host record")
		}
	}
	if h.Addrs, err = st.buildAddrs(h, nil, reqs); err != nil {
		return nil, err
	}
	if err := st.checkHostAddrs(h); err != nil {
		return nil, err
	}
	h.Seq = st.nextSeq()
	st.hosts[h.Seq] = h
	return h, nil
}

func emptyList(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "null" || s == "[]"
}

// hostScalars reads the simple fields shared by create and update.
func (st *store) hostScalars(h *hostRecord, b body) *wapiError {
	var err *wapiError
	if b.has("comment") {
		if h.Comment, err = b.str("comment"); err != nil {
			return err
		}
	}
	if b.has("configure_for_dns") {
		if h.ConfigureForDNS, err = b.boolean("configure_for_dns"); err != nil {
			return err
		}
	}
	if b.has("disable") {
		if h.Disable, err = b.boolean("disable"); err != nil {
			return err
		}
	}
	if b.has("use_ttl") {
		if h.UseTTL, err = b.boolean("use_ttl"); err != nil {
			return err
		}
	}
	if b.has("ttl") {
		if h.TTL, err = b.uint32("ttl"); err != nil {
			return err
		}
	}
	if b.has("aliases") {
		if h.Aliases, err = b.strings("aliases"); err != nil {
			return err
		}
	}
	return nil
}

func (st *store) updateHost(cur *hostRecord, b body) (object, *wapiError) {
	spec := objectSpecs["record:host"]
	if err := checkKeys(spec, b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "view", cur.View); err != nil {
		return nil, err
	}
	if err := createOnly(b, "network_view", cur.NetworkView); err != nil {
		return nil, err
	}
	h := cur.clone()
	var err *wapiError
	if b.has("name") {
		if h.Name, err = b.str("name"); err != nil {
			return nil, err
		}
	}
	if err := st.hostScalars(h, b); err != nil {
		return nil, err
	}
	if add, err := b.strings("aliases+"); err != nil {
		return nil, err
	} else {
		h.Aliases = append(h.Aliases, add...)
	}
	if del, err := b.strings("aliases-"); err != nil {
		return nil, err
	} else if len(del) > 0 {
		var keep []string
		for _, a := range h.Aliases {
			if !containsFold(del, a) {
				keep = append(keep, a)
			}
		}
		h.Aliases = keep
	}
	if raw, ok := b["ipv6addrs"]; ok && !emptyList(raw) {
		return nil, errProto("IPv6 host addresses (ipv6addrs) are not supported by this grid simulator")
	}
	if h.ExtAttrs, err = st.applyEAs(h.ExtAttrs, b); err != nil {
		return nil, err
	}
	if err := st.checkHostNames(h); err != nil {
		return nil, err
	}
	addrsChanged := false
	var reqs []addrRequest
	if raw, ok := b["ipv4addrs"]; ok {
		if reqs, err = parseAddrRequests(raw); err != nil {
			return nil, err
		}
		addrsChanged = true
	} else {
		for _, a := range h.Addrs {
			reqs = append(reqs, addrRequest{ip: a.IPv4Addr})
		}
	}
	if raw, ok := b["ipv4addrs+"]; ok {
		add, err := parseAddrRequests(raw)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, add...)
		addrsChanged = true
	}
	if raw, ok := b["ipv4addrs-"]; ok {
		del, err := parseAddrRequests(raw)
		if err != nil {
			return nil, err
		}
		drop := map[string]bool{}
		for _, d := range del {
			if d.ip != "" {
				drop[d.ip] = true
			}
			objtype, data, _ := splitRef(d.ref)
			for _, e := range cur.Addrs {
				if objtype == "record:host_ipv4addr" && data == refData("dns.host_address", e.Seq, e.IPv4Addr) {
					drop[e.IPv4Addr] = true
				}
			}
		}
		var keep []addrRequest
		for _, r := range reqs {
			if r.ip == "" || !drop[r.ip] {
				keep = append(keep, r)
			}
		}
		reqs = keep
		addrsChanged = true
	}
	if addrsChanged {
		if h.Addrs, err = st.buildAddrs(h, cur.Addrs, reqs); err != nil {
			return nil, err
		}
	}
	if err := st.checkHostAddrs(h); err != nil {
		return nil, err
	}
	st.hosts[h.Seq] = h
	return h, nil
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// --- network ------------------------------------------------------------------

func (st *store) createNetwork(b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["network"], b, false); err != nil {
		return nil, err
	}
	cidr, err := b.str("network")
	if err != nil {
		return nil, err
	}
	if cidr == "" {
		return nil, errProto("Required field missing: network")
	}
	if strings.HasPrefix(cidr, "func:") {
		return nil, errProto("Function %s is not supported by this grid simulator", cidr)
	}
	p, perr := parseNetwork(cidr)
	if perr != nil {
		return nil, errProto("Invalid value for network: %v", perr)
	}
	n := &network{Network: p.String()}
	if n.NetworkView, err = b.str("network_view"); err != nil {
		return nil, err
	}
	if n.NetworkView == "" {
		n.NetworkView = "default"
	}
	if st.networkView(n.NetworkView) == nil {
		return nil, errNotFound("Network view %s not found", n.NetworkView)
	}
	for _, o := range st.networks {
		if o.NetworkView == n.NetworkView && o.prefix().Overlaps(p) {
			if o.Network == n.Network {
				return nil, errConflict("The network %s already exists in network view %s.", n.Network, n.NetworkView)
			}
			return nil, errConflict("The network %s overlaps with network %s in network view %s.", n.Network, o.Network, n.NetworkView)
		}
	}
	if n.Comment, err = b.str("comment"); err != nil {
		return nil, err
	}
	if raw, ok := b["extattrs"]; ok {
		if n.ExtAttrs, err = st.parseEAs(raw, false); err != nil {
			return nil, err
		}
	}
	n.Seq = st.nextSeq()
	st.networks[n.Seq] = n
	return n, nil
}

func (st *store) updateNetwork(cur *network, b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["network"], b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "network", cur.Network); err != nil {
		return nil, err
	}
	if err := createOnly(b, "network_view", cur.NetworkView); err != nil {
		return nil, err
	}
	n := *cur
	var err *wapiError
	if b.has("comment") {
		if n.Comment, err = b.str("comment"); err != nil {
			return nil, err
		}
	}
	if n.ExtAttrs, err = st.applyEAs(cur.ExtAttrs, b); err != nil {
		return nil, err
	}
	st.networks[n.Seq] = &n
	return &n, nil
}

// networkFunction runs POST network/<ref>?_function=next_available_ip. It
// only reports addresses; it reserves nothing.
func (st *store) networkFunction(n *network, q *queryArgs, b body) (any, *wapiError) {
	if q.function != "next_available_ip" {
		return nil, errProto("Function %s is not valid for this object", q.function)
	}
	num := 1
	var exclude []string
	if v, ok := q.params["num"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil {
			return nil, errProto("Invalid value for num: %s", v[0])
		}
		num = n
	}
	if v, ok := q.params["exclude"]; ok {
		for _, e := range v {
			exclude = append(exclude, splitList(e)...)
		}
	}
	for k := range b {
		switch k {
		case "num":
			n, err := strconv.Atoi(string(b["num"]))
			if err != nil {
				return nil, errProto("Invalid value for num: %s", b["num"])
			}
			num = n
		case "exclude":
			ex, err := b.strings("exclude")
			if err != nil {
				return nil, err
			}
			exclude = append(exclude, ex...)
		default:
			return nil, errProto("Unknown argument/field: '%s'", k)
		}
	}
	if num < 1 || num > 1000 {
		return nil, errProto("Invalid value for num: %d (must be between 1 and 1000)", num)
	}
	ex := map[uint32]bool{}
	for _, e := range exclude {
		u, ok := parseIPv4(e)
		if !ok {
			return nil, errProto("Invalid IP address in exclude: %s", e)
		}
		ex[u] = true
	}
	ips, err := st.nextAvailable(n, num, ex, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ips": ips}, nil
}

// --- fixedaddress -------------------------------------------------------------

func (st *store) fixedScalars(f *fixedAddress, b body) *wapiError {
	var err *wapiError
	if b.has("mac") {
		m, err := b.str("mac")
		if err != nil {
			return err
		}
		if f.MAC, err = normalizeMAC(m); err != nil {
			return err
		}
	}
	if b.has("name") {
		if f.Name, err = b.str("name"); err != nil {
			return err
		}
	}
	if b.has("comment") {
		if f.Comment, err = b.str("comment"); err != nil {
			return err
		}
	}
	if b.has("match_client") {
		if f.MatchClient, err = b.str("match_client"); err != nil {
			return err
		}
	}
	if b.has("disable") {
		if f.Disable, err = b.boolean("disable"); err != nil {
			return err
		}
	}
	return nil
}

func (st *store) checkFixed(f *fixedAddress) *wapiError {
	switch f.MatchClient {
	case "MAC_ADDRESS":
		if f.MAC == "" {
			return errProto("A MAC address is required when match_client is MAC_ADDRESS")
		}
	case "RESERVED":
	default:
		return errProto("Invalid value for match_client: %s (this grid simulator supports MAC_ADDRESS and RESERVED)", f.MatchClient)
	}
	n := st.networkContaining(f.NetworkView, f.IPv4Addr)
	if n == nil {
		return errConflict("The action is not allowed. A parent was not found.")
	}
	first, last := bounds(n.prefix())
	if u := mustIPv4(f.IPv4Addr); u == first || u == last {
		return errProto("Invalid IP address %s: it is the network or broadcast address of %s", f.IPv4Addr, n.Network)
	}
	if st.dhcpObjectAt(f.NetworkView, f.IPv4Addr, 0, f.Seq) {
		return errConflict("The IP address %s is already used by a DHCP object in network view %s.", f.IPv4Addr, f.NetworkView)
	}
	return nil
}

func (st *store) fixedIP(f *fixedAddress, b body) *wapiError {
	raw := b["ipv4addr"]
	ip, fn, _, _, err := parseIPValue(raw)
	if err != nil {
		return err
	}
	if fn != nil {
		n, err := st.allocNetwork(fn, f.NetworkView)
		if err != nil {
			return err
		}
		ex := map[uint32]bool{}
		for _, e := range fn.exclude {
			if u, ok := parseIPv4(e); ok {
				ex[u] = true
			}
		}
		ips, err := st.nextAvailable(n, 1, ex, nil)
		if err != nil {
			return err
		}
		ip = ips[0]
	}
	f.IPv4Addr = ip
	return nil
}

func (st *store) createFixed(b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["fixedaddress"], b, false); err != nil {
		return nil, err
	}
	f := &fixedAddress{MatchClient: "MAC_ADDRESS"}
	var err *wapiError
	if f.NetworkView, err = b.str("network_view"); err != nil {
		return nil, err
	}
	if f.NetworkView == "" {
		f.NetworkView = "default"
	}
	if st.networkView(f.NetworkView) == nil {
		return nil, errNotFound("Network view %s not found", f.NetworkView)
	}
	if !b.has("ipv4addr") {
		return nil, errProto("Required field missing: ipv4addr")
	}
	if err := st.fixedScalars(f, b); err != nil {
		return nil, err
	}
	if raw, ok := b["extattrs"]; ok {
		if f.ExtAttrs, err = st.parseEAs(raw, false); err != nil {
			return nil, err
		}
	}
	if err := st.fixedIP(f, b); err != nil {
		return nil, err
	}
	if err := st.checkFixed(f); err != nil {
		return nil, err
	}
	f.Seq = st.nextSeq()
	st.fixed[f.Seq] = f
	return f, nil
}

func (st *store) updateFixed(cur *fixedAddress, b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["fixedaddress"], b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "network_view", cur.NetworkView); err != nil {
		return nil, err
	}
	f := *cur
	var err *wapiError
	if err := st.fixedScalars(&f, b); err != nil {
		return nil, err
	}
	if f.ExtAttrs, err = st.applyEAs(cur.ExtAttrs, b); err != nil {
		return nil, err
	}
	if b.has("ipv4addr") {
		if err := st.fixedIP(&f, b); err != nil {
			return nil, err
		}
	}
	if err := st.checkFixed(&f); err != nil {
		return nil, err
	}
	st.fixed[f.Seq] = &f
	return &f, nil
}

// --- networkview, view ----------------------------------------------------------

func (st *store) createNetworkView(b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["networkview"], b, false); err != nil {
		return nil, err
	}
	name, err := b.str("name")
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errProto("Required field missing: name")
	}
	if st.networkView(name) != nil {
		return nil, errConflict("The network view '%s' already exists.", name)
	}
	comment, err := b.str("comment")
	if err != nil {
		return nil, err
	}
	var eas map[string]any
	if raw, ok := b["extattrs"]; ok {
		if eas, err = st.parseEAs(raw, false); err != nil {
			return nil, err
		}
	}
	nv := st.ensureNetworkView(name)
	nv.Comment, nv.ExtAttrs = comment, eas
	return nv, nil
}

func (st *store) updateNetworkView(cur *networkView, b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["networkview"], b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "name", cur.Name); err != nil {
		return nil, err
	}
	nv := *cur
	var err *wapiError
	if b.has("comment") {
		if nv.Comment, err = b.str("comment"); err != nil {
			return nil, err
		}
	}
	if nv.ExtAttrs, err = st.applyEAs(cur.ExtAttrs, b); err != nil {
		return nil, err
	}
	st.netViews[nv.Seq] = &nv
	return &nv, nil
}

func (st *store) createView(b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["view"], b, false); err != nil {
		return nil, err
	}
	v := &dnsView{}
	var err *wapiError
	if v.Name, err = b.str("name"); err != nil {
		return nil, err
	}
	if v.Name == "" {
		return nil, errProto("Required field missing: name")
	}
	if st.dnsView(v.Name) != nil {
		return nil, errConflict("The view '%s' already exists.", v.Name)
	}
	if v.NetworkView, err = b.str("network_view"); err != nil {
		return nil, err
	}
	if v.NetworkView == "" {
		v.NetworkView = "default"
	}
	if st.networkView(v.NetworkView) == nil {
		return nil, errNotFound("Network view %s not found", v.NetworkView)
	}
	if v.Comment, err = b.str("comment"); err != nil {
		return nil, err
	}
	if raw, ok := b["extattrs"]; ok {
		if v.ExtAttrs, err = st.parseEAs(raw, false); err != nil {
			return nil, err
		}
	}
	v.Seq = st.nextSeq()
	st.views[v.Seq] = v
	return v, nil
}

func (st *store) updateView(cur *dnsView, b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["view"], b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "name", cur.Name); err != nil {
		return nil, err
	}
	if err := createOnly(b, "network_view", cur.NetworkView); err != nil {
		return nil, err
	}
	v := *cur
	var err *wapiError
	if b.has("comment") {
		if v.Comment, err = b.str("comment"); err != nil {
			return nil, err
		}
	}
	if v.ExtAttrs, err = st.applyEAs(cur.ExtAttrs, b); err != nil {
		return nil, err
	}
	st.views[v.Seq] = &v
	return &v, nil
}

// --- extensibleattributedef --------------------------------------------------------

func (st *store) eaDefFields(d *eaDefinition, b body) *wapiError {
	var err *wapiError
	for _, k := range []string{"comment", "flags", "default_value"} {
		if !b.has(k) {
			continue
		}
		s, err := b.str(k)
		if err != nil {
			return err
		}
		switch k {
		case "comment":
			d.Comment = s
		case "flags":
			d.Flags = s
		case "default_value":
			d.DefaultValue = s
		}
	}
	if raw, ok := b["list_values"]; ok {
		var lv []struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(raw, &lv); err != nil {
			return errProto("Invalid value for list_values: expected [{\"value\": ...}]")
		}
		d.ListValues = nil
		for _, v := range lv {
			d.ListValues = append(d.ListValues, v.Value)
		}
	}
	if b.has("allowed_object_types") {
		if d.AllowedObjectTypes, err = b.strings("allowed_object_types"); err != nil {
			return err
		}
	}
	return nil
}

func (st *store) createEADef(b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["extensibleattributedef"], b, false); err != nil {
		return nil, err
	}
	d := &eaDefinition{}
	var err *wapiError
	if d.Name, err = b.str("name"); err != nil {
		return nil, err
	}
	if d.Type, err = b.str("type"); err != nil {
		return nil, err
	}
	if d.Name == "" {
		return nil, errProto("Required field missing: name")
	}
	if d.Type == "" {
		return nil, errProto("Required field missing: type")
	}
	if !eaTypes[d.Type] {
		return nil, errProto("Invalid value for type: %s", d.Type)
	}
	if st.eaDef(d.Name) != nil {
		return nil, errConflict("The extensible attribute definition '%s' already exists.", d.Name)
	}
	if err := st.eaDefFields(d, b); err != nil {
		return nil, err
	}
	d.Seq = st.nextSeq()
	st.eaDefs[d.Seq] = d
	return d, nil
}

func (st *store) updateEADef(cur *eaDefinition, b body) (object, *wapiError) {
	if err := checkKeys(objectSpecs["extensibleattributedef"], b, true); err != nil {
		return nil, err
	}
	if err := createOnly(b, "type", cur.Type); err != nil {
		return nil, err
	}
	if err := createOnly(b, "name", cur.Name); err != nil {
		return nil, err
	}
	d := *cur
	if err := st.eaDefFields(&d, b); err != nil {
		return nil, err
	}
	st.eaDefs[d.Seq] = &d
	return &d, nil
}

func (st *store) eaInUse(name string) bool {
	for _, t := range supportedObjects() {
		for _, o := range st.objects(t) {
			if _, ok := o.base().ExtAttrs[name]; ok {
				return true
			}
		}
	}
	return false
}

// --- dispatch -----------------------------------------------------------------------

func (st *store) create(objtype string, b body) (object, *wapiError) {
	switch objtype {
	case "record:host":
		return st.createHost(b)
	case "network":
		return st.createNetwork(b)
	case "fixedaddress":
		return st.createFixed(b)
	case "networkview":
		return st.createNetworkView(b)
	case "view":
		return st.createView(b)
	case "extensibleattributedef":
		return st.createEADef(b)
	}
	return nil, errProto("Unknown object type (%s)", objtype)
}

func (st *store) update(o object, b body) (object, *wapiError) {
	switch v := o.(type) {
	case *hostRecord:
		return st.updateHost(v, b)
	case *network:
		return st.updateNetwork(v, b)
	case *fixedAddress:
		return st.updateFixed(v, b)
	case *networkView:
		return st.updateNetworkView(v, b)
	case *dnsView:
		return st.updateView(v, b)
	case *eaDefinition:
		return st.updateEADef(v, b)
	}
	return nil, errProto("Object cannot be updated")
}

// delete removes o. Deleting a network takes its fixed addresses with it;
// deleting a network view takes its networks, fixed addresses, DNS views
// and host records; deleting a DNS view takes its host records.
func (st *store) delete(o object) *wapiError {
	switch v := o.(type) {
	case *network:
		p := v.prefix()
		for _, f := range st.fixed {
			if a, err := netip.ParseAddr(f.IPv4Addr); err == nil && f.NetworkView == v.NetworkView && p.Contains(a) {
				st.remove(f)
			}
		}
	case *networkView:
		if v.IsDefault {
			return errConflict("The default network view cannot be deleted.")
		}
		for _, n := range st.networks {
			if n.NetworkView == v.Name {
				st.remove(n)
			}
		}
		for _, f := range st.fixed {
			if f.NetworkView == v.Name {
				st.remove(f)
			}
		}
		for _, h := range st.hosts {
			if h.NetworkView == v.Name {
				st.remove(h)
			}
		}
		for _, dv := range st.views {
			if dv.NetworkView == v.Name {
				st.remove(dv)
			}
		}
	case *dnsView:
		if v.IsDefault {
			return errConflict("The default view cannot be deleted.")
		}
		for _, h := range st.hosts {
			if h.View == v.Name {
				st.remove(h)
			}
		}
	case *eaDefinition:
		if st.eaInUse(v.Name) {
			return errConflict("The extensible attribute definition '%s' is in use and cannot be deleted.", v.Name)
		}
	}
	st.remove(o)
	return nil
}
