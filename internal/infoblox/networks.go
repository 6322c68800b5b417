package infoblox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Network is an IPv4 network on the grid.
type Network struct {
	Ref         string
	CIDR        string
	NetworkView string
	Comment     string
	EAs         map[string]string
}

const networkFields = "network,network_view,comment,extattrs"

type wireNetwork struct {
	Ref         string `json:"_ref"`
	Network     string `json:"network"`
	NetworkView string `json:"network_view"`
	Comment     string `json:"comment"`
	ExtAttrs    map[string]struct {
		Value json.RawMessage `json:"value"`
	} `json:"extattrs"`
}

func (w wireNetwork) network() Network {
	return Network{Ref: w.Ref, CIDR: w.Network, NetworkView: w.NetworkView, Comment: w.Comment, EAs: eaValues(w.ExtAttrs)}
}

// GetNetworkByCIDR returns the network cidr of a network view ("" =
// default). None satisfies IsNotFound.
func (c *Client) GetNetworkByCIDR(ctx context.Context, cidr, netview string) (Network, error) {
	if netview == "" {
		netview = "default"
	}
	q := url.Values{"network": {cidr}, "network_view": {netview}, "_return_fields": {networkFields}}
	var ws []wireNetwork
	if err := c.call(ctx, http.MethodGet, "network", q, nil, &ws); err != nil {
		return Network{}, err
	}
	if len(ws) == 0 {
		return Network{}, fmt.Errorf("infoblox: network %s in network view %s: %w", cidr, netview, ErrNotFound)
	}
	return ws[0].network(), nil
}

// NetworkFilter narrows ListNetworks; zero values match everything.
type NetworkFilter struct {
	NetworkView string
	EAs         map[string]string // every attribute must equal its value
}

// ListNetworks returns the networks matching f, following pages.
func (c *Client) ListNetworks(ctx context.Context, f NetworkFilter) ([]Network, error) {
	q := url.Values{"_return_fields": {networkFields}}
	if f.NetworkView != "" {
		q.Set("network_view", f.NetworkView)
	}
	for k, v := range f.EAs {
		q.Set("*"+k, v)
	}
	var out []Network
	err := c.pagedSearch(ctx, "network", q, func(raw json.RawMessage) error {
		var w wireNetwork
		if err := json.Unmarshal(raw, &w); err != nil {
			return fmt.Errorf("infoblox: decode network: %w", err)
		}
		out = append(out, w.network())
		return nil
	})
	return out, err
}

// NextAvailableIPs asks the grid for num free addresses of a network
// (skipping exclude). It reserves nothing: to take an address, use
// CreateHost, which allocates atomically.
func (c *Client) NextAvailableIPs(ctx context.Context, cidr, netview string, num int, exclude []string) ([]string, error) {
	if num < 1 {
		return nil, fmt.Errorf("infoblox: num must be at least 1, got %d", num)
	}
	n, err := c.GetNetworkByCIDR(ctx, cidr, netview)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"num": num}
	if len(exclude) > 0 {
		body["exclude"] = exclude
	}
	var res struct {
		IPs []string `json:"ips"`
	}
	q := url.Values{"_function": {"next_available_ip"}}
	if err := c.call(ctx, http.MethodPost, n.Ref, q, body, &res); err != nil {
		return nil, err
	}
	return res.IPs, nil
}
