package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// gatewayProcess is `sas-server serve` run as a real process.
type gatewayProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
	exited chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func apiCall(t *testing.T, method, url, token, body, key string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set(api.HeaderVaultToken, token)
	req.Header.Set(api.HeaderPolicyBundle, "fedramp_sbx_default")
	req.Header.Set(api.HeaderEnvironment, "sbx")
	if key != "" {
		req.Header.Set(api.HeaderIdempotencyKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// SIGKILL the gateway while operations are in flight, restart it, and
// every operation still ends well: terminal, no duplicate downstream
// object, no missing audit record, no live sub-token.
func TestCrashWhileOperationsInFlight(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sas-server")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// A slow grid keeps operations in flight when the kill comes.
	sim := env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 150 * time.Millisecond })
	data := filepath.Join(dir, "data")
	cfgFile, environ, addr := serveSetup(t, dir, data, `orchestrator {
  workers_per_kind  = 4
  operation_timeout = "5s"
  rescue_after      = "6s"
}
`)
	serve := func() *gatewayProcess { return startServeWithConfig(t, exe, cfgFile, environ, addr) }
	gw := serve()
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "crash-test", Bundles: []string{"fedramp_sbx_default"}})
	base := "http://" + addr

	const n = 24
	var ops []string
	for i := 0; i < n; i++ {
		status, body := apiCall(t, "POST", base+"/v1/ip-reservations", tok,
			fmt.Sprintf(`{"network":"sbx-data","hostname":"crash-%02d","dns_zone":"sbx.example.internal"}`, i), fmt.Sprintf("crash-%d", i))
		var op api.Operation
		if err := json.Unmarshal(body, &op); err != nil || status != 202 {
			t.Fatalf("create %d: %d %s", i, status, body)
		}
		ops = append(ops, op.ID)
	}
	// Kill once some hosts exist and others do not: mid-flight, proven below.
	for wait := time.Now().Add(60 * time.Second); len(sim.Hosts()) < n/4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatalf("only %d hosts after 60s\n%s", len(sim.Hosts()), gw.stderr)
		}
	}
	if err := gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-gw.exited
	inFlight := 0
	hostsAtKill := len(sim.Hosts())
	if hostsAtKill <= 0 || hostsAtKill >= n {
		t.Fatalf("the kill came with %d of %d hosts made: not mid-flight, the test proves nothing", hostsAtKill, n)
	}
	t.Logf("killed with %d of %d hosts created", hostsAtKill, n)

	// Restart on the same data dir; retry every create with its key, as a client would.
	gw = serve()
	for i := 0; i < n; i++ {
		status, body := apiCall(t, "POST", base+"/v1/ip-reservations", tok,
			fmt.Sprintf(`{"network":"sbx-data","hostname":"crash-%02d","dns_zone":"sbx.example.internal"}`, i), fmt.Sprintf("crash-%d", i))
		var op api.Operation
		if err := json.Unmarshal(body, &op); err != nil || status != 202 || op.ID != ops[i] {
			t.Fatalf("retried create %d after restart: %d %s (want the original operation %s)", i, status, body, ops[i])
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range ops {
		for {
			status, body := apiCall(t, "GET", base+"/v1/operations/"+id, tok, "", "")
			var op api.Operation
			_ = json.Unmarshal(body, &op)
			if status == 200 && op.State == api.OperationSucceeded {
				break
			}
			if status == 200 && (op.State == api.OperationFailed || op.State == api.OperationCancelled) {
				t.Fatalf("operation %s ended %s: %s", id, op.State, op.Error)
			}
			if time.Now().After(deadline) {
				t.Fatalf("operation %s still %s 90s after restart\n%s", id, op.State, gw.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		inFlight++
	}

	// No duplicate downstream object.
	names := map[string]int{}
	ips := map[string]int{}
	for _, h := range sim.Hosts() {
		names[h.Name]++
		for _, ip := range h.IPv4Addrs {
			ips[ip]++
		}
	}
	if len(names) != n {
		t.Fatalf("grid holds %d distinct hosts, want %d", len(names), n)
	}
	for k, c := range names {
		if c != 1 {
			t.Errorf("host %s exists %d times", k, c)
		}
	}
	for k, c := range ips {
		if c != 1 {
			t.Errorf("address %s allocated %d times", k, c)
		}
	}

	// Stop cleanly; the audit chain verifies and holds every operation's story.
	_ = gw.cmd.Process.Signal(syscall.SIGTERM)
	<-gw.exited
	var out bytes.Buffer
	if err := runAudit(context.Background(), []string{"verify", "--data-dir", data}, &out, &out); err != nil {
		t.Fatalf("audit verify after the crash: %v\n%s", err, out.String())
	}
	exp := filepath.Join(dir, "audit.jsonl")
	f, _ := os.Create(exp)
	if err := runAudit(context.Background(), []string{"export", "--data-dir", data}, f, os.Stderr); err != nil {
		t.Fatal(err)
	}
	f.Close()
	raw, _ := os.ReadFile(exp)
	accepted, succeeded, minted, revoked := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r struct {
			TargetID string `json:"target_id"`
			Accessor string `json:"token_accessor_hmac"`
			Outcome  string `json:"outcome"`
			Status   int    `json:"status_code"`
			Request  string `json:"request_id"`
		}
		_ = json.Unmarshal(line, &r)
		switch {
		case r.Outcome == "accepted":
			accepted[r.Request] = true
		case r.Outcome == "operation succeeded":
			succeeded[r.TargetID] = true
		case strings.HasPrefix(r.Outcome, "sub-token minted"):
			minted[r.Accessor] = true
		case strings.HasPrefix(r.Outcome, "sub-token revoked"), strings.HasPrefix(r.Outcome, "sub-token of an abandoned"):
			// A kill between Vault's revoke and clearing the record makes
			// start-up revoke (idempotently) and record it once more.
			revoked[r.Accessor] = true
		}
	}
	for _, id := range ops {
		if !succeeded[id] {
			t.Errorf("no 'operation succeeded' audit record for %s", id)
		}
	}
	if len(accepted) != n {
		t.Errorf("%d accepted requests audited, want %d", len(accepted), n)
	}
	for acc := range minted {
		if !revoked[acc] {
			t.Errorf("sub-token (accessor HMAC %s) minted but its revocation never audited", acc)
		}
	}

	// No live sub-token in Vault: every token minted for this caller is gone.
	if live := env.LiveSubTokens(t, func(meta map[string]any) bool { return meta["owner"] == "crash-test" }); len(live) > 0 {
		t.Errorf("sub-tokens of operations %v still alive", live)
	}
	t.Logf("%d operations completed after the crash; %d sub-tokens minted, each revoked", inFlight, len(minted))
}

// serveSetup prepares what `sas-server serve` needs to run against this
// package's Vault: audit keys in data, the gateway's AppRole secret in a
// file, a config file with extra HCL, a free address and the environment.
func serveSetup(t *testing.T, dir, data, hcl string) (cfgFile string, environ []string, addr string) {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.EnsureKeys(audit.DefaultKeyPaths(data)); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secretFile, []byte(env.GatewayLogin.SecretID), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile = filepath.Join(dir, "sas-server.hcl")
	if err := os.WriteFile(cfgFile, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	addr = freeAddr(t)
	environ = []string{"SAS_LISTEN_ADDR=" + addr, "SAS_VAULT_ADDR=" + env.VaultAddr, "SAS_VAULT_ROLE_ID=" + env.GatewayLogin.RoleID,
		"SAS_VAULT_SECRET_ID_FILE=" + secretFile, "SAS_DATA_DIR=" + data, "SAS_BUNDLE_DIR=" + filepath.Join(root, "examples", "bundles"),
		"SAS_LOG_LEVEL=warn"}
	return cfgFile, environ, addr
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startServeWithConfig(t *testing.T, exe, cfgFile string, environ []string, addr string) *gatewayProcess {
	t.Helper()
	p := &gatewayProcess{cmd: exec.Command(exe, "serve", "-config", cfgFile), addr: addr, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), environ...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/v1/sys/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.exited:
			t.Fatalf("sas-server serve exited: %v\n%s", err, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("sas-server serve not healthy after 60s\n%s", p.stderr)
	return nil
}
