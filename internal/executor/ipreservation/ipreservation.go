// Package ipreservation is the executor of the ip_reservation kind: an
// Infoblox host record (address and DNS in one atomic call), tagged with who
// and what made it.
package ipreservation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
)

var _ executor.Executor = (*Executor)(nil)

// Executor provisions IP reservations as Infoblox host records.
type Executor struct{}

func (e *Executor) client(ctx context.Context, j executor.Job) (*infoblox.Client, error) {
	return j.Infoblox(ctx)
}

func (e *Executor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	c, err := e.client(ctx, j)
	if err != nil {
		return executor.Result{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	switch j.Operation.Action {
	case api.ActionCreate:
		return e.create(ctx, c, j)
	case api.ActionUpdate:
		return e.update(ctx, c, j)
	case api.ActionDelete:
		ref, _ := j.Resource.Attributes["ref"].(string)
		if err := c.DeleteHost(ctx, ref); err != nil && !infoblox.IsNotFound(err) {
			return executor.Result{}, executor.InfobloxError(err)
		}
		return executor.Result{ResourceID: j.Resource.ID, Deleted: true}, nil
	}
	return executor.Result{}, executor.Permanent(fmt.Errorf("ip_reservation cannot %s", j.Operation.Action))
}

func (e *Executor) create(ctx context.Context, c *infoblox.Client, j executor.Job) (executor.Result, error) {
	op := j.Operation
	var req api.IPReservationRequest
	if err := json.Unmarshal(op.Request, &req); err != nil {
		return executor.Result{}, executor.Permanent(fmt.Errorf("operation %s request: %w", op.ID, err))
	}
	// An earlier attempt may have created the host and died before
	// recording it: the request id tag finds it, so a retry never allocates twice.
	existing, err := c.FindHostsByEA(ctx, infoblox.AttrRequestID, op.RequestID)
	if err != nil {
		return executor.Result{}, executor.InfobloxError(err)
	}
	cidr, err := executor.ApprovedNetwork(op, req.Network)
	if err != nil {
		return executor.Result{}, err
	}
	if len(existing) > 0 {
		return reservationResult(op.ID, existing[0], cidr), nil
	}
	if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
		return executor.Result{}, executor.Permanent(fmt.Errorf("network %q is not an IPv4 network", cidr))
	}
	fqdn := req.Hostname + "." + req.DNSZone
	host, err := c.CreateHost(ctx, infoblox.HostSpec{
		Name: fqdn, View: req.DNSView, Network: cidr, MAC: req.MAC,
		Aliases: req.Aliases, Comment: req.Comment,
		Tags: infoblox.Tags{Owner: op.Owner, RequestID: op.RequestID, Bundle: op.Bundle, Environment: op.Environment},
	})
	if infoblox.IsConflict(err) {
		// The gateway adopts what sas made for this caller before it gets
		// here; a name still taken was made outside sas (or by a request
		// sas has no record of). Say whose it is; never take it over.
		return executor.Result{}, executor.Permanent(takenName(ctx, c, fqdn, req.DNSView, op.Owner, err))
	}
	if err != nil {
		return executor.Result{}, executor.InfobloxError(err)
	}
	return reservationResult(op.ID, host, cidr), nil
}

// takenName describes the host that holds fqdn in Infoblox already.
// Whose it is, and where, is said only to its owner.
func takenName(ctx context.Context, c *infoblox.Client, fqdn, view, caller string, cause error) error {
	if view == "" {
		view = api.DefaultDNSView
	}
	h, err := c.FindHostByName(ctx, fqdn, view)
	if err != nil {
		return fmt.Errorf("Infoblox already holds a record named %s in view %s (%v); choose another hostname, or have it removed from Infoblox", fqdn, view, cause)
	}
	tags, managed := h.Tags()
	switch {
	case !managed:
		return fmt.Errorf("Infoblox already holds host %s in view %s (%s, %s); it was made outside sas, and sas does not take over "+
			"objects it did not make: choose another hostname, or have the host removed from Infoblox", fqdn, view, h.Ref, h.IPv4())
	case tags.Owner != caller:
		return fmt.Errorf("Infoblox already holds host %s in view %s and it belongs to another caller; choose another hostname", fqdn, view)
	}
	return fmt.Errorf("Infoblox already holds host %s in view %s (%s, %s), made by sas for you under bundle %s in %s (request %s), "+
		"but sas holds no record of it (it predates this gateway's database, or the record was lost), so it is not adopted: "+
		"have it removed from Infoblox, or choose another hostname", fqdn, view, h.Ref, h.IPv4(), tags.Bundle, tags.Environment, tags.RequestID)
}

func (e *Executor) update(ctx context.Context, c *infoblox.Client, j executor.Job) (executor.Result, error) {
	var u api.IPReservationUpdate
	if err := json.Unmarshal(j.Operation.Request, &u); err != nil {
		return executor.Result{}, executor.Permanent(fmt.Errorf("operation %s request: %w", j.Operation.ID, err))
	}
	ref, _ := j.Resource.Attributes["ref"].(string)
	host, err := c.UpdateHost(ctx, ref, infoblox.HostUpdate{MAC: u.MAC, Aliases: u.Aliases, Comment: u.Comment})
	if infoblox.IsNotFound(err) {
		return executor.Result{}, executor.Permanent(fmt.Errorf("the host record %s was deleted outside sas; delete and re-create the reservation", ref))
	}
	if err != nil {
		return executor.Result{}, executor.InfobloxError(err)
	}
	res := reservationResult(j.Operation.ID, host, networkOf(j.Resource))
	res.ResourceID = j.Resource.ID
	return res, nil
}

// Compensate deletes whatever host this operation's request created.
func (e *Executor) Compensate(ctx context.Context, j executor.Job) error {
	if j.Operation.Action != api.ActionCreate {
		return nil
	}
	c, err := e.client(ctx, j)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	hosts, err := c.FindHostsByEA(ctx, infoblox.AttrRequestID, j.Operation.RequestID)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if _, managed := h.Tags(); managed {
			if err := c.DeleteHost(ctx, h.Ref); err != nil && !infoblox.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// Read fetches the host and reports drift against what sas recorded.
func (e *Executor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	c, err := e.client(ctx, j)
	if err != nil {
		return nil, nil, false, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ref, _ := j.Resource.Attributes["ref"].(string)
	host, err := c.GetHost(ctx, ref)
	if infoblox.IsNotFound(err) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, executor.InfobloxError(err)
	}
	want := infoblox.Tags{Owner: j.Resource.Owner, Bundle: j.Resource.Bundle, Environment: j.Resource.Environment}
	if tags, ok := j.Resource.Attributes["tags"].(map[string]any); ok {
		want.RequestID, _ = tags["request_id"].(string)
	}
	var drift []api.Drift
	for _, d := range infoblox.CheckDrift(host, want) {
		drift = append(drift, api.Drift{Field: "extattrs/" + d.Field, Want: d.Want, Got: d.Got})
	}
	for field, got := range map[string]string{"ip_address": host.IPv4(), "mac": host.MAC(), "comment": host.Comment} {
		if w, _ := j.Resource.Attributes[field].(string); w != got {
			drift = append(drift, api.Drift{Field: field, Want: w, Got: got})
		}
	}
	return reservationResult(j.Operation.ID, host, networkOf(j.Resource)).Attributes, drift, false, nil
}

// networkOf is the network a reservation was made in, as its create was
// approved (the CIDR, kept so whatever uses its address later gets the
// same network, however the bundle names networks by then).
func networkOf(r *operations.Resource) string {
	cidr, _ := r.Attributes["network_cidr"].(string)
	return cidr
}

func reservationResult(opID string, h infoblox.Host, networkCIDR string) executor.Result {
	tags, _ := h.Tags()
	aliases := h.Aliases
	if aliases == nil {
		aliases = []string{}
	}
	return executor.Result{
		ResourceID: "ipr-" + strings.TrimPrefix(opID, "op-"),
		Attributes: map[string]any{
			"ip_address": h.IPv4(), "fqdn": h.Name, "ref": h.Ref, "dns_view": h.View, "network_view": h.NetworkView,
			"mac": h.MAC(), "aliases": aliases, "comment": h.Comment, "network_cidr": networkCIDR,
			"tags": map[string]any{"owner": tags.Owner, "request_id": tags.RequestID, "bundle": tags.Bundle, "environment": tags.Environment, "managed": true},
		},
	}
}
