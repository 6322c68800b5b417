package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

const (
	convergeN        = 32
	convergeZone     = "sbx.example.internal"
	convergeKillAt   = 10 // hosts on the grid when the kill comes
	convergeTFBound  = 5 * time.Minute
	convergePollTick = 20 * time.Millisecond
	// convergeGatewayDown outlasts the gateway client's retries (4, backing off to ~2s).
	convergeGatewayDown = 8 * time.Second
	// convergeVaultDown outlasts an attempt's own revocation (revoke_timeout 2s).
	convergeVaultDown = 8 * time.Second
)

// A SIGKILLed `terraform apply` (and its provider plugin) leaves hosts the
// gateway created but Terraform never saved; the next apply must adopt
// them, not fail on "already exists" nor allocate twice.
func TestKilledTerraformApplyConverges(t *testing.T) {
	st := startConvergeStack(t)
	ws := st.workspace(t, "kill")

	t0 := time.Now()
	first := st.applyUntilHosts(t, ws, convergeKillAt)
	hostsAtKill := st.midApply(t, "terraform killed", first, func() error { return syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL) })
	<-first.exited
	killPhase := time.Since(t0)
	t.Logf("terraform SIGKILLed after %.1fs with %d of %d hosts on the grid", killPhase.Seconds(), hostsAtKill, convergeN)

	reapply := st.convergeAndDestroy(t, ws, "kill", killPhase)
	// Proof the re-apply adopted what the killed one made, rather than
	// making it again: the provider says so for each adopted reservation.
	adopted := adoptions(reapply)
	if adopted == 0 {
		t.Fatalf("the re-apply adopted nothing, yet %d hosts existed that the killed apply had not saved", hostsAtKill)
	}
	t.Logf("the re-apply adopted %d reservations the killed apply made", adopted)
}

// The provider plugin alone dies mid-apply (as when it crashed): Terraform
// survives it, saves what it saw finish and fails the rest; the re-apply
// adopts what the gateway made for the calls that died with the plugin.
func TestKilledProviderMidApplyConverges(t *testing.T) {
	st := startConvergeStack(t)
	ws := st.workspace(t, "pkill")

	t0 := time.Now()
	first := st.applyUntilHosts(t, ws, convergeKillAt)
	plugin := childNamed(t, first.cmd.Process.Pid, "terraform-provider-sas")
	hostsAtKill := st.midApply(t, "provider plugin killed", first, func() error { return syscall.Kill(plugin, syscall.SIGKILL) })
	if err := first.wait(); err == nil {
		t.Fatalf("terraform apply succeeded although its provider was killed mid-apply:\n%s", tail(first.output(), 20))
	}
	killPhase := time.Since(t0)
	t.Logf("provider plugin SIGKILLed after %.1fs with %d of %d hosts on the grid; terraform failed as it should", killPhase.Seconds(), hostsAtKill, convergeN)
	reapply := st.convergeAndDestroy(t, ws, "pkill", killPhase)
	t.Logf("the re-apply adopted %d reservations", adoptions(reapply))
}

// adoptions counts the provider's "Adopted Existing IP Reservation"
// warnings in terraform's output, which folds repeats into one warning
// "(and N more similar warnings elsewhere)".
func adoptions(out string) int {
	n := 0
	for _, block := range strings.Split(out, "Warning: ")[1:] {
		if !strings.HasPrefix(block, "Adopted Existing IP Reservation") {
			continue
		}
		n++
		if m := moreSimilar.FindStringSubmatch(block); m != nil {
			more, _ := strconv.Atoi(m[1])
			n += more
		}
	}
	return n
}

var moreSimilar = regexp.MustCompile(`\(and (\d+) more similar warnings? elsewhere\)`)

// childNamed finds the child process of parent whose command is name
// (Linux /proc), failing the test if there is none.
func childNamed(t *testing.T, parent int, name string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so split after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[i+1:])
		comm := s[strings.IndexByte(s, '(')+1 : i]
		if len(fields) > 1 && fields[1] == strconv.Itoa(parent) && strings.HasPrefix(name, comm) {
			return pid
		}
	}
	t.Fatalf("no child process %s of %d", name, parent)
	return 0
}

// A SIGKILLed gateway, restarted on the same address and data dir while
// terraform keeps running, must leave nothing that a second apply cannot
// converge: every host once, every one in state, all of them destroyable.
func TestKilledGatewayMidApplyConverges(t *testing.T) {
	st := startConvergeStack(t)
	ws := st.workspace(t, "gwkill")

	t0 := time.Now()
	first := st.applyUntilHosts(t, ws, convergeKillAt)
	hostsAtKill := st.midApply(t, "gateway killed", first, func() error {
		if err := st.gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		<-st.gw.exited
		return nil
	})
	killedAt := time.Since(t0)
	// Down long enough that the provider's retries give up on requests in
	// flight (they end tainted or failed), as after a real crash and restart.
	time.Sleep(convergeGatewayDown)
	st.gw = st.serve(t)
	t.Logf("gateway SIGKILLed after %.1fs with %d of %d hosts on the grid; restarted after %.1fs",
		killedAt.Seconds(), hostsAtKill, convergeN, time.Since(t0).Seconds())

	// The first apply rides out the restart; whether it succeeds is not the
	// point (operations cut short may fail), only that it ends.
	err := first.wait()
	firstPhase := time.Since(t0)
	if err != nil {
		t.Logf("first apply ended after %.1fs: %v\n%s", firstPhase.Seconds(), exitStatus(err), tfDiagnostics(first.output()))
	} else {
		t.Logf("first apply ended after %.1fs: %v\n%s", firstPhase.Seconds(), exitStatus(err), tail(first.output(), 3))
	}

	st.convergeAndDestroy(t, ws, "gwkill", firstPhase)
}

// Vault stops answering (SIGSTOP) for a while in the middle of an apply:
// the apply may fail, but once Vault is back the re-apply converges, destroy
// leaves the grid empty, and no sub-token of the test is alive in Vault —
// the revocations that failed during the outage were retried by the sweep
// (their TTL, 30s, has not passed when this is checked first).
func TestVaultPausedMidApplyLeavesNoLiveSubToken(t *testing.T) {
	st := startConvergeStack(t)
	ws := st.workspace(t, "vpause")

	t0 := time.Now()
	first := st.applyUntilHosts(t, ws, 8)
	vault := env.VaultProcess()
	// Every test of the package shares this Vault: whatever happens, it goes on.
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = vault.Signal(syscall.SIGCONT)
		}
	})
	hostsAtPause := st.midApply(t, "Vault stopped", first, func() error { return vault.Signal(syscall.SIGSTOP) })
	time.Sleep(convergeVaultDown) // the outage
	if err := vault.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	paused = false
	resumedAt := time.Now()
	failedRevocations := st.auditCount(t, "sub-token revocation failed")
	if failedRevocations == 0 {
		t.Fatalf("no sub-token revocation failed while Vault was stopped: the outage did not hit operations in flight")
	}
	err := first.wait()
	t.Logf("Vault stopped for %s with %d of %d hosts on the grid; %d revocations failed; first apply: %v",
		convergeVaultDown, hostsAtPause, convergeN, failedRevocations, exitStatus(err))

	// Before any of them could have expired: every sub-token is gone.
	deadline := resumedAt.Add(20 * time.Second)
	for len(st.liveSubTokens(t)) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if live := st.liveSubTokens(t); len(live) > 0 {
		t.Fatalf("%d sub-tokens still alive in Vault %s after it came back: %v", len(live), time.Since(resumedAt).Round(time.Second), live)
	}
	if swept := st.auditCount(t, "sub-token revoked by the sweep"); swept < failedRevocations {
		t.Fatalf("%d revocations failed, the sweep audited %d revocations", failedRevocations, swept)
	}
	st.convergeAndDestroy(t, ws, "vpause", time.Since(t0))
	if live := st.liveSubTokens(t); len(live) > 0 {
		t.Fatalf("sub-tokens alive after the destroy: %v", live)
	}
}

// liveSubTokens lists the live sub-tokens minted for this test's caller.
func (st *convergeStack) liveSubTokens(t *testing.T) []string {
	t.Helper()
	return env.LiveSubTokens(t, func(meta map[string]any) bool { return meta["owner"] == st.owner })
}

// auditCount counts the gateway's audit records whose outcome starts with
// prefix.
func (st *convergeStack) auditCount(t *testing.T, prefix string) int {
	t.Helper()
	return st.count(t, `SELECT count(*) FROM audit_records WHERE outcome LIKE $1`, prefix+"%")
}

// count runs a count query on the gateway's SQLite file, beside the running gateway.
func (st *convergeStack) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(st.data, store.SQLiteFile)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// convergeStack is a simulator, a real `sas-server serve` process and a
// caller token, all for one test.
type convergeStack struct {
	sim         *siminfoblox.Server
	exe, cfg    string
	environ     []string
	addr        string
	gw          *gatewayProcess
	token       string
	owner       string // the caller's entity name: the owner on every sub-token of this test
	data        string
	terraform   string
	providerDir string
}

func startConvergeStack(t *testing.T) *convergeStack {
	t.Helper()
	dir := t.TempDir()
	st := &convergeStack{exe: filepath.Join(dir, "sas-server"), providerDir: filepath.Join(dir, "provider")}
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	st.terraform = os.Getenv("TF_ACC_TERRAFORM_PATH")
	if st.terraform == "" {
		if st.terraform, err = devvault.FindRepoTool("terraform"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(st.terraform); err != nil {
		t.Fatalf("terraform binary (TF_ACC_TERRAFORM_PATH or ./bin/terraform): %v", err)
	}
	builds := []*exec.Cmd{
		exec.Command("go", "build", "-o", st.exe, "."),
		exec.Command("go", "build", "-o", filepath.Join(st.providerDir, "terraform-provider-sas"), "."),
	}
	builds[1].Dir = root
	for _, b := range builds {
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("%s (in %s): %v\n%s", strings.Join(b.Args, " "), b.Dir, err, out)
		}
	}

	// A slow grid keeps creates in flight when the kill comes.
	st.sim = env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 150 * time.Millisecond })
	// rescue_after: an attempt cut short by a gateway kill is retried after
	// this, so keep it close to operation_timeout to bound the test.
	st.data = filepath.Join(dir, "data")
	st.cfg, st.environ, st.addr = serveSetup(t, dir, st.data, `orchestrator {
  workers_per_kind  = 8
  operation_timeout = "30s"
  rescue_after      = "35s"
  revoke_timeout    = "2s"
  sweep_interval    = "1s"
}
`)
	st.gw = st.serve(t)
	st.owner = "converge-" + strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	st.token = env.Caller(t, vaultsetup.CallerSpec{Entity: st.owner, Bundles: []string{"fedramp_sbx_default"}})
	return st
}

func (st *convergeStack) serve(t *testing.T) *gatewayProcess {
	t.Helper()
	return startServeWithConfig(t, st.exe, st.cfg, st.environ, st.addr)
}

// applyUntilHosts starts `terraform apply` and returns once the grid holds
// at least hosts of its reservations.
func (st *convergeStack) applyUntilHosts(t *testing.T, ws *tfWorkspace, hosts int) *tfProcess {
	t.Helper()
	first := ws.start(t, "apply", "-auto-approve", "-input=false", "-no-color")
	st.waitForHosts(t, hosts, first)
	return first
}

// midApply does what (a kill, a pause) and proves it landed mid-apply:
// some but not all hosts on the grid. It returns how many there were.
func (st *convergeStack) midApply(t *testing.T, what string, tf *tfProcess, do func() error) int {
	t.Helper()
	if err := do(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	hosts := len(st.sim.Hosts())
	if hosts <= 0 || hosts >= convergeN {
		t.Fatalf("%s with %d of %d hosts on the grid: it did not land mid-apply\n%s", what, hosts, convergeN, tail(tf.output(), 40))
	}
	return hosts
}

// waitForHosts polls the grid until it holds at least want hosts; it
// fails the test if terraform ends first.
func (st *convergeStack) waitForHosts(t *testing.T, want int, tf *tfProcess) {
	t.Helper()
	deadline := time.After(convergeTFBound)
	tick := time.NewTicker(convergePollTick)
	defer tick.Stop()
	for {
		if len(st.sim.Hosts()) >= want {
			return
		}
		select {
		case <-tf.exited:
			t.Fatalf("terraform ended (%v) before the grid held %d hosts (holds %d)\n%s", exitStatus(tf.err), want, len(st.sim.Hosts()), tfDiagnostics(tf.output()))
		case <-deadline:
			t.Fatalf("grid holds %d hosts after %s, waiting for %d\n%s", len(st.sim.Hosts()), convergeTFBound, want, tail(tf.output(), 40))
		case <-tick.C:
		}
	}
}

// convergeAndDestroy re-applies after a kill and checks the result: N
// hosts named prefix-000…, each once, each its own address, all N in
// state; then destroys and checks the grid is empty.
// It returns the re-apply's output.
func (st *convergeStack) convergeAndDestroy(t *testing.T, ws *tfWorkspace, prefix string, firstPhase time.Duration) string {
	t.Helper()
	t1 := time.Now()
	out, err := ws.run(t, "apply", "-auto-approve", "-input=false", "-no-color")
	if err != nil {
		t.Fatalf("re-apply after the kill: %v (grid holds %d hosts)\n%s", exitStatus(err), len(st.sim.Hosts()), tfDiagnostics(out))
	}
	reapply, reapplyOut := time.Since(t1), out

	names := map[string]int{}
	addrs := map[string][]string{}
	hosts := st.sim.Hosts()
	for _, h := range hosts {
		names[h.Name]++
		for _, ip := range h.IPv4Addrs {
			addrs[ip] = append(addrs[ip], h.Name)
		}
	}
	if len(hosts) != convergeN {
		t.Errorf("grid holds %d hosts after the re-apply, want %d", len(hosts), convergeN)
	}
	for i := 0; i < convergeN; i++ {
		name := fmt.Sprintf("%s-%03d.%s", prefix, i, convergeZone)
		if names[name] != 1 {
			t.Errorf("host %s exists %d times on the grid, want once", name, names[name])
		}
		delete(names, name)
	}
	for name := range names {
		t.Errorf("unexpected host %s on the grid", name)
	}
	for ip, holders := range addrs {
		if len(holders) != 1 {
			t.Errorf("address %s allocated to %d hosts: %v", ip, len(holders), holders)
		}
	}

	out, err = ws.run(t, "state", "list")
	if err != nil {
		t.Fatalf("terraform state list: %v\n%s", exitStatus(err), tfDiagnostics(out))
	}
	var inState []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			inState = append(inState, l)
		}
	}
	if len(inState) != convergeN {
		t.Errorf("terraform state lists %d resources after the re-apply, want %d:\n%s", len(inState), convergeN, out)
	}
	if t.Failed() {
		t.FailNow()
	}

	t2 := time.Now()
	out, err = ws.run(t, "destroy", "-auto-approve", "-input=false", "-no-color")
	if err != nil {
		t.Fatalf("destroy after convergence: %v (grid holds %d hosts)\n%s", exitStatus(err), len(st.sim.Hosts()), tfDiagnostics(out))
	}
	destroy := time.Since(t2)
	if left := st.sim.Hosts(); len(left) != 0 {
		t.Fatalf("grid holds %d hosts after destroy, want 0: first %s", len(left), left[0].Name)
	}
	t.Logf("first phase %.1fs, re-apply %.1fs, destroy %.1fs", firstPhase.Seconds(), reapply.Seconds(), destroy.Seconds())
	return reapplyOut
}

// tfWorkspace is a Terraform working directory pointed at the test's
// gateway and at the freshly built provider (dev_overrides: no init).
type tfWorkspace struct {
	bin, dir string
	environ  []string
}

func (st *convergeStack) workspace(t *testing.T, prefix string) *tfWorkspace {
	t.Helper()
	return st.workspaceWith(t, fmt.Sprintf(`resource "sas_ip_reservation" "r" {
  count    = %d
  network  = count.index %% 2 == 0 ? "sbx-app" : "sbx-data"
  hostname = format("%s-%%03d", count.index)
  dns_zone = %q
}
`, convergeN, prefix, convergeZone))
}

// workspaceWith is a workspace whose configuration is the provider and resources.
func (st *convergeStack) workspaceWith(t *testing.T, resources string) *tfWorkspace {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "terraformrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides { "registry.terraform.io/sas-platform/sas" = %q }
  direct {}
}
`, st.providerDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "tf")
	if err := os.Mkdir(tf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tf, "main.tf"), []byte(`terraform {
  required_providers {
    sas = { source = "sas-platform/sas" }
  }
}
provider "sas" {}
`+resources), 0o600); err != nil {
		t.Fatal(err)
	}
	// Drop any ambient Terraform/Vault/SAS settings so only ours apply.
	var environ []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "TF_") && !strings.HasPrefix(k, "VAULT_") && !strings.HasPrefix(k, "SAS_") {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"SAS_ADDR=http://"+st.addr, "VAULT_TOKEN="+st.token, "SAS_POLICY_BUNDLE=fedramp_sbx_default", "SAS_ENVIRONMENT=sbx")
	return &tfWorkspace{bin: st.terraform, dir: tf, environ: environ}
}

// tfProcess is one terraform command in its own process group, so a kill
// takes the provider plugin down with it.
type tfProcess struct {
	cmd    *exec.Cmd
	out    lockedBuffer  // stdout and stderr, read while terraform writes
	exited chan struct{} // closed when cmd.Wait returns; err is then set
	err    error
}

func (p *tfProcess) output() string { return p.out.String() }

func (p *tfProcess) wait() error {
	<-p.exited
	return p.err
}

// start runs terraform args in the background, bounded by convergeTFBound.
func (ws *tfWorkspace) start(t *testing.T, args ...string) *tfProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), convergeTFBound)
	p := &tfProcess{exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, ws.bin, args...)
	p.cmd.Dir = ws.dir
	p.cmd.Env = ws.environ
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start terraform %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		if ctx.Err() != nil {
			p.err = fmt.Errorf("terraform %s still running after %s, killed: %w", args[0], convergeTFBound, p.err)
		}
		cancel()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited: // reaped: its pid may already belong to someone else
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	})
	return p
}

// run runs terraform args to completion and returns its combined output.
func (ws *tfWorkspace) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	p := ws.start(t, args...)
	err := p.wait()
	return p.output(), err
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee) && ee.Exited():
		return fmt.Sprintf("exit %d", ee.ExitCode())
	default:
		return err.Error()
	}
}

// tfDiagnostics is what a failed terraform run said that matters: a
// summary of its errors, then its diagnostics (the plan and the progress
// lines before them run to hundreds of lines and say nothing), or, if it
// printed no error, the end of its output.
func tfDiagnostics(out string) string {
	lines := strings.Split(out, "\n")
	first, errs, with := -1, 0, []string(nil)
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Error: ") {
			if first < 0 {
				first = i
			}
			errs++
		}
		if r, ok := strings.CutPrefix(l, "with "); ok && first >= 0 {
			with = append(with, strings.TrimSuffix(r, ","))
		}
	}
	if first < 0 {
		return tail(out, 60)
	}
	return fmt.Sprintf("%d errors (%s); %d lines of output before them elided\n%s",
		errs, strings.Join(with, ", "), first, strings.Join(lines[first:], "\n"))
}

// tail is the last n lines of s: enough of a long terraform log to see how it ended.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = slices.Concat([]string{fmt.Sprintf("… (%d lines before)", len(lines)-n)}, lines[len(lines)-n:])
	}
	return strings.Join(lines, "\n")
}
