package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// problemFor is the one place that maps errors to HTTP problems. Unknown
// errors become a 500 whose detail says nothing internal.
func problemFor(err error) api.Problem {
	var refusal *caller.Refusal
	var unavailable *vault.UnavailableError
	switch {
	case errors.As(err, &refusal):
		return refusal.Problem()
	case errors.As(err, &unavailable):
		return api.Problem{Type: api.ProblemUnavailable, Title: "Vault unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the gateway cannot verify tokens because Vault did not answer; nothing was done — retry shortly"}
	default:
		return api.Problem{Type: api.ProblemInternal, Title: "Internal error", Status: http.StatusInternalServerError,
			Detail: "the gateway failed unexpectedly; nothing was done — report the request id to the operators"}
	}
}

func writeProblem(w http.ResponseWriter, r *http.Request, p api.Problem) {
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
