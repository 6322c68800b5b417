package server_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// BenchmarkModuleRuns compares one catalog module applied through the
// gateway (admission, policy on the request and on the plan, audit, a
// sub-token, init/plan/show/apply/output in a private directory) with a
// bare `terraform init && terraform apply` of the same module on the same
// machine, alternating three times, then runs 10 at once through the
// gateway. Run with -benchtime=1x.
func BenchmarkModuleRuns(b *testing.B) {
	root, _ := devvault.RepoRoot()
	tf, plugins := filepath.Join(root, "bin", "terraform"), filepath.Join(root, "bin", "plugins")
	src := filepath.Join(root, "examples", "modules", "platform", "maintenance-window", "1.1.0")
	for i := 0; i < b.N; i++ {
		gw := env.StartGateway(b, unlimited)
		owner := fmt.Sprintf("module-bench-%d", i)
		tok := env.Caller(b, vaultsetup.CallerSpec{Entity: owner, Bundles: []string{sbx}})
		var bare, viaGateway time.Duration
		const rounds = 3
		for r := range rounds {
			bare += timeIt(b, func() error { return bareApply(b, tf, plugins, src, fmt.Sprintf("bare-%d", r)) })
			viaGateway += timeIt(b, func() error { return gatewayRun(b, gw, tok, fmt.Sprintf("bench-%d-%d", i, r)) })
		}
		concurrent := timeAll(b, 10, func(k int) error { return gatewayRun(b, gw, tok, fmt.Sprintf("conc-%d-%d", i, k)) })
		b.ReportMetric(bare.Seconds()/rounds, "bare_apply_s")
		b.ReportMetric(viaGateway.Seconds()/rounds, "gateway_run_s")
		b.ReportMetric(viaGateway.Seconds()/bare.Seconds(), "gateway/bare")
		b.ReportMetric(concurrent.Seconds(), "10_concurrent_s")
	}
}

func timeIt(b *testing.B, f func() error) time.Duration {
	b.Helper()
	t0 := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// bareApply is what a user would run by hand: a copy of the module, init
// from the same mirror, apply.
func bareApply(b *testing.B, tf, plugins, src, service string) error {
	dir := b.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		return err
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+os.DevNull, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	for _, args := range [][]string{
		{"init", "-input=false", "-no-color", "-plugin-dir=" + plugins},
		{"apply", "-auto-approve", "-input=false", "-no-color", "-var=service=" + service},
	} {
		cmd := exec.Command(tf, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("terraform %s: %v\n%s", args[0], err, out)
		}
	}
	return nil
}

func gatewayRun(b *testing.B, gw *testenv.Gateway, tok, name string) error {
	a := do(b, gw, call{method: "POST", path: "/v1/module-runs", token: tok, bundle: sbx, env: "sbx",
		body: `{"name":"` + name + `","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"` + name + `"}}`})
	if a.status != http.StatusAccepted {
		return fmt.Errorf("run %s: %d %s", name, a.status, a.body)
	}
	var id string
	if _, after, ok := strings.Cut(string(a.body), `"id":"`); ok {
		id, _, _ = strings.Cut(after, `"`)
	}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		op, err := gw.Gateway.OperationFor(id)
		if err != nil {
			return err
		}
		switch op.State {
		case api.OperationSucceeded:
			return nil
		case api.OperationFailed, api.OperationCancelled:
			return fmt.Errorf("run %s: %s", name, op.Error)
		}
	}
	return fmt.Errorf("run %s not done after 5m", name)
}
