package infoblox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// store is the grid's database. It is guarded by Server.mu; nothing in it
// locks on its own.
type store struct {
	seq      uint64
	netViews map[uint64]*networkView
	views    map[uint64]*dnsView
	networks map[uint64]*network
	fixed    map[uint64]*fixedAddress
	hosts    map[uint64]*hostRecord
	eaDefs   map[uint64]*eaDefinition
}

func newStore() *store {
	return &store{
		netViews: map[uint64]*networkView{},
		views:    map[uint64]*dnsView{},
		networks: map[uint64]*network{},
		fixed:    map[uint64]*fixedAddress{},
		hosts:    map[uint64]*hostRecord{},
		eaDefs:   map[uint64]*eaDefinition{},
	}
}

func (st *store) nextSeq() uint64 {
	st.seq++
	return st.seq
}

// stateFile is the on-disk form, written atomically after every change.
type stateFile struct {
	Format         int             `json:"format"`
	Seq            uint64          `json:"seq"`
	NetworkViews   []*networkView  `json:"network_views"`
	Views          []*dnsView      `json:"views"`
	Networks       []*network      `json:"networks"`
	FixedAddresses []*fixedAddress `json:"fixed_addresses"`
	Hosts          []*hostRecord   `json:"hosts"`
	EADefinitions  []*eaDefinition `json:"ea_definitions"`
}

const stateFormat = 1

func ordered[V any](m map[uint64]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

func (st *store) marshal() ([]byte, error) {
	return json.Marshal(stateFile{
		Format:         stateFormat,
		Seq:            st.seq,
		NetworkViews:   ordered(st.netViews),
		Views:          ordered(st.views),
		Networks:       ordered(st.networks),
		FixedAddresses: ordered(st.fixed),
		Hosts:          ordered(st.hosts),
		EADefinitions:  ordered(st.eaDefs),
	})
}

// loadState reads path; a missing file is an empty grid.
func loadState(path string) (*store, error) {
	st := newStore()
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // integer extensible attributes stay integers
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("state file %s is not valid: %w", path, err)
	}
	if f.Format != stateFormat {
		return nil, fmt.Errorf("state file %s has format %d, want %d", path, f.Format, stateFormat)
	}
	st.seq = f.Seq
	for _, v := range f.NetworkViews {
		st.netViews[v.Seq] = v
	}
	for _, v := range f.Views {
		st.views[v.Seq] = v
	}
	for _, v := range f.Networks {
		if _, err := parseNetwork(v.Network); err != nil {
			return nil, fmt.Errorf("state file %s: network %q: %v", path, v.Network, err)
		}
		st.networks[v.Seq] = v
	}
	for _, v := range f.FixedAddresses {
		st.fixed[v.Seq] = v
	}
	for _, v := range f.Hosts {
		st.hosts[v.Seq] = v
	}
	for _, v := range f.EADefinitions {
		st.eaDefs[v.Seq] = v
	}
	return st, nil
}

// --- lookups ------------------------------------------------------------

// objects returns the objects of one type in creation order.
func (st *store) objects(objtype string) []object {
	switch objtype {
	case "networkview":
		return asObjects(ordered(st.netViews))
	case "view":
		return asObjects(ordered(st.views))
	case "network":
		return asObjects(ordered(st.networks))
	case "fixedaddress":
		return asObjects(ordered(st.fixed))
	case "record:host":
		return asObjects(ordered(st.hosts))
	case "extensibleattributedef":
		return asObjects(ordered(st.eaDefs))
	}
	return nil
}

// asObjects widens a typed slice to the object interface.
func asObjects[V object](vs []V) []object {
	out := make([]object, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// resolve finds the object a reference names, or nil. Only the base64
// part counts, and it must still be the object's current one.
func (st *store) resolve(objtype, data string) object {
	seq, ok := parseRefData(data)
	if !ok {
		return nil
	}
	o := st.bySeq(objtype, seq)
	if o == nil {
		return nil
	}
	cur := refOf(o)
	if !strings.HasPrefix(cur, objtype+"/"+data+":") {
		return nil // renamed since: the old reference is dead
	}
	return o
}

// bySeq returns the object of objtype with sequence number seq, or nil.
func (st *store) bySeq(objtype string, seq uint64) object {
	switch objtype {
	case "networkview":
		if v := st.netViews[seq]; v != nil {
			return v
		}
	case "view":
		if v := st.views[seq]; v != nil {
			return v
		}
	case "network":
		if v := st.networks[seq]; v != nil {
			return v
		}
	case "fixedaddress":
		if v := st.fixed[seq]; v != nil {
			return v
		}
	case "record:host":
		if v := st.hosts[seq]; v != nil {
			return v
		}
	case "extensibleattributedef":
		if v := st.eaDefs[seq]; v != nil {
			return v
		}
	}
	return nil
}

func (st *store) remove(o object) {
	seq := o.base().Seq
	switch o.(type) {
	case *networkView:
		delete(st.netViews, seq)
	case *dnsView:
		delete(st.views, seq)
	case *network:
		delete(st.networks, seq)
	case *fixedAddress:
		delete(st.fixed, seq)
	case *hostRecord:
		delete(st.hosts, seq)
	case *eaDefinition:
		delete(st.eaDefs, seq)
	}
}

func (st *store) networkView(name string) *networkView {
	for _, v := range st.netViews {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (st *store) dnsView(name string) *dnsView {
	for _, v := range st.views {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (st *store) eaDef(name string) *eaDefinition {
	for _, v := range st.eaDefs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (st *store) networkByCIDR(netview, cidr string) *network {
	for _, n := range st.networks {
		if n.NetworkView == netview && n.Network == cidr {
			return n
		}
	}
	return nil
}

// networkContaining returns the network of netview that holds ip. Networks
// in a view never overlap, so there is at most one.
func (st *store) networkContaining(netview, ip string) *network {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	for _, n := range st.networks {
		if n.NetworkView == netview && n.prefix().Contains(a) {
			return n
		}
	}
	return nil
}

func (st *store) hostByName(view, name string, except uint64) *hostRecord {
	for _, h := range st.hosts {
		if h.Seq != except && h.View == view && strings.EqualFold(h.Name, name) {
			return h
		}
	}
	return nil
}

// ensureNetworkView creates a network view and, like the appliance, the DNS
// view associated with it ("default" for the default view, "default.<name>"
// for the others).
func (st *store) ensureNetworkView(name string) *networkView {
	if nv := st.networkView(name); nv != nil {
		return nv
	}
	nv := &networkView{Name: name, IsDefault: name == "default"}
	nv.Seq = st.nextSeq()
	st.netViews[nv.Seq] = nv
	viewName := "default"
	if name != "default" {
		viewName = "default." + name
	}
	if st.dnsView(viewName) == nil {
		dv := &dnsView{Name: viewName, NetworkView: name, IsDefault: name == "default"}
		dv.Seq = st.nextSeq()
		st.views[dv.Seq] = dv
	}
	return nv
}

// --- IPv4 address management ----------------------------------------------

func parseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 network in CIDR notation", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %s", s, p.Masked())
	}
	return p, nil
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func ip4Addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func parseIPv4(s string) (uint32, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return 0, false
	}
	return ip4(a), true
}

// bounds returns the network and broadcast addresses of p.
func bounds(p netip.Prefix) (uint32, uint32) {
	first := ip4(p.Addr())
	size := uint64(1) << (32 - p.Bits())
	return first, uint32(uint64(first) + size - 1)
}

// usedIPs is every address of p that a host record or fixed address in
// netview holds. Next-available never hands these out.
func (st *store) usedIPs(netview string, p netip.Prefix) map[uint32]bool {
	used := map[uint32]bool{}
	mark := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil && p.Contains(a) {
			used[ip4(a)] = true
		}
	}
	for _, h := range st.hosts {
		if h.NetworkView != netview {
			continue
		}
		for _, a := range h.Addrs {
			mark(a.IPv4Addr)
		}
	}
	for _, f := range st.fixed {
		if f.NetworkView == netview {
			mark(f.IPv4Addr)
		}
	}
	return used
}

// nextAvailable returns num free addresses of n, lowest first, skipping the
// network and broadcast addresses, anything in exclude and anything in
// taken (addresses handed out earlier in the same request).
func (st *store) nextAvailable(n *network, num int, exclude, taken map[uint32]bool) ([]string, *wapiError) {
	p := n.prefix()
	var out []string
	if p.Bits() <= 30 {
		used := st.usedIPs(n.NetworkView, p)
		first, last := bounds(p)
		for u := uint64(first) + 1; u < uint64(last) && len(out) < num; u++ {
			ip := uint32(u)
			if used[ip] || exclude[ip] || taken[ip] {
				continue
			}
			out = append(out, ip4Addr(ip).String())
		}
	}
	if len(out) < num {
		return nil, errData("Cannot find %d available IP address(es) in this network.", num)
	}
	return out, nil
}
