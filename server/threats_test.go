package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// One test per threat vector of the seed threat model, each against the
// real Vault, the real policy engine and the real audit store.

const (
	sbx  = "fedramp_sbx_default"
	dev  = "fedramp_dev_default"
	prod = "fedramp_prod_restricted"
)

type call struct {
	method, path, body string
	token, bundle, env string
	idempotencyKey     string
}

type answer struct {
	status  int
	header  http.Header
	body    []byte
	problem api.Problem
}

func do(t *testing.T, gw *testenv.Gateway, c call) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), c.method, gw.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set(api.HeaderVaultToken, c.token)
	}
	if c.bundle != "" {
		req.Header.Set(api.HeaderPolicyBundle, c.bundle)
	}
	if c.env != "" {
		req.Header.Set(api.HeaderEnvironment, c.env)
	}
	if c.idempotencyKey != "" {
		req.Header.Set(api.HeaderIdempotencyKey, c.idempotencyKey)
	}
	req.Header.Set("User-Agent", "threat-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.Header.Get("Content-Type") == api.ProblemContentType {
		if err := json.Unmarshal(b, &a.problem); err != nil {
			t.Fatalf("problem body: %v: %s", err, b)
		}
	}
	return a
}

const goodReservation = `{"network":"sbx-app","hostname":"web-01","dns_zone":"sbx.example.internal","comment":"threat test"}`

// auditOf returns the audit records of one request, read back through the
// chain's own query (what an auditor sees).
func auditOf(t *testing.T, gw *testenv.Gateway, requestID string) []audit.Record {
	t.Helper()
	recs, _, err := gw.Gateway.AuditChain().Query(context.Background(), audit.Filter{RequestID: requestID})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func operationCount(t *testing.T, gw *testenv.Gateway) int {
	t.Helper()
	var n int
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT count(*) FROM operations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Threat: static credentials compromised. Root and 768h tokens cannot
// provision, and the refusal is itself audited.
func TestThreatStaticCredentialRefused(t *testing.T) {
	gw := env.StartGateway(t)
	for name, tok := range map[string]string{"root": env.RootToken(), "768h": env.OverlongToken(t, sbx)} {
		t.Run(name, func(t *testing.T) {
			a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tok, bundle: sbx, env: "sbx"})
			if a.status != http.StatusForbidden {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			recs := auditOf(t, gw, a.problem.RequestID)
			if len(recs) != 1 || recs[0].Decision != audit.DecisionRefused || recs[0].StatusCode != 403 || recs[0].Outcome != a.problem.Type {
				t.Fatalf("audit records %+v", recs)
			}
		})
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created by refused callers", n)
	}
}

// Threat: an agent generates a malformed provisioning request. Unknown
// fields, wrong types and bad formats are refused with each field named.
func TestThreatMalformedRequestRefused(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "agent-7", Bundles: []string{sbx}})
	a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
		body: `{"network":"10.10.0.7/24","hostname":"web_01","dns_zone":"sbx.example.internal","bypass_policy":true}`})
	if a.status != http.StatusUnprocessableEntity || a.problem.Type != api.ProblemInvalidRequest {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	got := map[string]bool{}
	for _, f := range a.problem.InvalidParams {
		got[f.Path] = true
	}
	if !got["/bypass_policy"] {
		t.Errorf("unknown field not named: %+v", a.problem.InvalidParams)
	}
	// Hallucinated catalog names are refused as such, not left to chance.
	a = do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"app","blueprint":"quantum-cluster","network":"sbx-app","size":{"vcpus":1,"memory_gib":1,"disk_gib":10}}`})
	if a.status != http.StatusUnprocessableEntity || len(a.problem.InvalidParams) != 1 || a.problem.InvalidParams[0].Path != "/blueprint" ||
		!strings.Contains(a.problem.InvalidParams[0].Message, "not a blueprint in any catalog") {
		t.Fatalf("hallucinated blueprint: %d %s", a.status, a.body)
	}
	big := `{"network":"sbx-app","hostname":"a","dns_zone":"sbx.example.internal","comment":"` + strings.Repeat("x", 2<<20) + `"}`
	if a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx", body: big}); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: %d %s", a.status, a.body)
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created from malformed requests", n)
	}
}

// Threat: privilege escalation dev→prod. A dev-bound token cannot use the
// prod bundle, and the dev bundle denies the prod environment with a
// violation naming both.
func TestThreatPrivilegeEscalationDevToProdDenied(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "dev-engineer", Bundles: []string{dev}})

	a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: prod, env: "prod",
		body: `{"network":"prod-app","hostname":"db-01","dns_zone":"prod.example.internal","change_ticket":"CHG0012345"}`})
	if a.status != http.StatusForbidden || a.problem.Type != api.ProblemBundleNotBound || !strings.Contains(a.problem.Detail, "sas-bundle-"+prod) {
		t.Fatalf("prod bundle with a dev token: %d %s", a.status, a.body)
	}

	a = do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: dev, env: "prod",
		body: `{"network":"10.30.0.0/24","hostname":"db-01","dns_zone":"prod.example.internal"}`})
	if a.status != http.StatusForbidden || a.problem.Type != api.ProblemPolicyDenied {
		t.Fatalf("prod environment under the dev bundle: %d %s", a.status, a.body)
	}
	var envViolation *api.Violation
	for i, v := range a.problem.Violations {
		if strings.Contains(v.Message, dev) && strings.Contains(v.Message, `"prod"`) {
			envViolation = &a.problem.Violations[i]
		}
	}
	if envViolation == nil || len(envViolation.ControlIDs) == 0 || a.problem.DecisionID == "" {
		t.Fatalf("no violation naming bundle %s and environment prod with control ids: %+v", dev, a.problem)
	}
	recs := auditOf(t, gw, a.problem.RequestID)
	if len(recs) != 1 || recs[0].Decision != audit.DecisionDeny || recs[0].DecisionID != a.problem.DecisionID || recs[0].Environment != "prod" ||
		recs[0].OwnerName != "dev-engineer" || recs[0].BundleRevision == "" || len(recs[0].ControlIDs) == 0 {
		t.Fatalf("audit record %+v", recs)
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created by escalation attempts", n)
	}
}

// Threat: audit evasion. If the audit record cannot be written, the request
// does not execute — and the gateway says so.
func TestThreatAuditEvasionImpossible(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "evader", Bundles: []string{sbx}})
	if _, err := gw.Gateway.Store().DB.Exec(`ALTER TABLE audit_records RENAME TO audit_records_gone`); err != nil {
		t.Fatal(err)
	}
	a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tok, bundle: sbx, env: "sbx", idempotencyKey: "k1"})
	if a.status != http.StatusServiceUnavailable || a.problem.Type != api.ProblemAuditFailed {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created without an audit record", n)
	}
	// Reads fail closed too: nothing is answered unaudited.
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok}); a.status != http.StatusServiceUnavailable {
		t.Fatalf("identity without audit: %d %s", a.status, a.body)
	}
	if _, err := gw.Gateway.Store().DB.Exec(`ALTER TABLE audit_records_gone RENAME TO audit_records`); err != nil {
		t.Fatal(err)
	}
	if a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tok, bundle: sbx, env: "sbx", idempotencyKey: "k1"}); a.status != http.StatusAccepted {
		t.Fatalf("after the store recovered: %d %s", a.status, a.body)
	}
}

// Threat: bypass through direct downstream calls. The caller's own token
// cannot read the downstream credentials from Vault.
func TestThreatDirectDownstreamAccessImpossible(t *testing.T) {
	ctx := context.Background()
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "sbx/calm", map[string]any{"username": "calm", "password": "pw"}); err != nil {
		t.Fatal(err)
	}
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "direct", Bundles: []string{sbx, dev, prod}})
	c := env.Admin()
	cl, err := c.Clone()
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(tok)
	for _, path := range []string{"sbx/calm", "sbx/infoblox", "prod/terraform"} {
		_, err := cl.KVv2(vaultsetup.KVMount).Get(ctx, path)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("caller token reading sas/%s: %v; want 403 from Vault", path, err)
		}
	}
}

// Threat: an AI request outside its scope. Within its own bundle and
// environment, an over-reaching request is denied with an explanation on
// each offending field — at decision (plan) time and at apply time alike.
func TestThreatAIRequestOutsideScopeDenied(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "copilot", Bundles: []string{sbx}})
	overreach := `{"name":"train","blueprint":"linux-vm-dev","network":"dev-app","size":{"vcpus":32,"memory_gib":256,"disk_gib":2000}}`

	d := do(t, gw, call{method: "POST", path: "/v1/decisions", token: tok, bundle: sbx, env: "sbx",
		body: `{"kind":"calm_app","action":"create","request":` + overreach + `}`})
	var dec api.Decision
	if err := json.Unmarshal(d.body, &dec); err != nil || d.status != 200 {
		t.Fatalf("decision: %d %s", d.status, d.body)
	}
	paths := map[string]string{}
	for _, v := range dec.Violations {
		paths[v.Path] = v.Message
	}
	if dec.Allow || paths["/blueprint"] == "" || paths["/network"] == "" || paths["/size/vcpus"] == "" {
		t.Fatalf("decision %+v; want denial on /blueprint, /network and /size/vcpus", dec)
	}
	if dec.Bundle != sbx || dec.Revision == "" || dec.DecisionID == "" {
		t.Errorf("decision lacks bundle/revision/id: %+v", dec)
	}

	a := do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx", body: overreach})
	if a.status != http.StatusForbidden || a.problem.Type != api.ProblemPolicyDenied || len(a.problem.Violations) < 3 {
		t.Fatalf("apply: %d %s", a.status, a.body)
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created for an out-of-scope request", n)
	}
}

// A token revoked in Vault stops working on the very next call.
func TestRevokedTokenRefusedOnNextCall(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "leaver", Bundles: []string{sbx}})
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok}); a.status != 200 {
		t.Fatalf("before revocation: %d %s", a.status, a.body)
	}
	if err := env.Admin().Auth().Token().RevokeTree(tok); err != nil {
		t.Fatal(err)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok}); a.status != http.StatusUnauthorized || a.problem.Type != api.ProblemTokenInvalid {
		t.Fatalf("after revocation: %d %s", a.status, a.body)
	}
}

func TestAllowedCreateIsAuditedBeforeItsOperation(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "builder", Bundles: []string{sbx}})
	c := call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tok, bundle: sbx, env: "sbx", idempotencyKey: "create-1"}
	a := do(t, gw, c)
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var op api.Operation
	if err := json.Unmarshal(a.body, &op); err != nil {
		t.Fatal(err)
	}
	if op.State != api.OperationPending || op.Owner != "builder" || op.Bundle != sbx || op.Environment != "sbx" || op.DecisionID == "" {
		t.Fatalf("operation %+v", op)
	}
	recs := auditOf(t, gw, op.RequestID)
	if len(recs) != 1 || recs[0].Decision != audit.DecisionAllow || recs[0].StatusCode != 202 || recs[0].DecisionID != op.DecisionID ||
		recs[0].TokenAccessorHMAC == "" || recs[0].UserAgent != "threat-test" || recs[0].ClientIP != "127.0.0.1" {
		t.Fatalf("audit %+v", recs)
	}
	// Same key, same body: the same operation, nothing new.
	again := do(t, gw, c)
	var op2 api.Operation
	_ = json.Unmarshal(again.body, &op2)
	if again.status != http.StatusAccepted || op2.ID != op.ID || operationCount(t, gw) != 1 {
		t.Fatalf("replay: %d %s", again.status, again.body)
	}
	// Same key, another body: 409.
	c.body = strings.Replace(goodReservation, "web-01", "web-02", 1)
	if conflict := do(t, gw, c); conflict.status != http.StatusConflict || conflict.problem.Type != api.ProblemIdempotency {
		t.Fatalf("conflict: %d %s", conflict.status, conflict.body)
	}
	// The operation is the caller's alone.
	if got := do(t, gw, call{method: "GET", path: "/v1/operations/" + op.ID, token: tok}); got.status != 200 {
		t.Fatalf("owner reads operation: %d %s", got.status, got.body)
	}
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "someone-else", Bundles: []string{sbx}})
	if got := do(t, gw, call{method: "GET", path: "/v1/operations/" + op.ID, token: other}); got.status != 404 {
		t.Fatalf("another caller reads operation: %d %s", got.status, got.body)
	}
}

func TestAuditQueryNeedsAuditorPolicy(t *testing.T) {
	gw := env.StartGateway(t)
	user := env.Caller(t, vaultsetup.CallerSpec{Entity: "user", Bundles: []string{sbx}})
	auditor := env.Caller(t, vaultsetup.CallerSpec{Entity: "auditor", Auditor: true})
	do(t, gw, call{method: "GET", path: "/v1/identity", token: user})
	if a := do(t, gw, call{method: "GET", path: "/v1/audit", token: user}); a.status != http.StatusForbidden {
		t.Fatalf("user reads audit: %d", a.status)
	}
	a := do(t, gw, call{method: "GET", path: "/v1/audit?owner=user&limit=10", token: auditor})
	var page api.AuditPage
	if err := json.Unmarshal(a.body, &page); err != nil || a.status != 200 {
		t.Fatalf("auditor: %d %s", a.status, a.body)
	}
	if len(page.Records) != 2 { // the identity read and the refused audit read
		t.Fatalf("records for owner user: %d: %s", len(page.Records), a.body)
	}
	if bytes.Contains(a.body, []byte(user)) {
		t.Fatal("the audit trail holds a token")
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/audit?limit=lots", token: auditor}); a.status != 422 || a.problem.InvalidParams[0].Path != "query:limit" {
		t.Fatalf("bad limit: %d %s", a.status, a.body)
	}
}

func TestCatalogAndBundles(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "browser", Bundles: []string{sbx}})
	a := do(t, gw, call{method: "GET", path: "/v1/catalog", token: tok, bundle: sbx, env: "sbx"})
	var cat api.Catalog
	if err := json.Unmarshal(a.body, &cat); err != nil || a.status != 200 {
		t.Fatalf("catalog: %d %s", a.status, a.body)
	}
	if len(cat.Networks) == 0 || len(cat.Blueprints) == 0 || len(cat.Modules) == 0 || cat.Limits["max_vcpus"] != 2 || cat.Revision == "" {
		t.Fatalf("catalog %+v", cat)
	}
	var list []api.BundleSummary
	a = do(t, gw, call{method: "GET", path: "/v1/bundles", token: tok})
	if err := json.Unmarshal(a.body, &list); err != nil || len(list) != 1 || list[0].Name != sbx {
		t.Fatalf("bundles: %s", a.body)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/bundles/" + prod, token: tok}); a.status != http.StatusForbidden {
		t.Fatalf("unbound bundle detail: %d", a.status)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/catalog", token: tok, env: "sbx"}); a.status != http.StatusBadRequest || a.problem.Type != api.ProblemBundleRequired {
		t.Fatalf("no bundle header: %d %s", a.status, a.body)
	}
}

// The OpenAPI document describes every route the router serves.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	gw := env.StartGateway(t)
	a := do(t, gw, call{method: "GET", path: "/v1/openapi.json"})
	var doc struct {
		OpenAPI string                            `json:"openapi"`
		Paths   map[string]map[string]interface{} `json:"paths"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil || doc.OpenAPI != "3.0.3" {
		t.Fatalf("document: %v", err)
	}
	for _, want := range []string{"get /v1/identity", "post /v1/decisions", "post /v1/ip-reservations", "patch /v1/ip-reservations/{id}",
		"delete /v1/calm-apps/{id}", "post /v1/module-runs", "get /v1/operations/{id}", "get /v1/audit", "get /v1/catalog", "get /v1/bundles/{name}"} {
		method, path, _ := strings.Cut(want, " ")
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("OpenAPI lacks %s", want)
		}
	}
}

// With the optional token cache on, a revoked token works at most for the
// cache window; the default (no cache) is covered by TestRevokedTokenRefusedOnNextCall.
func TestTokenCacheBoundsRevocationDelay(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.TokenCacheTTL = time.Second })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "cached", Bundles: []string{sbx}})
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if err := env.Admin().Auth().Token().RevokeTree(tok); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok})
		if a.status == http.StatusUnauthorized {
			break
		}
		if time.Since(revoked) > 3*time.Second {
			t.Fatalf("revoked token still accepted %s after revocation with a 1s cache", time.Since(revoked))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Refusals are never cached: a root token is refused every time.
	for i := 0; i < 2; i++ {
		if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: env.RootToken()}); a.status != http.StatusForbidden {
			t.Fatalf("root token with cache: %d", a.status)
		}
	}
}

// The same gateway on PostgreSQL: allowed creates are audited and stored there.
func TestGatewayOnPostgres(t *testing.T) {
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	cfg := storetest.Config(t, store.DriverPostgres)
	if err := os.WriteFile(dsnFile, []byte(cfg.DSN), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := env.StartGateway(t, func(c *server.Config) { c.PostgresDSNFile = dsnFile })
	if gw.Gateway.Store().Driver != store.DriverPostgres {
		t.Fatalf("driver %s", gw.Gateway.Store().Driver)
	}
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "pg-user", Bundles: []string{sbx}})
	a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tok, bundle: sbx, env: "sbx", idempotencyKey: "pg-1"})
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var op api.Operation
	_ = json.Unmarshal(a.body, &op)
	if recs := auditOf(t, gw, op.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionAllow {
		t.Fatalf("audit on postgres: %+v", recs)
	}
	if operationCount(t, gw) != 1 {
		t.Fatal("operation not stored on postgres")
	}
}
