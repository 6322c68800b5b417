package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

func output(t *testing.T, op any, name string) (value any, sensitive bool) {
	t.Helper()
	outs, _ := op.(map[string]any)["outputs"].(map[string]any)
	o, ok := outs[name].(map[string]any)
	if !ok {
		t.Fatalf("no output %s in %v", name, op)
	}
	s, _ := o["sensitive"].(bool)
	return o["value"], s
}

// A catalog module through the whole path: planned, the plan judged by the
// bundle (and audited), applied, its outputs returned; re-run with other
// inputs; destroyed. Its secret input reaches Terraform and nothing else.
func TestModuleRunLifecycle(t *testing.T) {
	var dataDir string
	logs := &syncBuffer{}
	gw := env.StartGateway(t, func(c *server.Config) { dataDir = c.DataDir }, traceLogs(logs))
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "platform-team", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	const secret = "rotate-me-0n-day-one-7731"

	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/module-runs",
		body: `{"name":"billing-rotation","module":"platform/secret-rotation","version":"1.0.0",
			"inputs":{"service":"billing","rotation_days":14},"secret_inputs":{"initial_secret":"` + secret + `"}}`}))).ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create: %+v", op)
	}
	id, _ := op.Result["resource_id"].(string)
	// The secret's fingerprint is keyed (the audit HMAC key), never a bare
	// hash an output reader could test guesses against.
	key, err := audit.LoadHMACKey(audit.DefaultKeyPaths(dataDir).HMAC)
	if err != nil {
		t.Fatal(err)
	}
	fps, _ := op.Result["secret_input_fingerprints"].(map[string]any)
	if want := modulerun.SecretInputFingerprint(key, "initial_secret", secret); len(fps) != 1 || fps["initial_secret"] != want {
		t.Fatalf("secret_input_fingerprints %v, want initial_secret: %s", op.Result["secret_input_fingerprints"], want)
	}
	if at, sensitive := output(t, op.Result, "rotates_at"); sensitive || at == "" {
		t.Fatalf("rotates_at %v", at)
	}
	if plan, _ := op.Result["plan"].(map[string]any); plan["add"] != float64(2) {
		t.Fatalf("plan summary %v", op.Result["plan"])
	}
	recs := auditOf(t, gw, op.RequestID)
	judged := false
	for _, r := range recs {
		if strings.HasPrefix(r.Outcome, "plan judged") && r.Decision == audit.DecisionAllow {
			judged = true
		}
	}
	if !judged {
		t.Fatalf("no audited plan decision in %d records", len(recs))
	}

	// The run's output, for its owner only, secrets redacted.
	a := do(t, gw, sb(call{method: "GET", path: "/v1/operations/" + op.ID + "/log"}))
	var l api.OperationLog
	if err := json.Unmarshal(a.body, &l); err != nil || a.status != 200 || len(l.Steps) == 0 || !strings.Contains(l.Steps[0].Text, "Apply complete") {
		t.Fatalf("operation log: %d %s", a.status, a.body)
	}
	if bytes.Contains(a.body, []byte(secret)) {
		t.Error("the operation log holds the secret input")
	}
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "someone-else", Bundles: []string{sbx}})
	if a := do(t, gw, call{method: "GET", path: "/v1/operations/" + op.ID + "/log", token: other}); a.status != 404 {
		t.Fatalf("another caller read the log: %d", a.status)
	}

	// New inputs: planned, judged and applied again (the schedule changes).
	up := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "PATCH", path: "/v1/module-runs/" + id,
		body: `{"inputs":{"service":"billing","rotation_days":30},"secret_inputs":{"initial_secret":"` + secret + `"}}`}))).ID)
	if up.State != api.OperationSucceeded {
		t.Fatalf("update: %+v", up)
	}

	del := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/module-runs/" + id}))).ID)
	if del.State != api.OperationSucceeded {
		t.Fatalf("delete: %+v", del)
	}
	st, err := os.ReadFile(filepath.Join(dataDir, "module-state", id+".tfstate"))
	if err != nil || !bytes.Contains(st, []byte(`"resources": []`)) {
		t.Fatalf("state after delete: %v\n%s", err, st)
	}

	if strings.Contains(logs.String(), secret) {
		t.Error("the secret input is in the gateway's logs")
	}
	_ = filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
				t.Errorf("the secret input is in %s", p)
			}
		}
		return nil
	})
	all, _, err := gw.Gateway.AuditChain().Query(t.Context(), audit.Filter{})
	if b, _ := json.Marshal(all); err != nil || bytes.Contains(b, []byte(secret)) {
		t.Errorf("the audit trail holds the secret input (%v)", err)
	}
}

// A plan the bundle does not approve is never applied: the operation fails
// saying why, the trail records the denial, and the state holds nothing.
func TestModuleRunPlanDeniedIsNeverApplied(t *testing.T) {
	root, _ := devvault.RepoRoot()
	bundles := t.TempDir()
	if err := os.CopyFS(bundles, os.DirFS(filepath.Join(root, "examples", "bundles"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bundles, sbx, "data.json")
	raw, _ := os.ReadFile(path)
	// This bundle approves the module, but only terraform_data in its plans.
	raw = bytes.Replace(raw, []byte(`"resource_types": ["terraform_data", "time_static"]`), []byte(`"resource_types": ["terraform_data"]`), 1)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var dataDir string
	gw := env.StartGateway(t, func(c *server.Config) { c.BundleDir, dataDir = bundles, c.DataDir })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "planner-denied", Bundles: []string{sbx}})
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/module-runs", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"window-1","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"web"}}`})).ID)
	if op.State != api.OperationFailed || !strings.Contains(op.Error, "module_resource_type_not_allowed") || !strings.Contains(op.Error, "nothing was applied") {
		t.Fatalf("want failed with the plan's denial, got %s: %s", op.State, op.Error)
	}
	denied := false
	for _, r := range auditOf(t, gw, op.RequestID) {
		if strings.HasPrefix(r.Outcome, "plan judged") && r.Decision == audit.DecisionDeny && len(r.Violations) > 0 {
			denied = true
		}
	}
	if !denied {
		t.Fatal("the trail does not record the plan's denial")
	}
	st, err := os.ReadFile(filepath.Join(dataDir, "module-state", "mr-"+strings.TrimPrefix(op.ID, "op-")+".tfstate"))
	if err == nil && !bytes.Contains(st, []byte(`"resources": []`)) {
		t.Fatalf("a denied plan was applied:\n%s", st)
	}
}

// On PostgreSQL a run's state lives in Terraform's own pg backend, a schema
// per resource beside the gateway's tables (locked by advisory locks that
// end with the session), and no state file is written.
func TestModuleRunOnPostgres(t *testing.T) {
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	cfg := storetest.Config(t, store.DriverPostgres)
	if err := os.WriteFile(dsnFile, []byte(cfg.DSN), 0o600); err != nil {
		t.Fatal(err)
	}
	var dataDir string
	gw := env.StartGateway(t, func(c *server.Config) { c.PostgresDSNFile, dataDir = dsnFile, c.DataDir })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "pg-modules", Bundles: []string{sbx}})
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/module-runs", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"pg-window","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"pg"}}`})).ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create on postgres: %s: %s", op.State, op.Error)
	}
	id, _ := op.Result["resource_id"].(string)
	var states int
	schema := modulerun.StateSchema(id)
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT count(*) FROM ` + schema + `.states WHERE name = 'default' AND data LIKE '%terraform_data%'`).Scan(&states); err != nil || states != 1 {
		t.Fatalf("state in schema %s: %d rows, %v", schema, states, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "module-state", id+".tfstate")); !os.IsNotExist(err) {
		t.Fatalf("a state file was written on postgres: %v", err)
	}
	del := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "DELETE", path: "/v1/module-runs/" + id, token: tok, bundle: sbx, env: "sbx"})).ID)
	if del.State != api.OperationSucceeded {
		t.Fatalf("delete on postgres: %s: %s", del.State, del.Error)
	}
}

// Drift on demand: GET …?refresh=true runs a refresh-only plan and names
// what changed outside Terraform (here: the rotation came due); a plain GET
// answers from the record without running Terraform.
func TestModuleRunDriftOnRefresh(t *testing.T) {
	var dataDir string
	gw := env.StartGateway(t, func(c *server.Config) { dataDir = c.DataDir })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "drift-watcher", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/module-runs",
		body: `{"name":"rotation-drift","module":"platform/secret-rotation","version":"1.0.0","inputs":{"service":"web"},"secret_inputs":{"initial_secret":"s3cret-value"}}`}))).ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create: %s: %s", op.State, op.Error)
	}
	id, _ := op.Result["resource_id"].(string)
	read := func(query string) api.Resource {
		a := do(t, gw, sb(call{method: "GET", path: "/v1/module-runs/" + id + query}))
		var res api.Resource
		if err := json.Unmarshal(a.body, &res); err != nil || a.status != 200 {
			t.Fatalf("read%s: %d %s", query, a.status, a.body)
		}
		return res
	}
	if res := read("?refresh=true"); len(res.Drift) != 0 {
		t.Fatalf("drift right after the apply: %+v", res.Drift)
	}
	// The rotation comes due: what time_rotating's refresh sees as gone.
	path := filepath.Join(dataDir, "module-state", id+".tfstate")
	st, _ := os.ReadFile(path)
	due := regexp.MustCompile(`"rotation_rfc3339": "[^"]+"`).ReplaceAll(st, []byte(`"rotation_rfc3339": "2001-01-01T00:00:00Z"`))
	if bytes.Equal(due, st) {
		t.Fatal("no rotation time in the state")
	}
	if err := os.WriteFile(path, due, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := read(""); len(res.Drift) != 0 {
		t.Fatalf("a plain read ran a refresh: %+v", res.Drift)
	}
	res := read("?refresh=true")
	if len(res.Drift) != 1 || res.Drift[0].Field != "resources/time_rotating.schedule" || res.Drift[0].Got != "gone" {
		t.Fatalf("drift %+v", res.Drift)
	}
}
