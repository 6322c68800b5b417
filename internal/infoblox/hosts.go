package infoblox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Host is a record:host as sas reads it.
type Host struct {
	Ref             string
	Name            string // FQDN
	View            string // DNS view
	NetworkView     string
	Addresses       []HostAddress
	Aliases         []string
	Comment         string
	ConfigureForDNS bool
	EAs             map[string]string // every extensible attribute, sas's and others'
}

// HostAddress is one IPv4 address of a host.
type HostAddress struct {
	Ref              string
	IPv4Addr         string
	MAC              string
	ConfigureForDHCP bool
}

// IPv4 is the host's first address ("" if it has none).
func (h Host) IPv4() string {
	if len(h.Addresses) == 0 {
		return ""
	}
	return h.Addresses[0].IPv4Addr
}

// MAC is the MAC of the host's first address ("" if none).
func (h Host) MAC() string {
	if len(h.Addresses) == 0 {
		return ""
	}
	return h.Addresses[0].MAC
}

// Tags reads the host's sas tags; managed reports the SAS-Managed marker.
func (h Host) Tags() (Tags, bool) { return TagsOf(h.EAs) }

const hostFields = "name,view,network_view,ipv4addrs,aliases,comment,configure_for_dns,extattrs"

type wireHost struct {
	Ref         string `json:"_ref"`
	Name        string `json:"name"`
	View        string `json:"view"`
	NetworkView string `json:"network_view"`
	IPv4Addrs   []struct {
		Ref              string `json:"_ref"`
		IPv4Addr         string `json:"ipv4addr"`
		MAC              string `json:"mac"`
		ConfigureForDHCP bool   `json:"configure_for_dhcp"`
	} `json:"ipv4addrs"`
	Aliases         []string `json:"aliases"`
	Comment         string   `json:"comment"`
	ConfigureForDNS bool     `json:"configure_for_dns"`
	ExtAttrs        map[string]struct {
		Value json.RawMessage `json:"value"`
	} `json:"extattrs"`
}

func (w wireHost) host() Host {
	h := Host{Ref: w.Ref, Name: w.Name, View: w.View, NetworkView: w.NetworkView, Aliases: w.Aliases,
		Comment: w.Comment, ConfigureForDNS: w.ConfigureForDNS, EAs: eaValues(w.ExtAttrs)}
	for _, a := range w.IPv4Addrs {
		h.Addresses = append(h.Addresses, HostAddress{Ref: a.Ref, IPv4Addr: a.IPv4Addr, MAC: a.MAC, ConfigureForDHCP: a.ConfigureForDHCP})
	}
	return h
}

// HostSpec is a host record to create, with its address allocated from
// Network by the grid in the same call.
type HostSpec struct {
	Name        string   // FQDN, e.g. vm1.example.com
	View        string   // DNS view; default "default"
	NetworkView string   // default "default"
	Network     string   // CIDR to allocate the next free address from
	MAC         string   // optional
	DHCP        bool     // serve the address by DHCP (needs MAC)
	Aliases     []string // optional FQDNs
	Comment     string
	EAs         map[string]string // the caller's own attributes; the SAS- prefix is reserved
	Tags        Tags              // required
}

func (s *HostSpec) normalize() error {
	s.Name = strings.TrimSpace(s.Name)
	if s.Name == "" {
		return errors.New("infoblox: host name is required")
	}
	if s.View == "" {
		s.View = "default"
	}
	if s.NetworkView == "" {
		s.NetworkView = "default"
	}
	p, err := netip.ParsePrefix(s.Network)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return fmt.Errorf("infoblox: network %q is not an IPv4 network in CIDR notation", s.Network)
	}
	if s.DHCP && s.MAC == "" {
		return errors.New("infoblox: a MAC address is required to serve the host by DHCP")
	}
	if err := checkOwnAttributes(s.EAs); err != nil {
		return err
	}
	return s.Tags.Validate()
}

// CreateHost creates a host record whose address the grid allocates from
// spec.Network in the same call (func:nextavailableip), so concurrent
// creates never race for an address. The host carries spec.Tags as
// extensible attributes.
//
// Retrying is safe: if the name is already taken by a host this same
// request (SAS-Request-ID) created, that host is returned instead of an
// error. If the grid does not know the SAS-* attributes yet, they are
// defined (EnsureTagDefinitions) and the create is tried once more.
func (c *Client) CreateHost(ctx context.Context, spec HostSpec) (Host, error) {
	if err := spec.normalize(); err != nil {
		return Host{}, err
	}
	addr := map[string]any{"ipv4addr": fmt.Sprintf("func:nextavailableip:%s,%s", spec.Network, spec.NetworkView)}
	if spec.MAC != "" {
		addr["mac"] = spec.MAC
	}
	if spec.DHCP {
		addr["configure_for_dhcp"] = true
	}
	body := map[string]any{
		"name":              spec.Name,
		"view":              spec.View,
		"network_view":      spec.NetworkView,
		"configure_for_dns": true,
		"ipv4addrs":         []any{addr},
		"extattrs":          eaWire(spec.EAs, spec.Tags.Attributes()),
	}
	if spec.Comment != "" {
		body["comment"] = spec.Comment
	}
	if len(spec.Aliases) > 0 {
		body["aliases"] = spec.Aliases
	}
	h, err := c.postHost(ctx, body)
	if IsConflict(err) {
		if h, ferr := c.FindHostByName(ctx, spec.Name, spec.View); ferr == nil {
			if t, managed := h.Tags(); managed && t.RequestID == spec.Tags.RequestID {
				c.log.Info("host already created by this request; returning it", "name", spec.Name, "request_id", spec.Tags.RequestID)
				return h, nil
			}
		}
	}
	return h, err
}

// postHost creates a record:host from body. If the grid does not know the
// SAS-* attributes yet, they are defined (EnsureTagDefinitions) and the
// create is tried once more.
func (c *Client) postHost(ctx context.Context, body map[string]any) (Host, error) {
	q := url.Values{"_return_fields": {hostFields}}
	var w wireHost
	err := c.call(ctx, http.MethodPost, "record:host", q, body, &w)
	if isUndefinedTag(err) {
		if derr := c.EnsureTagDefinitions(ctx); derr != nil {
			return Host{}, fmt.Errorf("%w (and defining them failed: %v)", err, derr)
		}
		err = c.call(ctx, http.MethodPost, "record:host", q, body, &w)
	}
	if err != nil {
		return Host{}, err
	}
	return w.host(), nil
}

// AddressSpec is an address to hold for a machine that another system
// configures (a VM a Calm blueprint builds with a fixed address): a
// record:host with configure_for_dns false — it makes no DNS record and
// needs no zone or DNS view — whose address the grid allocates from Network
// in the same call, as CreateHost does, so it is never handed out twice.
type AddressSpec struct {
	// Name is the host's name: unique per request (a retry of the same
	// request finds its own host by it). Without DNS it need not lie in a
	// zone, but it must still be a valid host name.
	Name        string
	NetworkView string // default "default"
	Network     string // CIDR to allocate the next free address from
	Comment     string
	// HeldFor is what the address is held for (AttrHeldFor), e.g.
	// "calm_app sas-sbx/web-1": the kind and name of the resource whose
	// request holds it. Required.
	HeldFor string
	Tags    Tags // required
}

func (s *AddressSpec) normalize() error {
	s.Name = strings.TrimSpace(s.Name)
	if s.Name == "" {
		return errors.New("infoblox: host name is required")
	}
	if s.NetworkView == "" {
		s.NetworkView = "default"
	}
	p, err := netip.ParsePrefix(s.Network)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return fmt.Errorf("infoblox: network %q is not an IPv4 network in CIDR notation", s.Network)
	}
	if strings.TrimSpace(s.HeldFor) == "" {
		return errors.New("infoblox: an address held without DNS must say what it is held for")
	}
	return s.Tags.Validate()
}

// ReserveAddress holds the next free address of spec.Network in a host
// record without DNS (configure_for_dns false, no view), tagged with
// spec.Tags and spec.HeldFor. The address counts as used for every later
// next-available allocation, by sas or anyone, until DeleteHost releases it.
//
// Retrying is safe: if the name is already taken by a host this same
// request (SAS-Request-ID) holds, that host is returned instead of an
// error. Callers that may have lost a create's answer should still look
// for their host by its SAS-Request-ID first (FindHostsByEA).
func (c *Client) ReserveAddress(ctx context.Context, spec AddressSpec) (Host, error) {
	if err := spec.normalize(); err != nil {
		return Host{}, err
	}
	attrs := spec.Tags.Attributes()
	attrs[AttrHeldFor] = spec.HeldFor
	body := map[string]any{
		"name":              spec.Name,
		"network_view":      spec.NetworkView,
		"configure_for_dns": false,
		"ipv4addrs":         []any{map[string]any{"ipv4addr": fmt.Sprintf("func:nextavailableip:%s,%s", spec.Network, spec.NetworkView)}},
		"extattrs":          eaWire(attrs),
	}
	if spec.Comment != "" {
		body["comment"] = spec.Comment
	}
	h, err := c.postHost(ctx, body)
	if IsConflict(err) {
		// Not by name: a host without DNS lives in no DNS view to search.
		if hosts, ferr := c.FindHostsByEA(ctx, AttrRequestID, spec.Tags.RequestID); ferr == nil {
			for _, h := range hosts {
				if t, managed := h.Tags(); managed && t.RequestID == spec.Tags.RequestID && strings.EqualFold(h.Name, spec.Name) {
					c.log.Info("address already held by this request; returning its host", "name", spec.Name, "request_id", spec.Tags.RequestID)
					return h, nil
				}
			}
		}
	}
	return h, err
}

// GetHost reads the host at ref. A host that no longer exists (or whose
// reference changed because it was renamed) satisfies IsNotFound.
func (c *Client) GetHost(ctx context.Context, ref string) (Host, error) {
	if !strings.HasPrefix(ref, "record:host/") {
		return Host{}, fmt.Errorf("infoblox: %q is not a host record reference", ref)
	}
	var w wireHost
	if err := c.call(ctx, http.MethodGet, ref, url.Values{"_return_fields": {hostFields}}, nil, &w); err != nil {
		return Host{}, err
	}
	return w.host(), nil
}

// FindHostByName returns the host called name (case-insensitively, as DNS
// compares) in a DNS view ("" = default). None satisfies IsNotFound.
func (c *Client) FindHostByName(ctx context.Context, name, view string) (Host, error) {
	if view == "" {
		view = "default"
	}
	q := url.Values{"name:": {name}, "view": {view}, "_return_fields": {hostFields}}
	var ws []wireHost
	if err := c.call(ctx, http.MethodGet, "record:host", q, nil, &ws); err != nil {
		return Host{}, err
	}
	if len(ws) == 0 {
		return Host{}, fmt.Errorf("infoblox: host %s in view %s: %w", name, view, ErrNotFound)
	}
	return ws[0].host(), nil
}

// FindHostsByEA returns every host whose extensible attribute name equals
// value, following pages.
func (c *Client) FindHostsByEA(ctx context.Context, name, value string) ([]Host, error) {
	q := url.Values{"*" + name: {value}, "_return_fields": {hostFields}}
	var out []Host
	err := c.pagedSearch(ctx, "record:host", q, func(raw json.RawMessage) error {
		var w wireHost
		if err := json.Unmarshal(raw, &w); err != nil {
			return fmt.Errorf("infoblox: decode host: %w", err)
		}
		out = append(out, w.host())
		return nil
	})
	if undef, ok := undefinedEA(err); ok && undef == name {
		// No object can carry an attribute the grid has no definition for.
		return nil, nil
	}
	return out, err
}

// HostUpdate changes a host's mutable fields; nil fields stay as they are.
type HostUpdate struct {
	MAC       *string   // of the host's first address; "" removes it (and DHCP)
	Aliases   *[]string // the full new list
	Comment   *string
	EAs       map[string]string // merged into the host's attributes; SAS- prefix reserved
	RemoveEAs []string          // removed; SAS- prefix reserved
	Tags      *Tags             // rewrite the sas tags (e.g. to repair drift)
}

// UpdateHost applies u to the host at ref in one call and returns the
// host as the grid now has it.
func (c *Client) UpdateHost(ctx context.Context, ref string, u HostUpdate) (Host, error) {
	if err := checkOwnAttributes(u.EAs); err != nil {
		return Host{}, err
	}
	for _, k := range u.RemoveEAs {
		if strings.HasPrefix(k, TagPrefix) {
			return Host{}, fmt.Errorf("infoblox: extensible attribute %s uses the reserved prefix %s", k, TagPrefix)
		}
	}
	body := map[string]any{}
	if u.Comment != nil {
		body["comment"] = *u.Comment
	}
	if u.Aliases != nil {
		aliases := *u.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		body["aliases"] = aliases
	}
	var add []map[string]string
	if len(u.EAs) > 0 {
		add = append(add, u.EAs)
	}
	if u.Tags != nil {
		if err := u.Tags.Validate(); err != nil {
			return Host{}, err
		}
		add = append(add, u.Tags.Attributes())
	}
	if len(add) > 0 {
		body["extattrs+"] = eaWire(add...)
	}
	if len(u.RemoveEAs) > 0 {
		del := map[string]any{}
		for _, k := range u.RemoveEAs {
			del[k] = map[string]any{}
		}
		body["extattrs-"] = del
	}
	if u.MAC != nil {
		cur, err := c.GetHost(ctx, ref)
		if err != nil {
			return Host{}, err
		}
		if len(cur.Addresses) == 0 {
			return Host{}, fmt.Errorf("infoblox: host %s has no address to set a MAC on", cur.Name)
		}
		addrs := make([]any, 0, len(cur.Addresses))
		for i, a := range cur.Addresses {
			e := map[string]any{"ipv4addr": a.IPv4Addr, "mac": a.MAC, "configure_for_dhcp": a.ConfigureForDHCP}
			if i == 0 {
				e["mac"] = *u.MAC
				if *u.MAC == "" {
					e["configure_for_dhcp"] = false
				}
			}
			addrs = append(addrs, e)
		}
		body["ipv4addrs"] = addrs
	}
	if len(body) == 0 {
		return c.GetHost(ctx, ref)
	}
	var w wireHost
	if err := c.call(ctx, http.MethodPut, ref, url.Values{"_return_fields": {hostFields}}, body, &w); err != nil {
		return Host{}, err
	}
	return w.host(), nil
}

// DeleteHost deletes the host at ref, releasing its address and DNS
// records. A host that is already gone returns an error matching
// ErrAlreadyGone (and IsNotFound), which callers may treat as success.
func (c *Client) DeleteHost(ctx context.Context, ref string) error {
	if !strings.HasPrefix(ref, "record:host/") {
		return fmt.Errorf("infoblox: %q is not a host record reference", ref)
	}
	err := c.call(ctx, http.MethodDelete, ref, nil, nil, nil)
	if IsNotFound(err) {
		return fmt.Errorf("%w: %w", ErrAlreadyGone, err)
	}
	return err
}
