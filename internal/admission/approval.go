package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// approve completes what an allowed mutation will run with, from the
// bundle revision that allowed it: the network its request names,
// resolved to a CIDR; the resources it refers to, as they are now; and
// what the kind's checks resolved. The executor reads only this, so a
// bundle reloaded between admission and execution changes nothing run.
func (g *Gate) approve(ctx context.Context, req Request, body api.Validator, approval api.Approval, bundle, revision string) (api.Approval, error) {
	approval.BundleRevision = revision
	for _, name := range api.NetworkRefs(req.Kind, req.Action, body) {
		cidr, err := g.networkCIDR(bundle, revision, name)
		if err != nil {
			return approval, err
		}
		approval.NetworkCIDR = cidr
	}
	for _, ref := range api.ResourceRefs(req.Kind, req.Action, body) {
		res, err := g.Book.GetResource(ctx, ref.Kind, ref.Value, req.Caller.EntityID)
		if err != nil { // checked at decode; gone since
			return approval, refuse(api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
				Detail: fmt.Sprintf("%s %s named by %s no longer exists", ref.Kind, ref.Value, ref.Path)})
		}
		if approval.References == nil {
			approval.References = map[string]api.ApprovedReference{}
		}
		approved := api.ApprovedReference{Kind: ref.Kind, ID: res.ID, Attributes: res.Attributes}
		// The network it was made in, as its own create was approved; a
		// resource from before approvals were kept is resolved now.
		if cidr, _ := res.Attributes["network_cidr"].(string); cidr != "" {
			approved.NetworkCIDR = cidr
		} else if spec := api.NewRequestBody(ref.Kind, api.ActionCreate); spec != nil && json.Unmarshal(res.Spec, spec) == nil {
			for _, name := range api.NetworkRefs(ref.Kind, api.ActionCreate, spec) {
				if approved.NetworkCIDR, err = g.networkCIDR(bundle, revision, name); err != nil {
					return approval, err
				}
			}
		}
		if addr, _ := res.Attributes["ip_address"].(string); addr != "" && approved.NetworkCIDR != "" {
			if !cidrHolds(approved.NetworkCIDR, addr) {
				return approval, api.Invalid(req.BodyPrefix+ref.Path, "%s %s holds %s, which is not in its network %s; re-create it",
					ref.Kind, res.ID, addr, approved.NetworkCIDR)
			}
		}
		approval.References[ref.Path[1:]] = approved
	}
	return approval, nil
}

// networkCIDR is a network a request names, as the deciding revision of
// its bundle resolves it: a CIDR stands for itself; a name is looked up in
// that revision's networks. A name it does not resolve fails closed (the
// policy allowed the request, so this means the revision is gone).
func (g *Gate) networkCIDR(bundle, revision, name string) (string, error) {
	if p, err := netip.ParsePrefix(name); err == nil {
		return p.Masked().String(), nil
	}
	info, ok := g.Policy.BundleAt(bundle, revision)
	if ok {
		if n, found := info.Spec.Networks[name]; found && n.CIDR != "" {
			return n.CIDR, nil
		}
	}
	return "", refuse(api.Problem{Type: api.ProblemUnavailable, Title: "Network not resolved", Status: http.StatusServiceUnavailable,
		Detail: fmt.Sprintf("network %q has no CIDR in revision %s of bundle %s, which allowed this request (reloaded just now?); nothing was done — send the request again", name, revision, bundle)})
}

func cidrHolds(cidr, addr string) bool {
	p, err := netip.ParsePrefix(cidr)
	a, aerr := netip.ParseAddr(addr)
	return err == nil && aerr == nil && p.Contains(a)
}
