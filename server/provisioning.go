package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
)

func muxVar(r *http.Request, name string) string { return mux.Vars(r)[name] }

// evaluation is a request that passed the schema and was put to the policy.
type evaluation struct {
	request  api.Validator
	decision api.Decision
}

// evaluate is boundary ②'s decision for one request: strict decoding,
// catalog names, then the bound bundle's policy. It records the decision
// on the request's audit event. A policy failure is a denial, never an allow.
func (g *Gateway) evaluate(r *http.Request, kind, action, targetID string, body []byte, prefix string) (evaluation, error) {
	var ev evaluation
	if action == api.ActionDelete && len(strings.TrimSpace(string(body))) == 0 {
		body = []byte(`{}`) // the body of a delete is optional
	}
	if action != api.ActionRead {
		req, err := api.DecodeKind(kind, action, body, prefix)
		if err != nil {
			return ev, err
		}
		if err := g.checkCatalog(req, prefix); err != nil {
			return ev, err
		}
		ev.request = req
	}
	var doc map[string]any
	if ev.request != nil {
		var err error
		if doc, err = api.AsMap(ev.request); err != nil {
			return ev, err
		}
	}
	if targetID != "" {
		if doc == nil {
			doc = map[string]any{}
		}
		doc["id"] = targetID
	}
	c := callerFrom(r.Context())
	bb := bundleFrom(r.Context())
	d, err := g.policy.Evaluate(r.Context(), bb.info.Name, policy.Input{
		Environment: bb.environment, Kind: kind, Action: action, Request: doc,
		Caller: policy.Caller{Owner: c.Owner, EntityID: c.EntityID, Bundles: c.Bundles, Policies: c.Policies},
	})
	if err != nil {
		g.cfg.Logger.Error("policy evaluation failed; denying", "request_id", requestIDFrom(r.Context()), "error", err)
		d.Allow = false
	}
	ev.decision = d
	g.metrics.decisions.WithLabelValues(d.Bundle, boolLabel(d.Allow)).Inc()
	note(r, func(rec *audit.Record) {
		rec.Kind, rec.Action, rec.TargetID = kind, action, targetID
		rec.BundleRevision, rec.DecisionID, rec.Violations = d.Revision, d.DecisionID, d.Violations
		rec.Decision = audit.DecisionDeny
		if d.Allow {
			rec.Decision = audit.DecisionAllow
		}
		if err != nil {
			rec.Decision = audit.DecisionError
		}
		rec.ControlIDs = controlIDs(d.Violations)
	})
	return ev, nil
}

// checkCatalog refuses blueprint and module names no loaded bundle knows:
// those are guesses (the AI-hallucination threat), not policy questions.
func (g *Gateway) checkCatalog(req api.Validator, prefix string) error {
	known := func(pick func(policy.BundleSpec) []string) []string {
		var names []string
		for _, b := range g.policy.Bundles() {
			names = append(names, pick(b.Spec)...)
		}
		slices.Sort(names)
		return slices.Compact(names)
	}
	switch v := req.(type) {
	case *api.CalmAppRequest:
		names := known(func(s policy.BundleSpec) []string { return sortedKeys(s.Blueprints) })
		if !slices.Contains(names, v.Blueprint) {
			return api.Invalid(prefix+"/blueprint", "%q is not a blueprint in any catalog; known: %s", truncate(v.Blueprint, 64), strings.Join(names, ", "))
		}
	case *api.ModuleRunRequest:
		names := known(func(s policy.BundleSpec) []string { return sortedKeys(s.Modules) })
		if !slices.Contains(names, v.Module) {
			return api.Invalid(prefix+"/module", "%q is not a module in any catalog; known: %s", truncate(v.Module, 64), strings.Join(names, ", "))
		}
	}
	return nil
}

func controlIDs(vs []api.Violation) []string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ControlIDs...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func denied(d api.Decision) api.Problem {
	msgs := make([]string, 0, len(d.Violations))
	for _, v := range d.Violations {
		msgs = append(msgs, v.Message)
	}
	return api.Problem{Type: api.ProblemPolicyDenied, Title: "Denied by policy bundle " + d.Bundle, Status: http.StatusForbidden,
		Detail: strings.Join(msgs, "; "), Violations: d.Violations, DecisionID: d.DecisionID, Bundle: d.Bundle, BundleRevision: d.Revision}
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, err
	}
	if err != nil {
		return nil, api.Invalid("", "the body could not be read: %v", err)
	}
	return b, nil
}

// decide is POST /v1/decisions: the same evaluation a mutation gets, with
// no side effect. A denial is a successful answer (200, allow=false).
func (g *Gateway) decide(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var dr api.DecisionRequest
	if err := api.DecodeStrict(body, &dr); err != nil {
		writeError(w, r, err)
		return
	}
	if err := dr.Validate(); err != nil {
		writeError(w, r, err)
		return
	}
	var inner []byte
	if dr.Request != nil {
		if inner, err = json.Marshal(dr.Request); err != nil {
			writeError(w, r, err)
			return
		}
	}
	ev, err := g.evaluate(r, dr.Kind, dr.Action, dr.TargetID, inner, "/request")
	if err != nil {
		writeError(w, r, err)
		return
	}
	note(r, func(rec *audit.Record) { rec.Outcome = "dry-run" })
	writeJSON(w, http.StatusOK, ev.decision)
}

// mutate handles create, update and delete of a kind: evaluate, audit,
// then (and only then) record the operation for the orchestrator.
func (g *Gateway) mutate(kind, action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		targetID := muxVar(r, "id")
		key := r.Header.Get(api.HeaderIdempotencyKey)
		if len(key) > 128 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			writeError(w, r, api.Invalid("header:"+api.HeaderIdempotencyKey, "at most 128 printable ASCII characters without spaces"))
			return
		}
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if targetID != "" && !g.targetExists(r, kind, targetID) {
			note(r, func(rec *audit.Record) { rec.TargetID = truncate(targetID, 64) })
			writeProblem(w, r, api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
				Detail: fmt.Sprintf("no %s %q exists for this caller", kind, truncate(targetID, 64))})
			return
		}
		ev, err := g.evaluate(r, kind, action, targetID, body, "")
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !ev.decision.Allow {
			writeProblem(w, r, denied(ev.decision))
			return
		}
		if !g.orch.Handles(kind) {
			// Accepting an operation nothing will execute would leave it pending forever;
			// schema and policy still answered first, so denials stay denials.
			writeProblem(w, r, api.Problem{Type: api.ProblemNotImplemented, Title: "Kind not executable here", Status: http.StatusNotImplemented,
				Detail: fmt.Sprintf("this gateway has no executor for %s yet; POST /v1/decisions still evaluates such requests", kind)})
			return
		}
		c, bb := callerFrom(r.Context()), bundleFrom(r.Context())
		canonical, err := json.Marshal(ev.request)
		if err != nil {
			writeError(w, r, err)
			return
		}
		n := operations.New{Kind: kind, Action: action, TargetID: targetID, OwnerEntityID: c.EntityID, Owner: c.Owner,
			Bundle: bb.info.Name, Environment: bb.environment, RequestID: requestIDFrom(r.Context()),
			DecisionID: ev.decision.DecisionID, IdempotencyKey: key, Request: canonical}
		if obj, ok := ev.request.(api.NaturalKeyed); ok && action == api.ActionCreate {
			n.Object = obj
		}
		// What the request will get is decided, and audited, before anything
		// is stored: a replayed key or a create of an object already being
		// made answers from the book with no side effect at all.
		want, err := g.ops.Resolve(r.Context(), n)
		if err != nil {
			writeError(w, r, err)
			return
		}
		switch want.Outcome {
		case operations.Replayed, operations.Joined:
			note(r, func(rec *audit.Record) {
				rec.Outcome, rec.TargetID = outcomeText(want.Outcome, want.Operation.ID), want.Operation.ID
			})
			writeJSON(w, http.StatusAccepted, want.Operation)
			return
		}
		outcome, status := "accepted", http.StatusAccepted
		if want.Outcome == operations.Adopted {
			outcome, status = outcomeText(operations.Adopted, want.Resource.ID), http.StatusOK
			note(r, func(rec *audit.Record) { rec.TargetID = want.Resource.ID })
		}
		// Boundary ⑤ before ③: the record is durable before the operation exists.
		if err := g.commitAudit(r, status, outcome); err != nil {
			writeProblemTo(w, r, auditUnavailable())
			return
		}
		// From here the request is audited as allowed: it completes even if
		// the client hangs up, and if it cannot, that is audited too.
		ctx, cancel := detached(r.Context())
		defer cancel()
		op, got, err := g.ops.Create(ctx, n)
		if err != nil {
			g.cfg.Logger.Error("operation not stored after an allow was audited", "request_id", n.RequestID, "error", err)
			g.auditFollowUp(ctx, r, problemFor(err).Status, "operation not stored: "+truncate(err.Error(), 300))
			writeError(w, r, err)
			return
		}
		status = http.StatusAccepted
		if got == operations.Adopted {
			status = http.StatusOK
		}
		if got != want.Outcome {
			// A concurrent request (this replica or another) got there first.
			g.auditFollowUp(ctx, r, status, outcomeText(got, op.ID))
		}
		if got == operations.Adopted {
			writeJSON(w, status, op)
			return
		}
		if got == operations.Created {
			// The operation is durable; if the queue refuses it now, the
			// stalled-operation sweep and start-up recovery enqueue it later.
			if err := g.orch.Enqueue(ctx, op); err != nil {
				g.cfg.Logger.Warn("enqueue failed; the sweep will retry", "operation_id", op.ID, "error", err)
			}
		}
		w.Header().Set("Location", "/v1/operations/"+op.ID)
		writeJSON(w, http.StatusAccepted, op)
	}
}

// outcomeText is how the audit chain names what a mutation got.
func outcomeText(o operations.Outcome, id string) string {
	switch o {
	case operations.Replayed:
		return "idempotent replay of " + id
	case operations.Joined:
		return "joined unfinished create " + id
	case operations.Adopted:
		return "adopted existing " + id
	}
	return "accepted as " + id
}

// targetExists reports whether the caller owns a resource of kind with id.
// Resources come into being when the orchestrator completes a create.
func (g *Gateway) targetExists(r *http.Request, kind, id string) bool {
	c := callerFrom(r.Context())
	_, err := g.ops.GetResource(r.Context(), kind, id, c.EntityID, c.Owner)
	return err == nil
}

func (g *Gateway) listResources(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		rs, err := g.ops.ListResources(r.Context(), kind, c.EntityID, c.Owner)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]api.Resource, 0, len(rs))
		for _, res := range rs {
			out = append(out, resourceView(res))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (g *Gateway) getResource(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := muxVar(r, "id")
		c := callerFrom(r.Context())
		note(r, func(rec *audit.Record) { rec.TargetID = truncate(id, 64) })
		res, err := g.ops.GetResource(r.Context(), kind, id, c.EntityID, c.Owner)
		if errors.Is(err, operations.ErrResourceNotFound) {
			writeProblem(w, r, api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
				Detail: fmt.Sprintf("no %s %q exists for this caller", kind, truncate(id, 64))})
			return
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		// Read through: the downstream system is the truth; drift is reported.
		attrs, drift, err := g.orch.Read(r.Context(), res, requestIDFrom(r.Context()))
		if errors.Is(err, orchestrator.ErrGone) {
			writeProblem(w, r, api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
				Detail: fmt.Sprintf("%s %q was deleted outside sas; sas has forgotten it (re-create it to get it back)", kind, id)})
			return
		}
		if err != nil {
			writeProblem(w, r, api.Problem{Type: api.ProblemUnavailable, Title: "Downstream unavailable", Status: http.StatusServiceUnavailable,
				Detail: fmt.Sprintf("reading %s %q from its downstream system failed: %v", kind, id, err)})
			return
		}
		view := resourceView(res)
		view.Attributes, view.Drift = attrs, drift
		writeJSON(w, http.StatusOK, view)
	}
}

func resourceView(r operations.Resource) api.Resource {
	return api.Resource{ID: r.ID, Kind: r.Kind, Owner: r.Owner, Bundle: r.Bundle, Environment: r.Environment,
		Spec: r.Spec, Attributes: r.Attributes, OperationID: r.OperationID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (g *Gateway) getOperation(w http.ResponseWriter, r *http.Request) {
	c := callerFrom(r.Context())
	id := muxVar(r, "id")
	note(r, func(rec *audit.Record) { rec.TargetID = truncate(id, 64) })
	op, err := g.ops.Get(r.Context(), id, c.EntityID, c.Owner)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, op)
}
