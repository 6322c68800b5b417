package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// syncBuffer collects a gateway's logs (written from many goroutines).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// calmGateway is a gateway with both simulators, its data dir and its
// trace-level logs at hand.
func calmGateway(t *testing.T, configure ...func(*server.Config)) (*testenv.Gateway, *simcalm.Server, string, *syncBuffer) {
	t.Helper()
	env.StartInfoblox(t)
	sim := env.StartCalm(t)
	logs := &syncBuffer{}
	var dataDir string
	gw := env.StartGateway(t, append([]func(*server.Config){func(c *server.Config) { dataDir = c.DataDir }, traceLogs(logs)}, configure...)...)
	return gw, sim, dataDir, logs
}

// traceLogs sends a gateway's logs, at trace level, to logs.
func traceLogs(logs *syncBuffer) func(*server.Config) {
	return func(c *server.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "gateway", Level: hclog.Trace, Output: logs})
	}
}

func liveApps(sim *simcalm.Server) []simcalm.AppSnapshot {
	var out []simcalm.AppSnapshot
	for _, a := range sim.Apps() {
		if a.State != "deleted" {
			out = append(out, a)
		}
	}
	return out
}

// A Calm app through the whole path: launch (request id, then app uuid
// checkpointed) → running, tagged, on the network; stop and start with
// Calm's system actions; delete waits for deleted. Its secret variable
// reaches Calm and nothing else: not the database, the audit trail, the
// logs, the operation or the resource — and not Vault after the launch.
func TestCalmAppLifecycle(t *testing.T) {
	gw, sim, dataDir, logs := calmGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "appteam", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	const secret = "correct-horse-battery-staple-7431"

	op := decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/calm-apps", idempotencyKey: "calm-1",
		body: `{"name":"web-proto","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app",
			"size":{"vcpus":2,"memory_gib":4,"disk_gib":40},"variables":{"OWNER_EMAIL":"app@example.org"},
			"secret_variables":{"ADMIN_PASSWORD":"` + secret + `"}}`})))
	op = waitOperation(t, gw, tok, op.ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create: %+v", op)
	}
	id, _ := op.Result["resource_id"].(string)
	appUUID, _ := op.Result["app_uuid"].(string)
	if !strings.HasPrefix(id, "calm-") || appUUID == "" || op.Result["state"] != "running" || op.Result["power_state"] != api.CalmRunning {
		t.Fatalf("result %+v", op.Result)
	}

	apps := liveApps(sim)
	if len(apps) != 1 || apps[0].UUID != appUUID || apps[0].Project != "sas-sbx" || apps[0].Blueprint != "linux-vm-sandbox" {
		t.Fatalf("simulator apps %+v", apps)
	}
	app := apps[0]
	tags := calmapp.ParseTags(app.Description)
	if !tags.Managed || tags.Owner != "appteam" || tags.RequestID != op.RequestID || tags.Bundle != sbx || tags.Environment != "sbx" {
		t.Fatalf("app tags %+v from %q", tags, app.Description)
	}
	if app.Variables["VCPUS"] != "2" || app.Variables["MEMORY_GIB"] != "4" || app.Variables["NETWORK"] != "10.10.0.0/24" ||
		app.Variables["OWNER_EMAIL"] != "app@example.org" || app.Variables["SAS_REQUEST_ID"] != op.RequestID {
		t.Fatalf("launch variables %+v", app.Variables)
	}
	sum := sha256.Sum256([]byte(secret))
	if got := app.SecretHashes["ADMIN_PASSWORD"]; got != hex.EncodeToString(sum[:]) && !strings.HasSuffix(got, hex.EncodeToString(sum[:])) {
		t.Fatalf("the secret did not reach Calm: hashes %+v", app.SecretHashes)
	}
	if len(app.VMs) != 1 || !strings.HasPrefix(app.VMs[0].Address, "10.10.0.") || app.VMs[0].VCPUs != 2 {
		t.Fatalf("VMs %+v", app.VMs)
	}

	// Read: Calm's view, no drift.
	a := do(t, gw, sb(call{method: "GET", path: "/v1/calm-apps/" + id}))
	var res api.Resource
	if err := json.Unmarshal(a.body, &res); err != nil || a.status != 200 {
		t.Fatalf("read: %d %s", a.status, a.body)
	}
	if res.Attributes["app_uuid"] != appUUID || len(res.Drift) != 0 {
		t.Fatalf("resource %+v", res)
	}

	// Stop, then start again, through Calm's actions.
	for _, want := range []struct{ power, state string }{{api.CalmStopped, "stopped"}, {api.CalmRunning, "running"}} {
		up := decodeOp(t, do(t, gw, sb(call{method: "PATCH", path: "/v1/calm-apps/" + id, body: `{"power_state":"` + want.power + `"}`})))
		if up = waitOperation(t, gw, tok, up.ID); up.State != api.OperationSucceeded || up.Result["state"] != want.state {
			t.Fatalf("power %s: %+v", want.power, up)
		}
		if got := liveApps(sim)[0]; got.State != want.state || got.VMs[0].PowerState != map[string]string{"stopped": "OFF", "running": "ON"}[want.state] {
			t.Fatalf("after %s the simulator says %s, VM %s", want.power, got.State, got.VMs[0].PowerState)
		}
	}

	// Delete returns only once Calm says deleted.
	del := decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/calm-apps/" + id})))
	if del = waitOperation(t, gw, tok, del.ID); del.State != api.OperationSucceeded {
		t.Fatalf("delete: %+v", del)
	}
	if n := len(liveApps(sim)); n != 0 {
		t.Fatalf("%d apps left after delete", n)
	}
	if a := do(t, gw, sb(call{method: "GET", path: "/v1/calm-apps/" + id})); a.status != http.StatusNotFound {
		t.Fatalf("read after delete: %d", a.status)
	}

	// The secret is nowhere sas keeps anything.
	if strings.Contains(logs.String(), secret) {
		t.Error("the secret variable is in the gateway's logs")
	}
	_ = filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
				t.Errorf("the secret variable is in %s", p)
			}
		}
		return nil
	})
	if a := do(t, gw, call{method: "GET", path: "/v1/operations/" + op.ID, token: tok}); a.status != 200 || bytes.Contains(a.body, []byte(secret)) {
		t.Errorf("GET the operation: %d, or it returns the secret", a.status)
	}
	recs, _, err := gw.Gateway.AuditChain().Query(t.Context(), audit.Filter{})
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit query: %d records, %v", len(recs), err)
	}
	if b, _ := json.Marshal(recs); bytes.Contains(b, []byte(secret)) {
		t.Error("the audit trail holds the secret variable")
	}
	var stored string
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT request_json FROM operations WHERE id = $1`, op.ID).Scan(&stored); err != nil ||
		!strings.Contains(stored, audit.SealedPrefix) {
		t.Errorf("the stored request holds no sealed digest: %q %v", stored, err)
	}
	// Handed to Calm, the values were destroyed in Vault.
	if kv, err := env.Admin().KVv2(vaultsetup.RequestSecretsMount).GetMetadata(t.Context(), "sbx/"+op.RequestID); err == nil && kv != nil {
		t.Errorf("the request's secrets are still in Vault: %+v", kv)
	}
}

// A launch Calm fails ends the operation with Calm's own message, and the
// compensation leaves no app behind; a failure at provisioning deletes the
// app it made.
func TestCalmLaunchFailureCompensates(t *testing.T) {
	gw, sim, _, _ := calmGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "unlucky", Bundles: []string{sbx}})
	for i, inject := range []func(){
		func() { sim.FailNextLaunches(1, "cluster sbx-01 has no capacity for 2 vCPUs") },
		func() { sim.FailNextProvisions(1, "cloud-init failed: package repository unreachable") },
	} {
		inject()
		name := []string{"no-capacity", "bad-init"}[i]
		op := decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
			body: `{"name":"` + name + `","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":2,"memory_gib":4,"disk_gib":40}}`}))
		op = waitOperation(t, gw, tok, op.ID)
		want := []string{"no capacity for 2 vCPUs", "package repository unreachable"}[i]
		if op.State != api.OperationFailed || !strings.Contains(op.Error, want) {
			t.Fatalf("%s: want failed with %q, got %s: %s", name, want, op.State, op.Error)
		}
	}
	waitFor(t, "no live app after compensation", func() bool {
		for _, a := range liveApps(sim) {
			if a.State != "deleting" {
				return false
			}
		}
		return true
	})
}

// A Calm app may take the address of an IP reservation the caller made in
// the same context; someone else's, or one made elsewhere, is refused.
func TestCalmAppOnAnIPReservation(t *testing.T) {
	gw, sim, _, _ := calmGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "pairing", Bundles: []string{sbx}})
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "someone-else", Bundles: []string{sbx}})
	ipr := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
		body: `{"network":"sbx-data","hostname":"app-ip","dns_zone":"sbx.example.internal"}`})).ID)
	iprID, _ := ipr.Result["resource_id"].(string)
	addr, _ := ipr.Result["ip_address"].(string)

	body := `{"name":"pinned","project":"sas-sbx","blueprint":"linux-vm-sandbox","ip_reservation":"` + iprID + `","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`
	refused := do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: other, bundle: sbx, env: "sbx", body: body})
	if refused.status != http.StatusUnprocessableEntity || len(refused.problem.InvalidParams) != 1 || refused.problem.InvalidParams[0].Path != "/ip_reservation" {
		t.Fatalf("another caller's reservation: %d %s", refused.status, refused.body)
	}
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx", body: body})).ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create: %+v", op)
	}
	apps := liveApps(sim)
	if len(apps) != 1 || apps[0].VMs[0].Address != addr || apps[0].Variables["NETWORK"] != "10.10.1.0/24" {
		t.Fatalf("app on %s: %+v", addr, apps)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An app edited in Prism behind sas's back reads with its drift named;
// one that vanished from Calm reads 404 and is forgotten.
func TestCalmAppDriftAndVanishing(t *testing.T) {
	gw, sim, _, _ := calmGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "drifter", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/calm-apps",
		body: `{"name":"drifty","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`}))).ID)
	id, _ := op.Result["resource_id"].(string)
	uuid, _ := op.Result["app_uuid"].(string)

	edited := "taken over by the ops team"
	if err := sim.ChangeAppOutOfBand(uuid, simcalm.AppChange{Description: &edited}); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetAppState(uuid, "stopped"); err != nil {
		t.Fatal(err)
	}
	a := do(t, gw, sb(call{method: "GET", path: "/v1/calm-apps/" + id}))
	var res api.Resource
	if err := json.Unmarshal(a.body, &res); err != nil || a.status != 200 {
		t.Fatalf("read: %d %s", a.status, a.body)
	}
	drift := map[string]api.Drift{}
	for _, d := range res.Drift {
		drift[d.Field] = d
	}
	if drift["tags/owner"].Want != "drifter" || drift["tags/owner"].Got != "" || drift["state"].Want != "running" || drift["state"].Got != "stopped" ||
		drift["power_state"].Got != api.CalmStopped {
		t.Fatalf("drift %+v", res.Drift)
	}

	if err := sim.PurgeAppOutOfBand(uuid); err != nil {
		t.Fatal(err)
	}
	if a := do(t, gw, sb(call{method: "GET", path: "/v1/calm-apps/" + id})); a.status != http.StatusNotFound {
		t.Fatalf("read of a vanished app: %d %s", a.status, a.body)
	}
}
