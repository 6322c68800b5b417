package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/sas-platform/terraform-provider-sas/internal/admission"
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
)

// The handlers here are adapters: every decision is internal/admission's.
// They read the request into an admission.Request, put it to the gate,
// note what it learned on the request's audit record, and write the answer.

func muxVar(r *http.Request, name string) string { return mux.Vars(r)[name] }

// admit puts one request to the gate. The caller, the request id and (for
// bundled routes) the named bundle and environment come from the layers
// before; what the gate learned goes on the audit record, refused or not.
func (g *Gateway) admit(r *http.Request, req admission.Request) (admission.Admission, error) {
	req.Caller, req.RequestID = callerFrom(r.Context()), requestIDFrom(r.Context())
	if bb := bundleFrom(r.Context()); bb.info.Name != "" {
		req.Bundle, req.Environment = bb.info.Name, bb.environment
	}
	a, err := g.gate.Admit(r.Context(), req)
	note(r, func(rec *audit.Record) { noteAdmission(rec, a.Audit) })
	if a.Decision.DecisionID != "" {
		g.metrics.decisions.WithLabelValues(a.Decision.Bundle, boolLabel(a.Decision.Allow)).Inc()
	}
	return a, err
}

// noteAdmission lays the gate's audit fields over the request's record.
func noteAdmission(rec *audit.Record, a audit.Record) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&rec.Kind, a.Kind)
	set(&rec.Action, a.Action)
	set(&rec.TargetID, a.TargetID)
	set(&rec.Bundle, a.Bundle)
	set(&rec.Environment, a.Environment)
	set(&rec.BundleRevision, a.BundleRevision)
	set(&rec.DecisionID, a.DecisionID)
	if a.Decision != "" {
		rec.Decision = a.Decision
	}
	if len(a.Violations) > 0 {
		rec.Violations = a.Violations
	}
	rec.ControlIDs = a.ControlIDs
}

// requestRecord is the request's audit record, as admission.Commit writes it.
type requestRecord struct {
	g *Gateway
	r *http.Request
}

func (rr requestRecord) Commit(status int, outcome string) error {
	return rr.g.commitAudit(rr.r, status, outcome)
}
func (rr requestRecord) FollowUp(ctx context.Context, status int, outcome string) {
	rr.g.auditFollowUp(ctx, rr.r, status, outcome)
}
func (rr requestRecord) Note(fill func(*audit.Record)) { note(rr.r, fill) }

// answer writes what a gate error means: a refusal's problem, 503 when the
// audit record could not be written (nothing was done), any other error
// through problemFor.
func answer(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, admission.ErrNotAudited) {
		writeProblemTo(w, r, auditUnavailable())
		return
	}
	writeError(w, r, err)
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

// decide is POST /v1/decisions: the gate in dry-run mode. A denial is a
// successful answer (200, allow=false).
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
	// gate the mutation goes through, so the dry run cannot disagree with it.
	a, err := g.admit(r, admission.Request{Kind: dr.Kind, Action: dr.Action, TargetID: dr.TargetID, TargetParam: "/target_id",
		Body: dr.Request, BodyPrefix: "/request", DryRun: true})
	if err != nil {
		writeError(w, r, err)
		return
	}
	note(r, func(rec *audit.Record) { rec.Outcome = "dry-run" })
	writeJSON(w, http.StatusOK, a.Decision)
}

// mutate handles create, update and delete of a kind.
func (g *Gateway) mutate(kind, action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
		a, err := g.admit(r, admission.Request{Kind: kind, Action: action, TargetID: muxVar(r, "id"), TargetParam: "path:id",
			Body: body, IdempotencyKey: key})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !a.Decision.Allow {
			writeProblem(w, r, admission.Denied(a.Decision))
			return
		}
		got, err := g.gate.Commit(r.Context(), a, requestRecord{g, r})
		if err != nil {
			answer(w, r, err)
			return
		}
		if got.New {
			w.Header().Set("Location", "/v1/operations/"+got.Operation.ID)
		}
		writeJSON(w, got.Status, got.Operation)
	}
}

func (g *Gateway) listResources(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := g.admit(r, admission.Request{Kind: kind, Action: admission.List})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !a.Decision.Allow {
			writeProblem(w, r, admission.Denied(a.Decision))
			return
		}
		out := make([]api.Resource, 0, len(a.Resources))
		for _, res := range a.Resources {
			out = append(out, resourceView(res))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (g *Gateway) getResource(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := muxVar(r, "id")
		action := admission.Read
		if r.URL.Query().Get("refresh") == "true" {
			action = admission.Refresh
		}
		a, err := g.admit(r, admission.Request{Kind: kind, Action: action, TargetID: id, TargetParam: "path:id"})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !a.Decision.Allow {
			writeProblem(w, r, admission.Denied(a.Decision))
			return
		}
		// Read through: the downstream system is the truth; drift is reported.
		res := *a.Target
		attrs, drift, err := g.orch.Read(r.Context(), res, requestIDFrom(r.Context()), action == admission.Refresh)
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

// onOperation admits an action on the operation the path names, judged in
// the operation's own bundle and environment; false when it answered.
func (g *Gateway) onOperation(w http.ResponseWriter, r *http.Request, action string, body []byte) (admission.Admission, bool) {
	a, err := g.admit(r, admission.Request{Action: action, TargetID: muxVar(r, "id"), TargetParam: "path:id", Body: body})
	if err != nil {
		writeError(w, r, err)
		return a, false
	}
	if !a.Decision.Allow {
		writeProblem(w, r, admission.Denied(a.Decision))
		return a, false
	}
	return a, true
}

func (g *Gateway) getOperation(w http.ResponseWriter, r *http.Request) {
	if a, ok := g.onOperation(w, r, admission.Status, nil); ok {
		writeJSON(w, http.StatusOK, a.Operation)
	}
}

// getOperationLog is GET /v1/operations/{id}/log, for the operation's owner.
func (g *Gateway) getOperationLog(w http.ResponseWriter, r *http.Request) {
	a, ok := g.onOperation(w, r, admission.Log, nil)
	if !ok {
		return
	}
	l, err := g.ops.Log(r.Context(), a.Operation.ID, callerFrom(r.Context()).EntityID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// cancelOperation is POST /v1/operations/{id}/cancel: judged under the
// rules of the action it stops, then its next step compensates and ends
// it cancelled, audited.
func (g *Gateway) cancelOperation(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a, ok := g.onOperation(w, r, admission.Cancel, body)
	if !ok {
		return
	}
	op, err := g.gate.CommitCancel(r.Context(), a, callerFrom(r.Context()).EntityID, requestRecord{g, r})
	if err != nil {
		answer(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, op)
}
