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
	// secrets are the clear values of the request's secret fields, by field
	// name; the request itself carries only their digests from here on.
	secrets map[string]map[string]string
}

// evaluate is boundary ②'s decision for one request: strict decoding,
// catalog names, then the bundle's policy — for an existing resource
// (target) its own bundle and environment, with its stored spec in the
// input; for a create the request's. It records the decision on the
// request's audit event. A policy failure is a denial, never an allow.
func (g *Gateway) evaluate(r *http.Request, kind, action string, target *operations.Resource, body []byte, prefix string) (evaluation, error) {
	var ev evaluation
	if action == api.ActionDelete && len(strings.TrimSpace(string(body))) == 0 {
		body = []byte(`{}`) // the body of a delete is optional
	}
	if action != api.ActionRead {
		req, err := api.DecodeKind(kind, action, body, prefix)
		if err != nil {
			return ev, err
		}
		if err := g.checkCatalog(kind, action, req, prefix); err != nil {
			return ev, err
		}
		if err := g.checkReferences(r, req, kind, action, prefix); err != nil {
			return ev, err
		}
		// Before the policy, the store or the audit trail sees the request.
		ev.secrets = api.SealSecrets(kind, action, req, g.audit.SealSecret)
		ev.request = req
	}
	var doc map[string]any
	if ev.request != nil {
		var err error
		if doc, err = api.AsMap(ev.request); err != nil {
			return ev, err
		}
	}
	c := callerFrom(r.Context())
	bb := bundleFrom(r.Context())
	in := policy.Input{Environment: bb.environment, Kind: kind, Action: action, Request: doc,
		Caller: policy.Caller{Owner: c.Owner, EntityID: c.EntityID, Bundles: c.Bundles, Policies: c.Policies}}
	bundle, targetID := bb.info.Name, ""
	if target != nil {
		var spec any
		_ = json.Unmarshal(target.Spec, &spec)
		bundle, targetID, in.Environment = target.Bundle, target.ID, target.Environment
		in.Resource = &policy.Resource{ID: target.ID, Bundle: target.Bundle, Environment: target.Environment, Spec: spec}
		if doc == nil {
			doc = map[string]any{}
		}
		doc["id"] = target.ID
		in.Request = doc
	}
	d, err := g.policy.Evaluate(r.Context(), bundle, in)
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

// checkCatalog refuses catalog names (the kinds table says which fields
// hold them) that no loaded bundle knows: those are guesses (the
// AI-hallucination threat), not policy questions.
func (g *Gateway) checkCatalog(kind, action string, req api.Validator, prefix string) error {
	for _, ref := range api.CatalogRefs(kind, action, req) {
		var names []string
		for _, b := range g.policy.Bundles() {
			names = append(names, b.Spec.CatalogNames(ref.Catalog)...)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Contains(names, ref.Value) {
			return api.Invalid(prefix+ref.Path, "%q is not a %s in any catalog; known: %s", truncate(ref.Value, 64), ref.Field, strings.Join(names, ", "))
		}
	}
	return nil
}

// checkReferences refuses a field naming another resource (the kinds
// table's References) unless the caller owns it in the request's bundle and
// environment: a request cannot borrow what another caller or context holds.
func (g *Gateway) checkReferences(r *http.Request, req api.Validator, kind, action, prefix string) error {
	c, bb := callerFrom(r.Context()), bundleFrom(r.Context())
	for _, ref := range api.ResourceRefs(kind, action, req) {
		res, err := g.ops.GetResource(r.Context(), ref.Kind, ref.Value, c.EntityID)
		if errors.Is(err, operations.ErrResourceNotFound) {
			return api.Invalid(prefix+ref.Path, "no %s %s exists for this caller", ref.Kind, api.Quote(truncate(ref.Value, 64)))
		}
		if err != nil {
			return err
		}
		if res.Bundle != bb.info.Name || res.Environment != bb.environment {
			return api.Invalid(prefix+ref.Path, "%s %s was made under bundle %s in environment %s; a %s here can use only what this bundle made in %s",
				ref.Kind, res.ID, res.Bundle, res.Environment, kind, bb.environment)
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
	// The embedded request is decoded from its own bytes by exactly the
	// decoder the mutation uses, so the dry run cannot disagree with it.
	var target *operations.Resource
	if dr.TargetID != "" {
		res, ok := g.target(w, r, dr.Kind, dr.TargetID, "/target_id")
		if !ok {
			return
		}
		target = &res
	}
	ev, err := g.evaluate(r, dr.Kind, dr.Action, target, dr.Request, "/request")
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
		var target *operations.Resource
		if targetID != "" {
			res, ok := g.target(w, r, kind, targetID, "path:id")
			if !ok {
				return
			}
			target = &res
		}
		ev, err := g.evaluate(r, kind, action, target, body, "")
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
		bundle, environment := bb.info.Name, bb.environment
		if target != nil { // executed where it lives: its environment's sub-token role
			bundle, environment = target.Bundle, target.Environment
		}
		n := operations.New{Kind: kind, Action: action, TargetID: targetID, OwnerEntityID: c.EntityID, Owner: c.Owner,
			Bundle: bundle, Environment: environment, RequestID: requestIDFrom(r.Context()),
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
		if len(ev.secrets) > 0 && want.Outcome != operations.Adopted {
			// The executor gets the clear values from Vault, keyed by this
			// request's id; the operation holds only their digests.
			if err := g.vault.DropRequestSecrets(ctx, environment, n.RequestID, ev.secrets); err != nil {
				g.auditFollowUp(ctx, r, http.StatusServiceUnavailable, "secret values not stored in Vault; nothing was started")
				writeError(w, r, err)
				return
			}
		}
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

// target loads the existing resource a request names, or answers why it
// cannot act on it: an id that cannot be one (422, naming param), no such
// resource of this caller's entity (404), or headers that name another
// bundle or environment than the resource's own (409, naming them). A
// resource is judged and executed only in the context it was made in.
func (g *Gateway) target(w http.ResponseWriter, r *http.Request, kind, id, param string) (operations.Resource, bool) {
	note(r, func(rec *audit.Record) { rec.TargetID = truncate(id, 64) })
	refuse := func(p api.Problem) (operations.Resource, bool) {
		note(r, func(rec *audit.Record) { rec.Decision = audit.DecisionRefused })
		writeProblem(w, r, p)
		return operations.Resource{}, false
	}
	if !api.ValidID(id) {
		return refuse(problemFor(api.Invalid(param, "%s is not a resource id (letters, digits, '_' and '-', at most 64)", api.Quote(truncate(id, 64)))))
	}
	c, bb := callerFrom(r.Context()), bundleFrom(r.Context())
	res, err := g.ops.GetResource(r.Context(), kind, id, c.EntityID)
	if errors.Is(err, operations.ErrResourceNotFound) {
		return refuse(api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no %s %q exists for this caller", kind, id)})
	}
	if err != nil {
		writeError(w, r, err)
		return res, false
	}
	if res.Bundle != bb.info.Name || res.Environment != bb.environment {
		return refuse(api.Problem{Type: api.ProblemWrongContext, Title: "Resource belongs to another bundle or environment",
			Status: http.StatusConflict, Bundle: res.Bundle,
			Detail: fmt.Sprintf("%s %s was made under bundle %s in environment %s, and is judged and changed only there; "+
				"this request names bundle %s in environment %s — send %s: %s and %s: %s (a provider alias configured with them)",
				kind, id, res.Bundle, res.Environment, bb.info.Name, bb.environment,
				api.HeaderPolicyBundle, res.Bundle, api.HeaderEnvironment, res.Environment)})
	}
	return res, true
}

func (g *Gateway) listResources(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		rs, err := g.ops.ListResources(r.Context(), kind, c.EntityID)
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
		res, ok := g.target(w, r, kind, id, "path:id")
		if !ok {
			return
		}
		// Read through: the downstream system is the truth; drift is reported.
		attrs, drift, err := g.orch.Read(r.Context(), res, requestIDFrom(r.Context()), r.URL.Query().Get("refresh") == "true")
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
	if op, ok := g.callerOperation(w, r); ok {
		writeJSON(w, http.StatusOK, op)
	}
}

// getOperationLog is GET /v1/operations/{id}/log, for the operation's owner.
func (g *Gateway) getOperationLog(w http.ResponseWriter, r *http.Request) {
	op, ok := g.callerOperation(w, r)
	if !ok {
		return
	}
	l, err := g.ops.Log(r.Context(), op.ID, callerFrom(r.Context()).EntityID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// callerOperation loads the caller's operation named by the path, or
// answers why not (an id that cannot be one, or none of the caller's).
func (g *Gateway) callerOperation(w http.ResponseWriter, r *http.Request) (api.Operation, bool) {
	id := muxVar(r, "id")
	note(r, func(rec *audit.Record) { rec.TargetID = truncate(id, 64) })
	if !api.ValidID(id) {
		writeError(w, r, api.Invalid("path:id", "%s is not an operation id (letters, digits, '_' and '-', at most 64)", api.Quote(truncate(id, 64))))
		return api.Operation{}, false
	}
	op, err := g.ops.Get(r.Context(), id, callerFrom(r.Context()).EntityID)
	if err != nil {
		writeError(w, r, err)
		return op, false
	}
	return op, true
}

// cancelOperation is POST /v1/operations/{id}/cancel: the caller's own
// unfinished operation is marked for cancellation and woken; its next step
// runs the executor's compensation and ends it cancelled, audited. A step
// already running finishes first (and may finish the operation).
func (g *Gateway) cancelOperation(w http.ResponseWriter, r *http.Request) {
	op, ok := g.callerOperation(w, r)
	if !ok {
		return
	}
	id := op.ID
	finished := func(state string) {
		writeProblem(w, r, api.Problem{Type: api.ProblemOperationDone, Title: "Operation already finished", Status: http.StatusConflict,
			Detail: fmt.Sprintf("operation %s already %s; there is nothing to cancel", id, state)})
	}
	if operations.Terminal(op.State) {
		finished(op.State)
		return
	}
	// Boundary ⑤ before the side effect, as for every mutation.
	note(r, func(rec *audit.Record) { rec.Kind, rec.Bundle, rec.Environment = op.Kind, op.Bundle, op.Environment })
	if err := g.commitAudit(r, http.StatusAccepted, "cancel requested"); err != nil {
		writeProblemTo(w, r, auditUnavailable())
		return
	}
	ctx, cancel := detached(r.Context())
	defer cancel()
	op, err := g.ops.RequestCancel(ctx, id, callerFrom(r.Context()).EntityID)
	var done *operations.TerminalError
	if errors.As(err, &done) { // it finished in between
		g.auditFollowUp(ctx, r, http.StatusConflict, "cancel not applied: operation already "+done.State)
		finished(done.State)
		return
	}
	if err != nil {
		g.auditFollowUp(ctx, r, problemFor(err).Status, "cancel not stored: "+truncate(err.Error(), 300))
		writeError(w, r, err)
		return
	}
	if err := g.orch.Wake(ctx, op); err != nil {
		g.cfg.Logger.Warn("wake for cancel failed; the next scheduled step cancels", "operation_id", id, "error", err)
	}
	writeJSON(w, http.StatusAccepted, op)
}
