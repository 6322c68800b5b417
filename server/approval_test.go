package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// copyBundles copies the shipped bundles to a directory a test may edit.
func copyBundles(t *testing.T) string {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	src := filepath.Join(root, "examples", "bundles")
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// The revision that approved a request is the one that executes it: a
// module run admitted, then kept waiting for a worker while its bundle is
// reloaded without that module, still runs — its plan judged by the
// revision that admitted it (the audit record of the plan's decision names
// it) — while the same request admitted after the reload is denied.
func TestBundleReloadedBetweenAdmissionAndExecutionChangesNothingRun(t *testing.T) {
	bundles := copyBundles(t)
	gw := env.StartGateway(t, func(c *server.Config) { c.BundleDir, c.WorkersPerKind = bundles, 1 })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "pinned-runner", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }

	// The one module-run worker is busy settling a release.
	busy := decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/module-runs",
		body: `{"name":"busy-gate","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1","settle":"8s"}}`})))
	waitFor(t, "the gate run to start", func() bool { op, _ := gw.Gateway.OperationFor(busy.ID); return op.State == api.OperationRunning })
	const body = `{"name":"pinned-window","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"billing"}}`
	queued := decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/module-runs", body: body})))
	if queued.BundleRevision == "" {
		t.Fatalf("the operation does not record the revision that admitted it: %+v", queued)
	}
	if op, _ := gw.Gateway.OperationFor(queued.ID); op.State != api.OperationPending {
		t.Fatalf("the second run is not waiting for the worker: %+v", op)
	}

	// The operator withdraws the module from the sandbox bundle.
	dataPath := filepath.Join(bundles, sbx, "data.json")
	raw, err := os.ReadFile(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	delete(data["sas"].(map[string]any)["bundle"].(map[string]any)["modules"].(map[string]any), "platform/maintenance-window")
	raw, _ = json.MarshalIndent(data, "", "  ")
	if err := os.WriteFile(dataPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gw.Gateway.ReloadPolicy(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := do(t, gw, sb(call{method: "POST", path: "/v1/module-runs", body: strings.Replace(body, "pinned-window", "late-window", 1)}))
	if after.status != 403 || after.problem.Type != api.ProblemPolicyDenied || after.problem.BundleRevision == queued.BundleRevision {
		t.Fatalf("after the reload the same request: %d %s", after.status, after.body)
	}

	done := waitOperation(t, gw, tok, queued.ID)
	if done.State != api.OperationSucceeded {
		t.Fatalf("the run admitted before the reload: %+v", done)
	}
	var judged []audit.Record
	for _, r := range auditOf(t, gw, queued.RequestID) {
		if strings.HasPrefix(r.Outcome, "plan judged") {
			judged = append(judged, r)
		}
	}
	if len(judged) != 1 || judged[0].Decision != audit.DecisionAllow || judged[0].BundleRevision != queued.BundleRevision {
		t.Fatalf("the plan was not judged by revision %s: %+v", queued.BundleRevision, judged)
	}
	if op := waitOperation(t, gw, tok, busy.ID); op.State != api.OperationSucceeded {
		t.Fatalf("the gate run: %+v", op)
	}
}

// Worker pools are per kind and environment: a sandbox run holding the
// only module-run worker of sbx does not hold up a dev run.
func TestSandboxRunsDoNotStarveAnotherEnvironment(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.WorkersPerKind = 1 })
	sbxTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "sandbox-gater", Bundles: []string{sbx}})
	devTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "dev-team", Bundles: []string{dev}})
	gate := decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/module-runs", token: sbxTok, bundle: sbx, env: "sbx",
		body: `{"name":"long-gate","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1","settle":"20s"}}`}))
	waitFor(t, "the sandbox gate to start", func() bool { op, _ := gw.Gateway.OperationFor(gate.ID); return op.State == api.OperationRunning })
	queuedInSbx := decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/module-runs", token: sbxTok, bundle: sbx, env: "sbx",
		body: `{"name":"second-sbx","module":"platform/service-registration","version":"2.0.0","inputs":{"name":"x","owner":"x@example.com"}}`}))
	devRun := waitOperation(t, gw, devTok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/module-runs", token: devTok, bundle: dev, env: "dev",
		body: `{"name":"dev-window","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"billing"}}`})).ID)
	if devRun.State != api.OperationSucceeded {
		t.Fatalf("dev run: %+v", devRun)
	}
	if op, _ := gw.Gateway.OperationFor(gate.ID); op.State != api.OperationRunning {
		t.Fatalf("the dev run did not finish while the sandbox gate ran (gate %s)", op.State)
	}
	if op, _ := gw.Gateway.OperationFor(queuedInSbx.ID); op.State != api.OperationPending {
		t.Fatalf("the second sandbox run should wait for sbx's one worker; it is %s", op.State)
	}
}
