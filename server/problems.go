package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/admission"
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// problemFor is the one place that maps errors to HTTP problems. Unknown
// errors become a 500 whose detail says nothing internal.
func problemFor(err error) api.Problem {
	var refusal *caller.Refusal
	var unavailable *vault.UnavailableError
	var invalid *api.InvalidRequestError
	var maxBytes *http.MaxBytesError
	var conflict *operations.IdempotencyConflictError
	var exists *operations.ConflictError
	var refused *admission.Refusal
	switch {
	case errors.As(err, &refused):
		return refused.Problem
	case errors.As(err, &refusal):
		return refusal.Problem()
	case errors.As(err, &invalid):
		return api.Problem{Type: api.ProblemInvalidRequest, Title: "Invalid request", Status: http.StatusUnprocessableEntity,
			Detail: invalid.Error(), InvalidParams: invalid.Fields}
	case errors.As(err, &maxBytes):
		return api.Problem{Type: api.ProblemBodyTooLarge, Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body is larger than this gateway's limit of %d bytes", maxBytes.Limit)}
	case errors.As(err, &conflict):
		return api.Problem{Type: api.ProblemIdempotency, Title: "Idempotency key reused", Status: http.StatusConflict,
			Detail: conflict.Error() + "; use a new key for a new request"}
	case errors.As(err, &exists):
		return api.Problem{Type: api.ProblemNaturalKeyConflict, Title: "Already exists", Status: http.StatusConflict,
			Detail: exists.Error() + ". Nothing was done."}
	case errors.Is(err, operations.ErrNotFound):
		return api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound, Detail: "no such operation for this caller"}
	case errors.As(err, &unavailable):
		return api.Problem{Type: api.ProblemUnavailable, Title: "Vault unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the gateway cannot verify tokens because Vault did not answer; nothing was done — retry shortly"}
	default:
		return api.Problem{Type: api.ProblemInternal, Title: "Internal error", Status: http.StatusInternalServerError,
			Detail: "the gateway failed unexpectedly; nothing was done — report the request id to the operators"}
	}
}

// writeProblem answers with p; the request's audit record notes its type.
func writeProblem(w http.ResponseWriter, r *http.Request, p api.Problem) {
	note(r, func(rec *audit.Record) {
		rec.Outcome = p.Type
		if len(p.InvalidParams) > 0 { // which fields: the auditor's "what was refused", never their values
			paths := make([]string, 0, len(p.InvalidParams))
			for _, f := range p.InvalidParams {
				paths = append(paths, truncate(f.Path, 128))
			}
			rec.Outcome += " at " + truncate(strings.Join(paths, ", "), 512)
		}
		if len(p.Violations) > 0 {
			rec.Violations = p.Violations
		}
	})
	writeProblemTo(w, r, p)
}

// writeProblemTo writes p without touching the audit record.
func writeProblemTo(w http.ResponseWriter, r *http.Request, p api.Problem) {
	p.RequestID = requestIDFrom(r.Context())
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sas", error="invalid_token"`)
	}
	w.WriteHeader(p.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, problemFor(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
		Detail: "no API route " + r.Method + " " + r.URL.Path + "; see GET /v1/openapi.json"})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, api.Problem{Type: api.ProblemMethod, Title: "Method not allowed", Status: http.StatusMethodNotAllowed,
		Detail: r.Method + " is not allowed on " + r.URL.Path})
}
