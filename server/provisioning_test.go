package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// waitOperation waits for an operation to end, then reads it as its
// caller does (GET, judged and audited). The waiting itself reads the
// store: polling through the gate every 50ms would spend the CPU the
// operations under test need (each read is a policy decision and an
// audit record).
func waitOperation(t *testing.T, gw *testenv.Gateway, tok, id string) api.Operation {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if op, err := gw.Gateway.OperationFor(id); err == nil && operations.Terminal(op.State) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := do(t, gw, call{method: "GET", path: "/v1/operations/" + id, token: tok})
	var op api.Operation
	if err := json.Unmarshal(a.body, &op); err != nil || a.status != 200 {
		t.Fatalf("operation %s: %d %s", id, a.status, a.body)
	}
	if !operations.Terminal(op.State) {
		t.Fatalf("operation %s not finished after 60s: %+v", id, op)
	}
	return op
}

func decodeOp(t *testing.T, a answer) api.Operation {
	t.Helper()
	return asOperation(t, a, http.StatusAccepted)
}

// The whole path for an IP reservation: gateway → policy → audit →
// orchestrator → sub-token → Vault KV → Infoblox (simulator), and back.
func TestIPReservationLifecycle(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "netops", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }

	op := decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", idempotencyKey: "ipr-1",
		body: `{"network":"sbx-app","hostname":"web-01","dns_zone":"sbx.example.internal","mac":"00:50:56:aa:bb:cc","comment":"lifecycle"}`})))
	op = waitOperation(t, gw, tok, op.ID)
	if op.State != api.OperationSucceeded || op.Attempts != 1 {
		t.Fatalf("create: %+v", op)
	}
	id, _ := op.Result["resource_id"].(string)
	ip, _ := op.Result["ip_address"].(string)
	if id == "" || !strings.HasPrefix(ip, "10.10.0.") {
		t.Fatalf("result %+v", op.Result)
	}

	// Downstream: one host, tagged with who and what made it.
	hosts := sim.Hosts()
	if len(hosts) != 1 {
		t.Fatalf("simulator holds %d hosts", len(hosts))
	}
	h := hosts[0]
	if h.EAs[infoblox.AttrOwner] != "netops" || h.EAs[infoblox.AttrBundle] != sbx || h.EAs[infoblox.AttrEnvironment] != "sbx" ||
		h.EAs[infoblox.AttrRequestID] != op.RequestID || h.EAs[infoblox.AttrManaged] != "True" {
		t.Fatalf("host tags %+v", h.EAs)
	}

	// Read through the gateway: the downstream's view, no drift.
	a := do(t, gw, sb(call{method: "GET", path: "/v1/ip-reservations/" + id}))
	var res api.Resource
	if err := json.Unmarshal(a.body, &res); err != nil || a.status != 200 {
		t.Fatalf("read: %d %s", a.status, a.body)
	}
	if res.Attributes["ip_address"] != ip || res.Attributes["fqdn"] != "web-01.sbx.example.internal" || len(res.Drift) != 0 {
		t.Fatalf("resource %+v", res)
	}

	// Update the mutable fields.
	up := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "PATCH", path: "/v1/ip-reservations/" + id,
		body: `{"comment":"changed","aliases":["www.sbx.example.internal"]}`}))).ID)
	if up.State != api.OperationSucceeded || up.Result["comment"] != "changed" || up.Result["ip_address"] != ip {
		t.Fatalf("update: %+v", up)
	}

	// Delete releases the address and the DNS name.
	del := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + id}))).ID)
	if del.State != api.OperationSucceeded || len(sim.Hosts()) != 0 {
		t.Fatalf("delete: %+v; hosts left %d", del, len(sim.Hosts()))
	}
	if a := do(t, gw, sb(call{method: "GET", path: "/v1/ip-reservations/" + id})); a.status != 404 {
		t.Fatalf("read after delete: %d", a.status)
	}

	// Every sub-token minted was revoked, and each left an audit trail.
	recs, _, err := gw.Gateway.AuditChain().Query(t.Context(), audit.Filter{Owner: "netops", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	minted, revoked := 0, 0
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r.Outcome, "sub-token minted"), r.Outcome == "read sub-token minted":
			minted++
		case strings.HasPrefix(r.Outcome, "sub-token revoked"), r.Outcome == "read sub-token revoked":
			revoked++
		}
	}
	if minted == 0 || minted != revoked {
		t.Fatalf("sub-tokens minted %d, revoked %d", minted, revoked)
	}
	if live, _ := gw.Gateway.Store().DB.Query(`SELECT 1 FROM operations WHERE subtoken_accessor <> ''`); live.Next() {
		t.Fatal("an operation still records a live sub-token")
	}
}

// Deleted outside sas: the next read says so and sas forgets it.
func TestIPReservationDeletedOutOfBand(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "oob", Bundles: []string{sbx}})
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
		body: `{"network":"10.10.1.0/24","hostname":"db-01","dns_zone":"sbx.example.internal"}`})).ID)
	id, _ := op.Result["resource_id"].(string)
	// An administrator deletes the host in the grid directly.
	kv, err := env.Admin().KVv2(vaultsetup.KVMount).Get(t.Context(), "sbx/infoblox")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := infoblox.New(infoblox.Config{URL: sim.URL(), Credentials: infoblox.Credentials{Username: kv.Data["username"].(string), Password: kv.Data["password"].(string)}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.FindHostByName(t.Context(), "db-01.sbx.example.internal", "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteHost(t.Context(), h.Ref); err != nil {
		t.Fatal(err)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/ip-reservations/" + id, token: tok, bundle: sbx, env: "sbx"}); a.status != 404 ||
		!strings.Contains(a.problem.Detail, "deleted outside sas") {
		t.Fatalf("read after out-of-band delete: %d %s", a.status, a.body)
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx"}); string(a.body) != "[]\n" {
		t.Fatalf("list after out-of-band delete: %s", a.body)
	}
}

// 30 concurrent reservations in one /24: 30 distinct addresses.
func TestConcurrentReservationsGetDistinctAddresses(t *testing.T) {
	env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "burst", Bundles: []string{sbx}})
	const n = 30
	ids := make(chan string, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			a := do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
				body: `{"network":"sbx-app","hostname":"burst-` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `","dns_zone":"sbx.example.internal"}`})
			var op api.Operation
			_ = json.Unmarshal(a.body, &op)
			ids <- op.ID
		}(i)
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		op := waitOperation(t, gw, tok, <-ids)
		ip, _ := op.Result["ip_address"].(string)
		if op.State != api.OperationSucceeded || ip == "" || seen[ip] {
			t.Fatalf("operation %+v (duplicate or missing address)", op)
		}
		seen[ip] = true
	}
}

// A kind the policy allows but this gateway cannot execute yet is answered
// 501 after schema and policy: no operation is stored (nothing would ever
// run it), the request is audited, and a denial stays a denial.
func TestAllowedKindWithoutExecutorIs501(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.ModuleCatalogDir = "" }) // no catalog: no module runs here
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "early-adopter", Bundles: []string{sbx}})
	for kind, body := range map[string]string{
		api.KindModuleRun: `{"name":"reg-1","module":"platform/service-registration","version":"2.0.0","inputs":{"name":"www"}}`,
	} {
		a := do(t, gw, call{method: "POST", path: "/v1/" + api.KindPaths[kind], token: tok, bundle: sbx, env: "sbx", body: body, idempotencyKey: kind})
		if a.status != http.StatusNotImplemented || a.problem.Type != api.ProblemNotImplemented || !strings.Contains(a.problem.Detail, kind) {
			t.Fatalf("%s: %d %s", kind, a.status, a.body)
		}
		recs := auditOf(t, gw, a.problem.RequestID)
		if len(recs) != 1 || recs[0].Decision != audit.DecisionAllow || recs[0].StatusCode != 501 || recs[0].Kind != kind {
			t.Fatalf("%s audit %+v", kind, recs)
		}
	}
	denied := do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"app-2","project":"sas-sbx","blueprint":"linux-vm-prod","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`})
	if denied.status != http.StatusForbidden || denied.problem.Type != api.ProblemPolicyDenied {
		t.Fatalf("denied calm app: %d %s", denied.status, denied.body)
	}
	if n := operationCount(t, gw); n != 0 {
		t.Fatalf("%d operations stored for kinds nothing executes", n)
	}
}
