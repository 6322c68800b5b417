package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
)

const bundleKey ctxKey = 101

// boundBundle is the bundle and environment a request is made under.
type boundBundle struct {
	info        policy.BundleInfo
	environment string
}

func bundleFrom(ctx context.Context) boundBundle {
	b, _ := ctx.Value(bundleKey).(boundBundle)
	return b
}

// withBundle is the second half of boundary ②'s entry check: the request
// names a bundle and an environment in headers; the bundle must be one the
// token is bound to (Vault policy sas-bundle-<name>) and one the gateway
// has loaded. Whether the bundle allows the environment is the policy's
// decision (and checked again after it), so that the denial carries the
// bundle's violations and control ids.
func (g *Gateway) withBundle(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		name := r.Header.Get(api.HeaderPolicyBundle)
		env := r.Header.Get(api.HeaderEnvironment)
		note(r, func(rec *audit.Record) { rec.Bundle, rec.Environment = truncate(name, 64), truncate(env, 16) })
		if name == "" {
			writeProblem(w, r, api.Problem{Type: api.ProblemBundleRequired, Title: "Policy bundle required", Status: http.StatusBadRequest,
				Detail: fmt.Sprintf("name the policy bundle in the %s header (your token is bound to: %s)", api.HeaderPolicyBundle, listOrNone(c.Bundles))})
			return
		}
		if !slices.Contains(api.Environments, env) {
			writeProblem(w, r, api.Problem{Type: api.ProblemInvalidRequest, Title: "Invalid request", Status: http.StatusUnprocessableEntity,
				Detail:        fmt.Sprintf("the %s header must be one of %s", api.HeaderEnvironment, strings.Join(api.Environments, ", ")),
				InvalidParams: []api.FieldError{{Path: "header:" + api.HeaderEnvironment, Message: fmt.Sprintf("%q is not one of %s", truncate(env, 32), strings.Join(api.Environments, ", "))}}})
			return
		}
		info, problem := g.bundleFor(c, name)
		if problem != nil {
			writeProblem(w, r, *problem)
			return
		}
		note(r, func(rec *audit.Record) { rec.BundleRevision = info.Revision })
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bundleKey, boundBundle{info: info, environment: env})))
	})
}

// bundleFor returns bundle name if the caller's token is bound to it and
// the gateway has it loaded; otherwise the problem that says which is missing.
func (g *Gateway) bundleFor(c caller.Caller, name string) (policy.BundleInfo, *api.Problem) {
	if !c.MayUseBundle(name) {
		return policy.BundleInfo{}, &api.Problem{Type: api.ProblemBundleNotBound, Title: "Bundle not bound to this token", Status: http.StatusForbidden,
			Detail: fmt.Sprintf("your token does not carry Vault policy sas-bundle-%s, so it may not use bundle %q; it is bound to: %s",
				truncate(name, 64), truncate(name, 64), listOrNone(c.Bundles))}
	}
	info, ok := g.policy.Bundle(name)
	if !ok {
		return policy.BundleInfo{}, &api.Problem{Type: api.ProblemNotFound, Title: "Bundle not loaded", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("this gateway has no policy bundle %q; ask its operators to install it", truncate(name, 64))}
	}
	return info, nil
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "no bundles"
	}
	return strings.Join(xs, ", ")
}

func summary(b policy.BundleInfo) api.BundleSummary {
	return api.BundleSummary{Name: b.Name, Revision: b.Revision, Description: b.Description, Signed: b.Signed, LoadedAt: b.LoadedAt, Error: b.Error}
}

// listBundles shows the loaded bundles this caller's token is bound to.
func (g *Gateway) listBundles(w http.ResponseWriter, r *http.Request) {
	c := callerFrom(r.Context())
	out := []api.BundleSummary{}
	for _, b := range g.policy.Bundles() {
		if c.MayUseBundle(b.Name) {
			out = append(out, summary(b))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getBundle(w http.ResponseWriter, r *http.Request) {
	name := muxVar(r, "name")
	c := callerFrom(r.Context())
	note(r, func(rec *audit.Record) { rec.TargetID = truncate(name, 64) })
	b, problem := g.bundleFor(c, name)
	if problem != nil {
		writeProblem(w, r, *problem)
		return
	}
	note(r, func(rec *audit.Record) { rec.Bundle, rec.BundleRevision = b.Name, b.Revision })
	writeJSON(w, http.StatusOK, api.BundleDetail{BundleSummary: summary(b), Data: b.Data})
}

// catalog derives what may be provisioned here from the bundle's declaration.
func (g *Gateway) catalog(w http.ResponseWriter, r *http.Request) {
	bb := bundleFrom(r.Context())
	writeJSON(w, http.StatusOK, bb.info.Catalog(bb.environment))
}
