package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// queryAudit pages through the audit trail for holders of Vault policy
// sas-auditor. The query itself is audited like any other request.
func (g *Gateway) queryAudit(w http.ResponseWriter, r *http.Request) {
	c := callerFrom(r.Context())
	if !hasPolicy(c.Policies, vaultsetup.AuditorPolicy) {
		writeProblem(w, r, api.Problem{Type: api.ProblemForbidden, Title: "Auditor policy required", Status: http.StatusForbidden,
			Detail: "reading the audit trail needs a token with Vault policy " + vaultsetup.AuditorPolicy})
		return
	}
	q := r.URL.Query()
	f := audit.Filter{Owner: q.Get("owner"), RequestID: q.Get("request_id"), Decision: audit.Decision(q.Get("decision"))}
	var errs []api.FieldError
	if f.Decision != "" && !f.Decision.Valid() {
		errs = append(errs, api.FieldError{Path: "query:decision", Message: "one of allow, deny, refused, error"})
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, api.FieldError{Path: "query:" + name, Message: "an RFC 3339 time such as 2026-01-02T15:04:05Z"})
			}
			*dst = t
		}
	}
	for name, dst := range map[string]*int64{"after": &f.After, "limit": nil} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || (name == "limit" && (n == 0 || n > audit.MaxQueryLimit)) {
			errs = append(errs, api.FieldError{Path: "query:" + name, Message: "a positive integer (limit at most " + strconv.Itoa(audit.MaxQueryLimit) + ")"})
			continue
		}
		if dst != nil {
			*dst = n
		} else {
			f.Limit = int(n)
		}
	}
	if len(errs) > 0 {
		writeError(w, r, &api.InvalidRequestError{Fields: errs})
		return
	}
	recs, next, err := g.audit.Query(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page := api.AuditPage{Records: make([]map[string]any, 0, len(recs))}
	for _, rec := range recs {
		m, err := api.AsMap(rec)
		if err != nil {
			writeError(w, r, err)
			return
		}
		page.Records = append(page.Records, m)
	}
	if next > 0 {
		page.Next = strconv.FormatInt(next, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

func hasPolicy(policies []string, name string) bool {
	for _, p := range policies {
		if p == name {
			return true
		}
	}
	return false
}

func (g *Gateway) openapi(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, openAPI(g.routes()))
}
