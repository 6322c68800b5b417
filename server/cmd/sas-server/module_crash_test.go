package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// The gateway SIGKILLed while Terraform applies a module run: the apply
// it started finishes on its own (Terraform writes its state as it goes),
// the restarted gateway plans again from that state, finds nothing left to
// do, and the run succeeds — the saved plan was applied once, nothing was
// made twice, and no lock was left behind.
func TestKilledGatewayMidModuleApplyAppliesOnce(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sas-server")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root, _ := devvault.RepoRoot()
	data := filepath.Join(dir, "data")
	cfgFile, environ, addr := serveSetup(t, dir, data, `orchestrator {
  operation_timeout = "60s"
  rescue_after      = "20s"
}
`)
	environ = append(environ, "SAS_MODULE_CATALOG_DIR="+filepath.Join(root, "examples", "modules"),
		"SAS_TERRAFORM_PATH="+filepath.Join(root, "bin", "terraform"), "SAS_MODULE_PLUGIN_DIR="+filepath.Join(root, "bin", "plugins"),
		"SAS_MODULE_WORK_DIR="+filepath.Join(dir, "runs"))
	gw := startServeWithConfig(t, exe, cfgFile, environ, addr)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "module-crash", Bundles: []string{"fedramp_sbx_default"}})
	base := "http://" + addr

	status, body := apiCall(t, "POST", base+"/v1/module-runs", tok,
		`{"name":"gate-1","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1.2.3","settle":"8s"}}`, "gate-1")
	var op api.Operation
	if err := json.Unmarshal(body, &op); err != nil || status != 202 {
		t.Fatalf("create: %d %s", status, body)
	}
	state := filepath.Join(data, "module-state", "mr-"+strings.TrimPrefix(op.ID, "op-")+".tfstate")
	dataID := regexp.MustCompile(`"type": "terraform_data"[\s\S]*?"id": "([0-9a-f-]+)"`)
	var before string
	// Mid-apply: the release is recorded, the settle wait is not done yet.
	for wait := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(state)
		if m := dataID.FindSubmatch(b); m != nil && !strings.Contains(string(b), `"type": "time_sleep"`) {
			before = string(m[1])
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the apply never got half way: state\n%s\n%s", b, gw.stderr)
		}
	}
	if err := gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-gw.exited
	t.Logf("gateway SIGKILLed mid-apply: terraform_data %s in state, time_sleep not yet", before)

	gw = startServeWithConfig(t, exe, cfgFile, environ, addr)
	var done api.Operation
	for wait := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		status, body := apiCall(t, "GET", base+"/v1/operations/"+op.ID, tok, "", "")
		if err := json.Unmarshal(body, &done); err != nil || status != 200 {
			t.Fatalf("operation: %d %s", status, body)
		}
		if done.State == api.OperationSucceeded || done.State == api.OperationFailed {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("operation still %s after the restart\n%s", done.State, gw.stderr)
		}
	}
	if done.State != api.OperationSucceeded {
		t.Fatalf("after the restart: %s: %s", done.State, done.Error)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if m := dataID.FindSubmatch(b); m == nil || string(m[1]) != before || strings.Count(string(b), `"type": "terraform_data"`) != 1 ||
		strings.Count(string(b), `"type": "time_sleep"`) != 1 {
		t.Fatalf("state after the restart (terraform_data was %s):\n%s", before, b)
	}
	if _, err := os.Stat(state + ".lock.info"); !os.IsNotExist(err) {
		t.Fatalf("a lock was left behind: %v", err)
	}
	plan, _ := done.Result["plan"].(map[string]any)
	t.Logf("resumed run succeeded; its own plan: %v (the killed step's apply had finished the work)", plan)
}
