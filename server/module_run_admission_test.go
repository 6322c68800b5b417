package server_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// Attacks on a module run's admission, at the HTTP level on the real Vault
// with the shipped module catalog. Each request is sent twice: as a dry
// run (POST /v1/decisions) and for real (POST or PATCH /v1/module-runs).
// Both must refuse it alike — the same status, problem type and
// invalid_params paths, or the same violations — store nothing, and leave
// an audit record saying refused (or deny) and naming the field.

// moduleRunAttempt is one request as an attacker sends it: the action, the
// run it targets (an update's) and the body.
type moduleRunAttempt struct {
	action, target, body string
}

// both sends the attempt as a dry run and for real.
func (m moduleRunAttempt) both(t *testing.T, gw *testenv.Gateway, tok, bundle, environment string) (dry, real answer) {
	t.Helper()
	envelope := map[string]any{"kind": api.KindModuleRun, "action": m.action, "request": json.RawMessage(m.body)}
	if m.target != "" {
		envelope["target_id"] = m.target
	}
	b, err := json.Marshal(envelope)
	if err != nil {
		t.Fatalf("dry run envelope: %v", err)
	}
	dry = do(t, gw, call{method: http.MethodPost, path: "/v1/decisions", token: tok, bundle: bundle, env: environment, body: string(b)})
	c := call{method: http.MethodPost, path: "/v1/module-runs", token: tok, bundle: bundle, env: environment, body: m.body}
	if m.action == api.ActionUpdate {
		c.method, c.path = http.MethodPatch, "/v1/module-runs/"+m.target
	}
	return dry, do(t, gw, c)
}

// invalidParamPaths are the invalid_params paths of a problem, below prefix, sorted.
func invalidParamPaths(p api.Problem, prefix string) []string {
	out := make([]string, 0, len(p.InvalidParams))
	for _, f := range p.InvalidParams {
		out = append(out, strings.TrimPrefix(f.Path, prefix))
	}
	slices.Sort(out)
	return out
}

// sameRefusal asserts both answers are the same 422: problem type, and the
// paths in want (each at least once, nothing else; the dry run's below
// /request). It returns the real answer's messages by path.
func sameRefusal(t *testing.T, dry, real answer, want ...string) map[string]string {
	t.Helper()
	slices.Sort(want)
	for _, a := range []struct {
		name   string
		a      answer
		prefix string
	}{{"dry run", dry, "/request"}, {"request", real, ""}} {
		if a.a.status != http.StatusUnprocessableEntity || a.a.problem.Type != api.ProblemInvalidRequest {
			t.Fatalf("%s: want 422 %s, got %d %s", a.name, api.ProblemInvalidRequest, a.a.status, clipBody(a.a.body))
		}
		for _, f := range a.a.problem.InvalidParams {
			if !strings.HasPrefix(f.Path, a.prefix+"/") {
				t.Errorf("%s: invalid_params path %s is not below %s/", a.name, f.Path, a.prefix)
			}
		}
		if got := slices.Compact(invalidParamPaths(a.a.problem, a.prefix)); !slices.Equal(got, want) {
			t.Errorf("%s: invalid_params at %v, want %v: %s", a.name, got, want, clipBody(a.a.body))
		}
	}
	if d, r := invalidParamPaths(dry.problem, "/request"), invalidParamPaths(real.problem, ""); !slices.Equal(d, r) {
		t.Errorf("the dry run refuses at %v, the request at %v", d, r)
	}
	for i, f := range real.problem.InvalidParams {
		if i < len(dry.problem.InvalidParams) && dry.problem.InvalidParams[i].Message != f.Message {
			t.Errorf("at %s the dry run says %q, the request %q", f.Path, dry.problem.InvalidParams[i].Message, f.Message)
		}
	}
	out := map[string]string{}
	for _, f := range real.problem.InvalidParams {
		out[f.Path] += f.Message
	}
	return out
}

// sameDenial asserts the dry run answers a denial (200, allow false) and
// the request 403 policy-denied, with the same violations (rule@path), and
// that those hold want. It returns them.
func sameDenial(t *testing.T, dry, real answer, want string) []string {
	t.Helper()
	var d api.Decision
	dryDenied := dry.status == http.StatusOK && json.Unmarshal(dry.body, &d) == nil && !d.Allow
	realDenied := real.status == http.StatusForbidden && real.problem.Type == api.ProblemPolicyDenied
	if !dryDenied || !realDenied {
		t.Fatalf("want %s from both\n dry run: %d %s\n request: %d %s", want, dry.status, clipBody(dry.body), real.status, clipBody(real.body))
	}
	dv, rv := violationRules(d.Violations), violationRules(real.problem.Violations)
	if !slices.Equal(dv, rv) {
		t.Errorf("the dry run's violations %v, the request's %v", dv, rv)
	}
	if !slices.Contains(rv, want) {
		t.Errorf("violations %v, want %s among them", rv, want)
	}
	return rv
}

// auditedRefusal asserts the request's audit record says decision (refused
// or deny) for a module_run action, and names field: a denial's
// violations carry their paths; a refusal's record must carry the
// invalid_params it answered.
func auditedRefusal(t *testing.T, gw *testenv.Gateway, a answer, action string, decision audit.Decision, field string) {
	t.Helper()
	id := a.header.Get(api.HeaderRequestID)
	recs := auditOf(t, gw, id)
	if len(recs) != 1 {
		t.Fatalf("request %s: %d audit records, want 1: %+v", id, len(recs), recs)
	}
	r := recs[0]
	if r.Decision != decision || r.Kind != api.KindModuleRun || r.Action != action || r.StatusCode != a.status {
		t.Errorf("request %s audited as %s %s %s (status %d), want %s %s %s (status %d)",
			id, r.Decision, r.Action, r.Kind, r.StatusCode, decision, action, api.KindModuleRun, a.status)
	}
	if a.problem.Type != "" && !strings.HasPrefix(r.Outcome, a.problem.Type) {
		t.Errorf("request %s audited with outcome %q, answered %s", id, r.Outcome, a.problem.Type)
	}
	// Wherever the record keeps it (a violation's path, the outcome, a
	// field of its own), the refused field is in what the record holds.
	raw, _ := json.Marshal(r)
	if !strings.Contains(string(raw), field) {
		t.Errorf("the audit record of request %s (%s, answered %d) does not name the refused field %s: outcome %q, violations %+v",
			id, r.Decision, a.status, field, r.Outcome, r.Violations)
	}
}

// traceTables are the gateway's tables a request could leave a trace in.
var traceTables = []string{"operations", "resources", "audit_records", "operation_logs", "subtokens"}

// rowsHolding lists the tables (and columns) any row of which holds needle.
func rowsHolding(t *testing.T, db *sql.DB, needle string) []string {
	t.Helper()
	var out []string
	for _, table := range traceTables {
		rows, err := db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("scan %s: %v", table, err)
			}
			for i, v := range vals {
				var s string
				switch v := v.(type) {
				case []byte:
					s = string(v)
				default:
					s = fmt.Sprint(v)
				}
				if strings.Contains(s, needle) {
					out = append(out, table+"."+cols[i])
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
	}
	return out
}

// nothingStored asserts no operation was made since there were before, and
// that no stored row holds any of needles (a run's name, a secret value).
func nothingStored(t *testing.T, gw *testenv.Gateway, before int, needles ...string) {
	t.Helper()
	if n := operationCount(t, gw); n != before {
		t.Errorf("%d operations stored by refused requests", n-before)
	}
	for _, needle := range needles {
		if where := rowsHolding(t, gw.Gateway.Store().DB, needle); len(where) > 0 {
			t.Errorf("%s is stored in %v", clip(needle, 40), where)
		}
	}
	all, _, err := gw.Gateway.AuditChain().Query(t.Context(), audit.Filter{})
	b, _ := json.Marshal(all)
	for _, needle := range needles {
		if err != nil || bytes.Contains(b, []byte(needle)) {
			t.Errorf("the audit trail holds %s (%v)", clip(needle, 40), err)
		}
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func clipBody(b []byte) string { return clip(string(b), 600) }

// Creates an attacker shapes to reach Terraform's environment, smuggle a
// secret past the vault, exhaust storage or hold a worker for a month: all
// refused at admission, the dry run first, with the field named; nothing
// stored; each refusal audited.
func TestModuleRunCreateAttacksRefusedAtAdmission(t *testing.T) {
	logs := &syncBuffer{}
	gw := env.StartGateway(t, func(c *server.Config) { c.RateLimit, c.RateBurst = 1e6, 1e6 }, traceLogs(logs))
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "module-attacker", Bundles: []string{sbx}})
	create := func(name, module, version, rest string) moduleRunAttempt {
		return moduleRunAttempt{action: api.ActionCreate,
			body: fmt.Sprintf(`{"name":%q,"module":%q,"version":%q,%s}`, name, module, version, rest)}
	}
	// attack sends one create both ways, checks they refuse it at want,
	// audits both, and checks nothing (not the name, nor needles) is stored.
	attack := func(t *testing.T, m moduleRunAttempt, name string, needles []string, want ...string) (map[string]string, answer, answer) {
		t.Helper()
		before := operationCount(t, gw)
		dry, real := m.both(t, gw, tok, sbx, "sbx")
		msgs := sameRefusal(t, dry, real, want...)
		for _, a := range []answer{dry, real} {
			auditedRefusal(t, gw, a, api.ActionCreate, audit.DecisionRefused, want[0])
		}
		nothingStored(t, gw, before, append([]string{name}, needles...)...)
		return msgs, dry, real
	}

	// Terraform reads TF_LOG and TF_CLI_ARGS from its environment; neither is
	// an input of any module, in inputs or in secret inputs.
	t.Run("unknown inputs TF_LOG and TF_CLI_ARGS", func(t *testing.T) {
		msgs, _, _ := attack(t, create("tf-env-probe", "platform/maintenance-window", "1.1.0",
			`"inputs":{"service":"web","TF_LOG":"TRACE","TF_CLI_ARGS":"-lock=false -parallelism=999"}`),
			"tf-env-probe", []string{"-parallelism=999"}, "/inputs/TF_CLI_ARGS", "/inputs/TF_LOG")
		for _, p := range []string{"/inputs/TF_CLI_ARGS", "/inputs/TF_LOG"} {
			if !strings.Contains(msgs[p], "has no input") || !strings.Contains(msgs[p], "its inputs: duration_hours, service, start_hour, weekday") {
				t.Errorf("%s: %q does not say the module has no such input and which it has", p, msgs[p])
			}
		}
		msgs, _, _ = attack(t, create("tf-env-secret", "platform/secret-rotation", "1.0.0",
			`"inputs":{"service":"web"},"secret_inputs":{"initial_secret":"s3cret-tf-env-1","TF_CLI_ARGS":"-var-file=/etc/shadow"}`),
			"tf-env-secret", []string{"s3cret-tf-env-1", "/etc/shadow"}, "/secret_inputs/TF_CLI_ARGS")
		if !strings.Contains(msgs["/secret_inputs/TF_CLI_ARGS"], "has no input") {
			t.Errorf("secret TF_CLI_ARGS: %q", msgs["/secret_inputs/TF_CLI_ARGS"])
		}
	})

	// The secret sent where inputs go (stored, shown, given to the policy):
	// refused, and its value is nowhere — not in the answer, the store or
	// the audit trail.
	t.Run("secret sent as a plain input", func(t *testing.T) {
		const secret = "pl4in-s1ght-secret-90210"
		_, dry, real := attack(t, create("secret-in-clear", "platform/secret-rotation", "1.0.0",
			`"inputs":{"service":"billing","initial_secret":"`+secret+`"}`),
			"secret-in-clear", []string{secret}, "/inputs/initial_secret")
		for _, a := range []answer{dry, real} {
			if bytes.Contains(a.body, []byte(secret)) {
				t.Errorf("the answer repeats the secret: %s", a.body)
			}
			if !strings.Contains(string(a.body), "send it in secret_inputs") {
				t.Errorf("the answer does not say where a secret goes: %s", a.body)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Error("the gateway's logs hold the secret")
		}
	})

	// 300 KB in one value: under the body limit (1 MiB), over the 4 KiB a
	// value may be. In a secret input the value rule (1024 characters)
	// refuses it as well; the path is the same.
	t.Run("oversized value", func(t *testing.T) {
		big := strings.Repeat("a", 300<<10)
		msgs, _, _ := attack(t, create("oversized-value", "platform/maintenance-window", "1.1.0",
			`"inputs":{"service":"`+big+`"}`), "oversized-value", nil, "/inputs/service")
		if m := msgs["/inputs/service"]; !strings.Contains(m, "4096 bytes (4 KiB)") {
			t.Errorf("oversized value: %q does not name the 4 KiB limit", m)
		}
		secretBig := "zz-" + strings.Repeat("s", 300<<10)
		attack(t, create("oversized-secret", "platform/secret-rotation", "1.0.0",
			`"inputs":{"service":"web"},"secret_inputs":{"initial_secret":"`+secretBig+`"}`),
			"oversized-secret", []string{secretBig[:64]}, "/secret_inputs/initial_secret")
	})

	// Many values each under 4 KiB that together pass 32 KiB: refused at
	// the largest field; secret inputs count towards the total.
	t.Run("oversized totals", func(t *testing.T) {
		var in []string
		for i := range 9 {
			in = append(in, fmt.Sprintf(`"pad_%d":%q`, i, strings.Repeat("p", 3900)))
		}
		msgs, _, _ := attack(t, create("oversized-total", "platform/maintenance-window", "1.1.0",
			`"inputs":{"service":"web",`+strings.Join(in, ",")+`}`), "oversized-total", nil, "/inputs")
		if m := msgs["/inputs"]; !strings.Contains(m, "32768 bytes (32 KiB)") {
			t.Errorf("oversized totals: %q does not name the 32 KiB limit", m)
		}
		// 8 inputs of 3.9 KB (about 31 KB) and 5 secret inputs of 1000
		// characters: neither alone is over 32 KiB, both together are.
		var secrets []string
		for i := range 5 {
			secrets = append(secrets, fmt.Sprintf(`"s_%d":"tot-secret-%d-%s"`, i, i, strings.Repeat("q", 980)))
		}
		msgs, _, _ = attack(t, create("oversized-split", "platform/secret-rotation", "1.0.0",
			`"inputs":{"service":"web",`+strings.Join(in[:8], ",")+`},"secret_inputs":{`+strings.Join(secrets, ",")+`}`),
			"oversized-split", []string{"tot-secret-0-qqqq"}, "/inputs")
		if m := msgs["/inputs"]; !strings.Contains(m, "inputs and secret_inputs") || !strings.Contains(m, "32 KiB") {
			t.Errorf("oversized split totals: %q does not say both count towards 32 KiB", m)
		}
	})

	// A release gate told to wait a month would hold a worker past its
	// step's deadline: the module's own validation refuses it before
	// anything is stored.
	t.Run("deploy-gate settle 720h", func(t *testing.T) {
		msgs, _, _ := attack(t, create("gate-720h", "platform/deploy-gate", "1.0.0",
			`"inputs":{"release":"v1.2.3","settle":"720h"}`), "gate-720h", nil, "/inputs/settle")
		if m := msgs["/inputs/settle"]; !strings.Contains(m, "fails the module's validation") || !strings.Contains(m, "at most 120s") {
			t.Errorf("settle 720h: %q does not give the module's validation message", m)
		}
	})

	// The scan that found none of the above finds what is stored.
	if where := rowsHolding(t, gw.Gateway.Store().DB, "module-attacker"); !slices.Contains(where, "audit_records.owner_name") {
		t.Fatalf("the trace scan does not see the attacker's own audit records: %v", where)
	}
}

// gatewayWithSbxBundle starts a gateway whose sbx bundle is the shipped one changed
// by edit (data.json's text).
func gatewayWithSbxBundle(t *testing.T, edit func(string) string) *testenv.Gateway {
	t.Helper()
	root, _ := devvault.RepoRoot()
	bundles := t.TempDir()
	if err := os.CopyFS(bundles, os.DirFS(filepath.Join(root, "examples", "bundles"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bundles, sbx, "data.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := edit(string(raw))
	if edited == string(raw) {
		t.Fatal("the bundle edit changed nothing: the shipped data.json moved")
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	return env.StartGateway(t, func(c *server.Config) { c.BundleDir = bundles })
}

// An update to a version the catalog does not have (refused, 422 at
// /version) or that the resource's bundle does not allow (denied, 403 with
// module_version_not_allowed at /version) changes nothing: no operation,
// and the run keeps its version.
func TestModuleRunUpdateVersionRefusedAtAdmission(t *testing.T) {
	// This sbx bundle approves maintenance-window 1.1.0 only; the catalog
	// has 1.0.0 as well.
	gw := gatewayWithSbxBundle(t, func(s string) string {
		return strings.Replace(s, `"platform/maintenance-window": {"versions": ["1.0.0", "1.1.0"]`, `"platform/maintenance-window": {"versions": ["1.1.0"]`, 1)
	})
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "version-pusher", Bundles: []string{sbx}})
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: http.MethodPost, path: "/v1/module-runs", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"version-probe","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"web"}}`})).ID)
	if op.State != api.OperationSucceeded {
		t.Fatalf("create: %s: %s", op.State, op.Error)
	}
	id, _ := op.Result["resource_id"].(string)
	version := func() string {
		var spec string
		if err := gw.Gateway.Store().DB.QueryRow(`SELECT spec_json FROM resources WHERE id = $1`, id).Scan(&spec); err != nil {
			t.Fatalf("resource %s: %v", id, err)
		}
		var r api.ModuleRunRequest
		_ = json.Unmarshal([]byte(spec), &r)
		return r.Version
	}

	t.Run("not in the catalog", func(t *testing.T) {
		before := operationCount(t, gw)
		m := moduleRunAttempt{action: api.ActionUpdate, target: id, body: `{"version":"9.9.9"}`}
		dry, real := m.both(t, gw, tok, sbx, "sbx")
		msgs := sameRefusal(t, dry, real, "/version")
		if m := msgs["/version"]; !strings.Contains(m, "no approved version") || !strings.Contains(m, "1.1.0") {
			t.Errorf("catalog version: %q does not name the approved versions", m)
		}
		for _, a := range []answer{dry, real} {
			auditedRefusal(t, gw, a, api.ActionUpdate, audit.DecisionRefused, "/version")
		}
		nothingStored(t, gw, before, `"9.9.9"`)
	})

	t.Run("not allowed by the resource's bundle", func(t *testing.T) {
		before := operationCount(t, gw)
		m := moduleRunAttempt{action: api.ActionUpdate, target: id, body: `{"version":"1.0.0"}`}
		dry, real := m.both(t, gw, tok, sbx, "sbx")
		if real.status == http.StatusAccepted { // admitted anyway: say what became of it
			op := waitOperation(t, gw, tok, decodeOp(t, real).ID)
			t.Errorf("the update to 1.0.0 was admitted (202) and ended %s %q; the run is now at version %s", op.State, op.Error, version())
		}
		sameDenial(t, dry, real, "module_version_not_allowed@/version")
		for _, a := range []answer{dry, real} {
			auditedRefusal(t, gw, a, api.ActionUpdate, audit.DecisionDeny, "/version")
		}
		nothingStored(t, gw, before)
	})

	if v := version(); v != "1.1.0" {
		t.Fatalf("the run is at version %s after refused updates, want 1.1.0", v)
	}
}

// A module run's name is the gateway's own, unique per environment: a
// caller in dev can name a run as one in sbx is named — neither blocked by
// it nor told it exists — and the dry run says so too.
func TestModuleRunNamesArePerEnvironment(t *testing.T) {
	gw := env.StartGateway(t)
	sbxTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "sbx-window-owner", Bundles: []string{sbx}})
	devTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "dev-window-owner", Bundles: []string{dev}})
	body := `{"name":"ledger-window","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"ledger"}}`
	first := waitOperation(t, gw, sbxTok, decodeOp(t, do(t, gw, call{method: http.MethodPost, path: "/v1/module-runs", token: sbxTok, bundle: sbx, env: "sbx", body: body})).ID)
	if first.State != api.OperationSucceeded {
		t.Fatalf("sbx create: %s: %s", first.State, first.Error)
	}

	dry, real := moduleRunAttempt{action: api.ActionCreate, body: body}.both(t, gw, devTok, dev, "dev")
	var d api.Decision
	if dry.status != http.StatusOK || json.Unmarshal(dry.body, &d) != nil || !d.Allow {
		t.Fatalf("dry run in dev: %d %s", dry.status, clipBody(dry.body))
	}
	if real.status != http.StatusAccepted {
		t.Fatalf("the same name in dev: want 202, got %d %s", real.status, clipBody(real.body))
	}
	if strings.Contains(string(real.body), "sbx") {
		t.Errorf("the dev create's answer mentions sbx: %s", real.body)
	}
	second := waitOperation(t, gw, devTok, decodeOp(t, real).ID)
	if second.State != api.OperationSucceeded || second.Result["resource_id"] == first.Result["resource_id"] {
		t.Fatalf("dev create: %s %v (sbx run %v): %s", second.State, second.Result["resource_id"], first.Result["resource_id"], second.Error)
	}

	// In its own environment the name is still taken.
	again := do(t, gw, call{method: http.MethodPost, path: "/v1/module-runs", token: devTok, bundle: dev, env: "dev",
		body: `{"name":"ledger-window","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"other"}}`})
	if again.status != http.StatusConflict || again.problem.Type != api.ProblemNaturalKeyConflict {
		t.Fatalf("the same name twice in dev: %d %s", again.status, clipBody(again.body))
	}
}
