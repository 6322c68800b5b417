package calmapp

import (
	"context"
	"fmt"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
)

// A Calm app launched on a network (not on an IP reservation) takes its
// first VM's address from Infoblox, never from Calm's own pick, so no
// address is ever held by two objects. Before the launch the executor holds
// the next free address of the network in a host record without DNS
// (infoblox.ReserveAddress) that the app's request owns: tagged as an IP
// reservation's host is (owner, request id, bundle, environment) and
// SAS-Held-For "calm_app <project>/<name>". The launch takes that address
// as IP_ADDRESS. The intent is checkpointed before the call and the host's
// ref right after it; a step that died in between finds the host by the
// request's tag, so one request never holds two addresses. The host is
// released once the app is gone — by the delete, and by the compensation
// of a create that will not succeed — and is recorded on the resource
// (ip_address, infoblox_ref) so a read reports it vanishing.

// holdsAddress reports whether the executor holds the app's address in
// Infoblox: on a network, yes; on an IP reservation, the reservation does.
func holdsAddress(req api.CalmAppRequest) bool { return req.IPReservation == "" }

// heldFor is the SAS-Held-For value of an app's address.
func heldFor(project, name string) string { return "calm_app " + project + "/" + name }

// addressHostName names the host holding an app's address: unique per
// request, readable by a grid admin, and in the reserved .invalid domain
// because it is no DNS name (the host makes no DNS record).
func addressHostName(name, requestID string) string {
	return name + "." + strings.ToLower(requestID) + ".sas-calm.invalid"
}

func (e *Executor) infoblox(ctx context.Context, j executor.Job) (*infoblox.Client, error) {
	return j.Infoblox(ctx)
}

// holdAddress makes sure an address of the request's network is held in
// Infoblox for this create and that cp names it (saved): the host the
// checkpoint names if it still holds its address, else the request's host
// found by its tag, else a new one.
func (e *Executor) holdAddress(ctx context.Context, j executor.Job, req api.CalmAppRequest, cp *checkpoint) error {
	op := j.Operation
	ib, err := e.infoblox(ctx, j)
	if err != nil {
		return err
	}
	defer ib.Close(context.WithoutCancel(ctx))
	if cp.HostRef != "" {
		h, err := ib.GetHost(ctx, cp.HostRef)
		switch {
		case err == nil && h.IPv4() == cp.IPAddress:
			return nil
		case err != nil && !infoblox.IsNotFound(err):
			return executor.InfobloxError(err)
		}
		// Deleted or changed outside sas before the launch: hold another.
		e.note(ctx, j, fmt.Sprintf("the Infoblox host %s holding %s for this app is gone or changed; holding another address", cp.HostRef, cp.IPAddress))
		cp.HostRef, cp.IPAddress = "", ""
	}
	cidr, err := e.cidr(op, req.Network)
	if err != nil {
		return err
	}
	var host *infoblox.Host
	if cp.AddressAsked {
		// An earlier step asked and may have died before saving the answer.
		held, err := heldHosts(ctx, ib, op.RequestID, op.Owner)
		if err != nil {
			return executor.InfobloxError(err)
		}
		if len(held) > 0 {
			host = &held[0]
		}
	} else {
		cp.AddressAsked = true
		if err := j.Save(ctx, *cp); err != nil {
			return err
		}
	}
	if host == nil {
		h, err := ib.ReserveAddress(ctx, infoblox.AddressSpec{
			Name: addressHostName(req.Name, op.RequestID), Network: cidr, HeldFor: heldFor(req.Project, req.Name),
			Comment: fmt.Sprintf("Address of Calm app %s in project %s (held by sas, request %s)", req.Name, req.Project, op.RequestID),
			Tags:    infoblox.Tags{Owner: op.Owner, RequestID: op.RequestID, Bundle: op.Bundle, Environment: op.Environment},
		})
		if infoblox.IsNetworkFull(err) {
			return executor.Permanent(fmt.Errorf("network %s (%s) has no free address left in Infoblox for app %s: %w", req.Network, cidr, req.Name, err))
		}
		if err != nil {
			return executor.InfobloxError(err)
		}
		host = &h
	}
	if host.IPv4() == "" {
		return executor.Permanent(fmt.Errorf("the Infoblox host %s held for app %s has no IPv4 address", host.Ref, req.Name))
	}
	cp.HostRef, cp.IPAddress, cp.Network = host.Ref, host.IPv4(), cidr
	if err := j.Save(ctx, *cp); err != nil {
		return err
	}
	e.note(ctx, j, fmt.Sprintf("holding %s of %s in Infoblox (host %s) for app %s", cp.IPAddress, cidr, cp.HostRef, req.Name))
	return nil
}

// heldHosts are the hosts holding an address for a Calm app of request
// requestID: made by sas for owner, tagged with the request and held for a
// Calm app. Another's host is never taken for this request's.
func heldHosts(ctx context.Context, ib *infoblox.Client, requestID, owner string) ([]infoblox.Host, error) {
	hosts, err := ib.FindHostsByEA(ctx, infoblox.AttrRequestID, requestID)
	if err != nil {
		return nil, err
	}
	var out []infoblox.Host
	for _, h := range hosts {
		if t, managed := h.Tags(); managed && t.RequestID == requestID && t.Owner == owner &&
			strings.HasPrefix(h.EAs[infoblox.AttrHeldFor], "calm_app ") {
			out = append(out, h)
		}
	}
	return out, nil
}

// releaseAddress deletes the hosts holding an address for the app of
// request requestID: the one at ref (when it is still that request's) and
// any other its tag finds. Call it only once the app is gone: until then
// its VM uses the address. It returns what it released.
func (e *Executor) releaseAddress(ctx context.Context, j executor.Job, requestID, owner, ref string) ([]string, error) {
	ib, err := e.infoblox(ctx, j)
	if err != nil {
		return nil, err
	}
	defer ib.Close(context.WithoutCancel(ctx))
	var held []infoblox.Host
	if requestID != "" {
		if held, err = heldHosts(ctx, ib, requestID, owner); err != nil {
			return nil, err
		}
	}
	if ref != "" && !containsRef(held, ref) {
		h, err := ib.GetHost(ctx, ref)
		switch {
		case infoblox.IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			if t, managed := h.Tags(); managed && t.RequestID == requestID {
				held = append(held, h)
			} else {
				e.note(ctx, j, fmt.Sprintf("the Infoblox host %s no longer carries request %s's tags; left alone", ref, requestID))
			}
		}
	}
	var released []string
	for _, h := range held {
		if err := ib.DeleteHost(ctx, h.Ref); err != nil && !infoblox.IsNotFound(err) {
			return released, err
		}
		released = append(released, fmt.Sprintf("%s (host %s)", h.IPv4(), h.Ref))
	}
	if len(released) > 0 {
		e.note(ctx, j, "released in Infoblox: "+strings.Join(released, ", "))
	}
	return released, nil
}

func containsRef(hosts []infoblox.Host, ref string) bool {
	for _, h := range hosts {
		if h.Ref == ref {
			return true
		}
	}
	return false
}

// keepAddress carries what sas recorded of an app's held address into
// attrs (an update or a read builds them afresh from Calm).
func keepAddress(attrs, recorded map[string]any) {
	for _, k := range []string{"ip_address", "infoblox_ref"} {
		if v, ok := recorded[k]; ok {
			attrs[k] = v
		}
	}
}

// addressDrift compares the held address with what sas recorded: the host
// gone, moved or re-tagged outside sas, or the app's first VM on another
// address. attrs is updated with what Infoblox holds now.
func (e *Executor) addressDrift(ctx context.Context, j executor.Job, attrs map[string]any) ([]api.Drift, error) {
	ref, _ := j.Resource.Attributes["infoblox_ref"].(string)
	addr, _ := j.Resource.Attributes["ip_address"].(string)
	var drift []api.Drift
	if vms, _ := attrs["vms"].([]any); len(vms) > 0 {
		if vm, _ := vms[0].(map[string]any); vm != nil {
			if got, _ := vm["addresses"].([]any); len(got) > 0 && got[0] != addr {
				drift = append(drift, api.Drift{Field: "vms/0/addresses/0", Want: addr, Got: fmt.Sprint(got[0])})
			}
		}
	}
	ib, err := e.infoblox(ctx, j)
	if err != nil {
		return nil, err
	}
	defer ib.Close(context.WithoutCancel(ctx))
	want := infoblox.Tags{Owner: j.Resource.Owner, Bundle: j.Resource.Bundle, Environment: j.Resource.Environment}
	if tags, ok := j.Resource.Attributes["tags"].(map[string]any); ok {
		want.RequestID, _ = tags["request_id"].(string)
	}
	h, hostDrift, err := ib.ReadManagedHost(ctx, ref, want)
	if infoblox.IsNotFound(err) {
		attrs["infoblox_ref"] = ""
		return append(drift, api.Drift{Field: "infoblox_ref", Want: ref, Got: ""}), nil
	}
	if err != nil {
		return nil, executor.InfobloxError(err)
	}
	for _, d := range hostDrift {
		if d.Kind == infoblox.DriftMoved {
			drift = append(drift, api.Drift{Field: "infoblox_ref", Want: d.Want, Got: d.Got})
			continue
		}
		drift = append(drift, api.Drift{Field: "infoblox/extattrs/" + d.Field, Want: d.Want, Got: d.Got})
	}
	if h.IPv4() != addr {
		drift = append(drift, api.Drift{Field: "ip_address", Want: addr, Got: h.IPv4()})
	}
	attrs["infoblox_ref"], attrs["ip_address"] = h.Ref, h.IPv4()
	return drift, nil
}
