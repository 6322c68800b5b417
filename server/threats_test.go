package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

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

func do(t testing.TB, gw *testenv.Gateway, c call) answer {
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
		body: `{"name":"app","project":"sas-sbx","blueprint":"quantum-cluster","network":"sbx-app","size":{"vcpus":1,"memory_gib":1,"disk_gib":10}}`})
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
	overreach := `{"name":"train","project":"sas-sbx","blueprint":"linux-vm-dev","network":"dev-app","size":{"vcpus":32,"memory_gib":256,"disk_gib":2000}}`

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
	var recs []audit.Record // the request's own record (the orchestrator may have started on it already)
	for _, r := range auditOf(t, gw, op.RequestID) {
		if r.UserAgent != "sas-orchestrator" {
			recs = append(recs, r)
		}
	}
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

// --- The trust boundary as Vault enforces it (one test per class) ---------

// vaultRequests counts the requests Vault's own audit log holds for path:
// what Vault saw, independent of anything the gateway says.
func vaultRequests(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(env.VaultAuditLog())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &e) == nil && e.Type == "request" && e.Request.Path == path {
			n++
		}
	}
	return n
}

// Threat: a resource changed under another bundle or environment than the
// one it was made in. A token bound to both sbx and prod cannot delete,
// change, read or dry-run a prod reservation under sbx headers; under its
// own it is judged by prod's policy (a change ticket), and a dev resource is
// executed with a sub-token of the dev role — as Vault's own log shows.
func TestThreatResourceJudgedInItsOwnContext(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "two-hats", Bundles: []string{sbx, dev, prod}})
	in := func(bundle, environment string, c call) call {
		c.token, c.bundle, c.env = tok, bundle, environment
		return c
	}

	created := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, in(prod, "prod", call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"prod-app","hostname":"db-01","dns_zone":"prod.example.internal","change_ticket":"CHG0012345"}`}))).ID)
	id, _ := created.Result["resource_id"].(string)
	if created.State != api.OperationSucceeded || id == "" {
		t.Fatalf("prod create: %+v", created)
	}
	path := "/v1/ip-reservations/" + id
	for name, c := range map[string]call{
		"delete":  {method: "DELETE", path: path, body: `{"change_ticket":"CHG0012345"}`},
		"update":  {method: "PATCH", path: path, body: `{"comment":"moved","change_ticket":"CHG0012345"}`},
		"read":    {method: "GET", path: path},
		"dry run": {method: "POST", path: "/v1/decisions", body: `{"kind":"ip_reservation","action":"delete","target_id":"` + id + `"}`},
	} {
		for _, wrong := range [][2]string{{sbx, "sbx"}, {prod, "sbx"}, {dev, "dev"}} {
			a := do(t, gw, in(wrong[0], wrong[1], c))
			if a.status != http.StatusConflict || a.problem.Type != api.ProblemWrongContext || a.problem.Bundle != prod ||
				!strings.Contains(a.problem.Detail, "bundle "+prod+" in environment prod") {
				t.Fatalf("%s under %s/%s: %d %s", name, wrong[0], wrong[1], a.status, a.body)
			}
			if recs := auditOf(t, gw, a.problem.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionRefused || recs[0].TargetID != id {
				t.Fatalf("%s under %s/%s audited as %+v", name, wrong[0], wrong[1], recs)
			}
		}
	}
	// Under its own headers it is judged by prod's rules: no ticket, no delete.
	if a := do(t, gw, in(prod, "prod", call{method: "DELETE", path: path})); a.status != http.StatusForbidden || a.problem.Type != api.ProblemPolicyDenied {
		t.Fatalf("prod delete without a change ticket: %d %s", a.status, a.body)
	}
	if len(sim.Hosts()) != 1 {
		t.Fatalf("the prod host is gone: %d hosts", len(sim.Hosts()))
	}

	// A dev resource is deleted with a dev sub-token, never sbx's.
	made := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, in(dev, "dev", call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"dev-app","hostname":"api-01","dns_zone":"dev.example.internal"}`}))).ID)
	devID, _ := made.Result["resource_id"].(string)
	if a := do(t, gw, in(dev, "sbx", call{method: "DELETE", path: "/v1/ip-reservations/" + devID})); a.status != http.StatusConflict {
		t.Fatalf("dev resource deleted under sbx: %d %s", a.status, a.body)
	}
	devMints, sbxMints := vaultRequests(t, "auth/token/create/sas-exec-dev"), vaultRequests(t, "auth/token/create/sas-exec-sbx")
	gone := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, in(dev, "dev", call{method: "DELETE", path: "/v1/ip-reservations/" + devID}))).ID)
	if gone.State != api.OperationSucceeded || gone.Environment != "dev" || gone.Bundle != dev {
		t.Fatalf("dev delete: %+v", gone)
	}
	if d, s := vaultRequests(t, "auth/token/create/sas-exec-dev")-devMints, vaultRequests(t, "auth/token/create/sas-exec-sbx")-sbxMints; d != 1 || s != 0 {
		t.Fatalf("Vault saw %d dev and %d sbx sub-token mints for the dev delete; want 1 and 0", d, s)
	}
	if len(sim.Hosts()) != 1 {
		t.Fatalf("after the dev delete the simulator holds %d hosts; want the prod one", len(sim.Hosts()))
	}
}

// Threat: a token Vault itself would refuse at use time. A disabled or
// deleted entity and an address outside the token's bound CIDRs are refused
// on the next request, each with its own problem — where Vault's own
// lookup-self refuses the token too; a bound token used from its address
// works, as in Vault.
func TestThreatTokensVaultRefusesAreRefused(t *testing.T) {
	gw := env.StartGateway(t)
	identity := func(tok string) answer { return do(t, gw, call{method: "GET", path: "/v1/identity", token: tok}) }

	t.Run("entity disabled", func(t *testing.T) {
		tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "suspended", Bundles: []string{sbx}})
		if a := identity(tok); a.status != 200 {
			t.Fatalf("before: %d %s", a.status, a.body)
		}
		env.SetEntityDisabled(t, "suspended", true)
		if env.VaultSaysOfToken(t, tok) == nil {
			t.Fatal("Vault accepts a disabled entity's token; the premise is wrong")
		}
		if a := identity(tok); a.status != 403 || a.problem.Type != api.ProblemEntityDisabled || !strings.Contains(a.problem.Detail, "suspended") {
			t.Fatalf("disabled: %d %s", a.status, a.body)
		}
		env.SetEntityDisabled(t, "suspended", false)
		if a := identity(tok); a.status != 200 {
			t.Fatalf("re-enabled: %d %s", a.status, a.body)
		}
	})
	t.Run("entity deleted", func(t *testing.T) {
		tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "departed", Bundles: []string{sbx}})
		env.DeleteEntity(t, "departed")
		if env.VaultSaysOfToken(t, tok) == nil {
			t.Fatal("Vault accepts a deleted entity's token; the premise is wrong")
		}
		if a := identity(tok); a.status != 403 || a.problem.Type != api.ProblemEntityMissing {
			t.Fatalf("deleted: %d %s", a.status, a.body)
		}
	})
	t.Run("bound to other addresses", func(t *testing.T) {
		tok := env.BoundToken(t, vaultsetup.CallerSpec{Entity: "ci-runner", Bundles: []string{sbx}}, "10.99.0.0/16")
		if env.VaultSaysOfToken(t, tok) == nil {
			t.Fatal("Vault accepts a token bound to 10.99.0.0/16 from loopback; the premise is wrong")
		}
		a := identity(tok)
		if a.status != 403 || a.problem.Type != api.ProblemTokenCIDR || !strings.Contains(a.problem.Detail, "10.99.0.0/16") ||
			!strings.Contains(a.problem.Detail, "127.0.0.1") {
			t.Fatalf("bound elsewhere: %d %s", a.status, a.body)
		}
	})
	t.Run("bound to this address", func(t *testing.T) {
		tok := env.BoundToken(t, vaultsetup.CallerSpec{Entity: "local-runner", Bundles: []string{sbx}}, "127.0.0.1/32")
		if err := env.VaultSaysOfToken(t, tok); err != nil {
			t.Fatalf("Vault refuses a loopback-bound token from loopback: %v", err)
		}
		if a := identity(tok); a.status != 200 {
			t.Fatalf("bound here: %d %s", a.status, a.body)
		}
	})
}

// Threat: tokens that are static in all but name. Batch (cannot be
// revoked), periodic (renewable forever), without explicit max TTL or with
// one above the ceiling, use-limited (the gateway cannot spend Vault's use
// count: a one-use token would be good for any number of requests) and
// tokens without an entity (their only owner would be a display name anyone
// can pick — two tokens named alike would share resources).
func TestThreatStaticLikeTokensRefused(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.MaxCallerTTL = 4 * time.Hour })
	bundles := []string{vaultsetup.BundlePolicyPrefix + sbx}
	cases := []struct {
		name, token, want string
	}{
		{"batch", env.TokenLike(t, vaultapi.TokenCreateRequest{Type: "batch", TTL: "1h", Policies: bundles, NoParent: true}), api.ProblemTokenBatch},
		{"periodic", env.TokenLike(t, vaultapi.TokenCreateRequest{Period: "1h", Policies: bundles}), api.ProblemTokenPeriodic},
		{"no explicit max TTL", env.TokenLike(t, vaultapi.TokenCreateRequest{TTL: "1h", Policies: bundles}), api.ProblemTokenMaxTTL},
		{"explicit max TTL above the ceiling (the token role's 8h)", roleToken(t, "long-lived"), api.ProblemTokenMaxTTL},
		{"use-limited", env.TokenLike(t, vaultapi.TokenCreateRequest{TTL: "1h", ExplicitMaxTTL: "2h", Policies: bundles, NumUses: 1}), api.ProblemTokenUseLimit},
		{"no entity", env.TokenLike(t, vaultapi.TokenCreateRequest{TTL: "1h", ExplicitMaxTTL: "2h", Policies: bundles, DisplayName: "shared"}), api.ProblemTokenNoEntity},
		{"no entity, same display name", env.TokenLike(t, vaultapi.TokenCreateRequest{TTL: "1h", ExplicitMaxTTL: "2h", Policies: bundles, DisplayName: "shared"}), api.ProblemTokenNoEntity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 { // refused every time, not only the first
				a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", body: goodReservation, token: tc.token, bundle: sbx, env: "sbx"})
				if a.status != http.StatusForbidden || a.problem.Type != tc.want {
					t.Fatalf("use %d: %d %s; want 403 %s", i+1, a.status, a.body, tc.want)
				}
				if recs := auditOf(t, gw, a.problem.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionRefused || recs[0].Outcome != tc.want {
					t.Fatalf("audit %+v", recs)
				}
			}
		})
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations created by static-like tokens", n)
	}
}

// roleToken mints a 1h token through the caller role without an explicit max
// TTL of its own: the role's token_explicit_max_ttl (8h) bounds its renewals,
// and Vault shows it only on the role.
func roleToken(t *testing.T, entity string) string {
	t.Helper()
	if _, err := vaultsetup.EnsureEntity(context.Background(), env.Admin(), entity); err != nil {
		t.Fatal(err)
	}
	s, err := env.Admin().Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{
		Policies: []string{vaultsetup.BundlePolicyPrefix + sbx}, TTL: "1h", EntityAlias: entity}, vaultsetup.CallerRole)
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth.ClientToken
}

// Threat: two credentials in one request, so that a proxy, the policy and
// Vault could each see a different caller. Refused, whichever way.
func TestThreatAmbiguousCredentialsRefused(t *testing.T) {
	gw := env.StartGateway(t)
	alice := env.Caller(t, vaultsetup.CallerSpec{Entity: "alice", Bundles: []string{sbx}})
	mallory := env.Caller(t, vaultsetup.CallerSpec{Entity: "mallory", Bundles: []string{sbx}})
	send := func(h http.Header) (int, api.Problem) {
		req, _ := http.NewRequest("GET", gw.URL+"/v1/identity", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p api.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	for name, h := range map[string]http.Header{
		"two different headers": {api.HeaderVaultToken: {alice}, "Authorization": {"Bearer " + mallory}},
		"X-Vault-Token twice":   {api.HeaderVaultToken: {alice, mallory}},
		"same token twice":      {api.HeaderVaultToken: {alice, alice}},
		"Authorization twice":   {"Authorization": {"Bearer " + alice, "Bearer " + mallory}},
	} {
		status, p := send(h)
		if status != http.StatusBadRequest || p.Type != api.ProblemTokenAmbiguous {
			t.Errorf("%s: %d %+v", name, status, p)
			continue
		}
		if recs := auditOf(t, gw, p.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionRefused || recs[0].OwnerEntityID != "" {
			t.Errorf("%s: audit %+v", name, recs)
		}
	}
	if status, p := send(http.Header{api.HeaderVaultToken: {alice}, "Authorization": {"Bearer " + alice}}); status != 200 {
		t.Fatalf("one token in both headers: %d %+v", status, p)
	}
}

// Threat: a dry run that says yes to what the real request is refused
// (or the reverse) — the plan then promises what apply cannot keep. For
// hundreds of generated bodies (number forms such as 2.0 and 5e1,
// duplicate keys, unknown fields, wrong types, deep nesting, out-of-bundle
// values) the dry run and the create agree on the schema errors, field by
// field, and on allow or deny, rule by rule.
func TestThreatDryRunAgreesWithMutation(t *testing.T) {
	gw := dryRunGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "planner", Bundles: []string{sbx}})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	seen := map[string]int{}
	for i := range 400 {
		kind := []string{api.KindCalmApp, api.KindIPReservation}[i%2]
		body := mutate(r, dryRunBase(kind, i))
		dry, real := dryRunVersusMutation(t, gw, tok, kind, body)
		if dry.String() != real.String() {
			t.Fatalf("seed %d, case %d (%s) %s:\n dry run: %s\n create:  %s", seed, i, kind, body, dry, real)
		}
		seen[dry.class]++
	}
	// The corpus must exercise every verdict, or agreement proves little.
	if seen["invalid"] < 50 || seen["deny"] < 20 || seen["allow"] < 20 {
		t.Fatalf("verdicts %v: the generator no longer covers invalid, deny and allow", seen)
	}
	t.Logf("verdicts %v", seen)
}

// Threat: an IPv4 network written as IPv6 (::ffff:10.10.0.0/120 is
// 10.10.0.0/24 in another spelling) slips past CIDR checks that expect
// IPv4. Refused at the schema, in the dry run and the create alike.
func TestThreatIPv4MappedIPv6Refused(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "v6-trick", Bundles: []string{sbx}})
	for _, network := range []string{"::ffff:10.10.0.0/120", "::ffff:a0a:0/120", "0:0:0:0:0:ffff:0a0a:0000/120", "fd00::/64"} {
		body := `{"network":"` + network + `","hostname":"web-01","dns_zone":"sbx.example.internal"}`
		for _, c := range []call{
			{method: "POST", path: "/v1/ip-reservations", body: body},
			{method: "POST", path: "/v1/decisions", body: `{"kind":"ip_reservation","action":"create","request":` + body + `}`},
		} {
			c.token, c.bundle, c.env = tok, sbx, "sbx"
			a := do(t, gw, c)
			if a.status != http.StatusUnprocessableEntity || len(a.problem.InvalidParams) != 1 ||
				!strings.HasSuffix(a.problem.InvalidParams[0].Path, "/network") || !strings.Contains(a.problem.InvalidParams[0].Message, "IPv4") {
				t.Fatalf("%s %s: %d %s", c.path, network, a.status, a.body)
			}
		}
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations for IPv6-spelled networks", n)
	}
}

// printable reports whether s has nothing a terminal would act on or hide.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029' || (r >= '\u200b' && r <= '\u200f') ||
			(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
	})
}

// Threat: an audit trail that lies when printed — a path id or header
// carrying ESC sequences, CR/LF (a forged second line) or bidi overrides.
// Such ids are refused at the edge (422, naming the id), and every string
// that reaches the trail is stored with those characters escaped.
func TestThreatAuditFieldsSafeToPrint(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "forger", Bundles: []string{sbx}})
	hostile := "%1b%5b31m%0d%0aseq=1%20decision=allow%e2%80%ae"
	for _, c := range []call{
		{method: "GET", path: "/v1/ip-reservations/ipr-1" + hostile, bundle: sbx, env: "sbx"},
		{method: "DELETE", path: "/v1/ip-reservations/" + hostile, bundle: sbx, env: "sbx"},
		{method: "PATCH", path: "/v1/ip-reservations/" + hostile, bundle: sbx, env: "sbx", body: `{"comment":"x"}`},
		{method: "GET", path: "/v1/operations/op" + hostile},
	} {
		c.token = tok
		a := do(t, gw, c)
		if a.status != http.StatusUnprocessableEntity || len(a.problem.InvalidParams) != 1 || a.problem.InvalidParams[0].Path != "path:id" ||
			!printable(a.problem.Detail) {
			t.Fatalf("%s %s: %d %s", c.method, c.path, a.status, a.body)
		}
	}
	// Headers reach the record too: what HTTP lets through (tab, bidi
	// overrides, zero-width characters) is escaped there.
	sneaky := "fedramp_sbx_default\t\u202egnp\u200b"
	req, _ := http.NewRequest("GET", gw.URL+"/v1/catalog", nil)
	req.Header.Set(api.HeaderVaultToken, tok)
	req.Header.Set(api.HeaderPolicyBundle, sneaky)
	req.Header.Set(api.HeaderEnvironment, "sbx\u2028")
	req.Header.Set("User-Agent", "curl/8\u202e\t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A downstream-shaped free text: a request field echoed in a message.
	do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
		body: `{"network":"sbx-app","hostname":"web\u001b01","dns_zone":"sbx.example.internal","comment":"a\u202eb"}`})

	recs, _, err := gw.Gateway.AuditChain().Query(context.Background(), audit.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 6 {
		t.Fatalf("%d audit records", len(recs))
	}
	var sawEscape bool
	for _, rec := range recs {
		b, _ := json.Marshal(rec)
		var fields map[string]any
		_ = json.Unmarshal(b, &fields)
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				if !printable(x) {
					t.Errorf("record %d holds an unprintable string %q", rec.Seq, x)
				}
				sawEscape = sawEscape || strings.Contains(x, `\x1b`) || strings.Contains(x, `\u202e`)
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(fields)
	}
	if !sawEscape {
		t.Fatal("no record shows the escaped characters; the injection did not reach the trail")
	}
}

// Threat: an unauthenticated flood that costs Vault a lookup and the audit
// trail a row per request. With the defaults' mechanism (here at a refill
// rate slow enough to count exactly), an address's bad tokens are looked up
// only until its refusal budget is spent; then requests from it are refused
// before Vault is asked, and recorded as one summary per window. A token
// admitted before the flood keeps working; a fresh one waits with the flood.
func TestThreatUnauthenticatedFloodBounded(t *testing.T) {
	const budget, flood = 10, 300
	gw := env.StartGateway(t, func(c *server.Config) {
		c.UnauthenticatedRate, c.UnauthenticatedBurst, c.FloodWindow = 0.001, budget, 2*time.Second
	})
	known := env.Caller(t, vaultsetup.CallerSpec{Entity: "regular", Bundles: []string{sbx}})
	fresh := env.Caller(t, vaultsetup.CallerSpec{Entity: "newcomer", Bundles: []string{sbx}})
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: known}); a.status != 200 {
		t.Fatalf("before the flood: %d %s", a.status, a.body)
	}
	lookups := vaultRequests(t, "auth/token/lookup")
	statuses := map[int]int{}
	for i := range flood {
		statuses[do(t, gw, call{method: "GET", path: "/v1/identity", token: fmt.Sprintf("hvs.flood%04d", i)}).status]++
	}
	statuses[do(t, gw, call{method: "GET", path: "/v1/identity"}).status]++ // no token at all
	if got := vaultRequests(t, "auth/token/lookup") - lookups; got != budget {
		t.Errorf("Vault looked up %d flood tokens; want the budget, %d", got, budget)
	}
	if statuses[http.StatusUnauthorized] != budget || statuses[http.StatusTooManyRequests] != flood+1-budget {
		t.Fatalf("statuses %v; want %d×401 then 429", statuses, budget)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: known}); a.status != 200 {
		t.Fatalf("a token admitted before the flood: %d %s", a.status, a.body)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: fresh}); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("a fresh token during the flood: %d %s", a.status, a.body)
	}

	// The trail: each looked-up refusal, the first limited request of each
	// window, and one summary per window that counts the rest.
	var refused, limitedAlone, summarized, summaries int
	deadline := time.Now().Add(10 * time.Second)
	for {
		refused, limitedAlone, summarized, summaries = 0, 0, 0, 0
		recs, _, err := gw.Gateway.AuditChain().Query(context.Background(), audit.Filter{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			switch {
			case r.OwnerEntityID != "":
			case r.Outcome == api.ProblemTokenInvalid:
				refused++
			case strings.HasPrefix(r.Outcome, api.ProblemRateLimited+": refused before authentication"):
				limitedAlone++
			case strings.Contains(r.Outcome, "refused before authentication between"):
				var n int
				fmt.Sscanf(strings.TrimPrefix(r.Outcome, api.ProblemRateLimited+": "), "%d", &n)
				summarized += n
				summaries++
			}
		}
		if limitedAlone+summarized == flood+2-budget || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if refused != budget || limitedAlone+summarized != flood+2-budget || summaries == 0 || limitedAlone > summaries+1 {
		t.Fatalf("trail: %d refusals, %d limited requests recorded alone, %d summarized in %d summaries; want %d, and %d in all",
			refused, limitedAlone, summarized, summaries, budget, flood+2-budget)
	}
	t.Logf("%d requests without a valid token cost %d Vault lookups and %d audit rows", flood+2, budget, refused+limitedAlone+summaries)
}

// Threat: one identity flooding the gateway (a runaway agent). The
// per-identity limit is on without any configuration (Validate fills in
// the defaults), and it holds an identity to burst + rate × elapsed: the
// behaviour is checked at a low rate, so a slow, loaded machine still
// sends faster than the limit (at 50/s it may not, and prove nothing).
func TestThreatIdentityRateLimitedByDefault(t *testing.T) {
	var unconfigured server.Config
	_ = unconfigured.Validate() // other fields' errors are not this test's
	if unconfigured.RateLimit != server.DefaultRateLimit || unconfigured.RateBurst != server.DefaultRateBurst {
		t.Fatalf("an unconfigured gateway limits identities to %v/s burst %d, want %v/s burst %d",
			unconfigured.RateLimit, unconfigured.RateBurst, server.DefaultRateLimit, server.DefaultRateBurst)
	}
	const rate, burst = 5, 20
	gw := env.StartGateway(t, func(c *server.Config) { c.RateLimit, c.RateBurst = rate, burst })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "runaway", Bundles: []string{sbx}})
	var mu sync.Mutex
	statuses := map[int]int{}
	start := time.Now()
	atOnce(8, func(int) {
		for range 25 {
			a := do(t, gw, call{method: "GET", path: "/v1/identity", token: tok})
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
		}
	})
	allowed := burst + rate*time.Since(start).Seconds() + 8 // + requests in flight
	if statuses[http.StatusOK] < burst || float64(statuses[http.StatusOK]) > allowed || statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("200 requests at once: %v; want at least the burst (%d) answered, at most %.0f, and the rest limited", statuses, burst, allowed)
	}
}

// Threat: reconnaissance through the metrics endpoint, and responses a
// browser could be tricked into sniffing or downgrading. Metrics are not on
// the API (they name every bundle); they are served on their own listener.
// Every answer says nosniff and no-store; under TLS, HSTS too.
func TestThreatMetricsOffTheAPIAndSecurityHeaders(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "scout", Bundles: []string{sbx}})
	a := do(t, gw, call{method: "GET", path: "/metrics"})
	if a.status != http.StatusNotFound || bytes.Contains(a.body, []byte("sas_policy_decisions_total")) {
		t.Fatalf("/metrics on the API: %d %s", a.status, a.body)
	}
	for _, c := range []call{{method: "GET", path: "/v1/sys/health"}, {method: "GET", path: "/v1/identity"}, {method: "GET", path: "/nope"},
		{method: "GET", path: "/v1/identity", token: tok}, {method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx", body: "{"}} {
		a := do(t, gw, c)
		if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Cache-Control") != "no-store" || a.header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s %s (%d) headers %v", c.method, c.path, a.status, a.header)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Gateway.ServeMetrics(t.Context(), ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("sas_caller_refusals_total")) || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("metrics listener: %d %s", resp.StatusCode, body)
	}

	// Under TLS: HSTS on every answer, the API's and the metrics listener's.
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	tlsGW, err := server.New(t.Context(), server.Config{ListenAddr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile,
		VaultAddr: env.VaultAddr, VaultLogin: env.GatewayLogin, DataDir: dir, BundleDir: "../examples/bundles", GenerateAuditKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsGW.Close()
	apiLn, _ := net.Listen("tcp", "127.0.0.1:0")
	metricsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = tlsGW.Serve(t.Context(), apiLn) }()
	go func() { _ = tlsGW.ServeMetrics(t.Context(), metricsLn) }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	for _, u := range []string{"https://" + apiLn.Addr().String() + "/v1/identity", "https://" + metricsLn.Addr().String() + "/metrics"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: headers %v", u, resp.Header)
		}
	}
}
