package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
)

// `sas-server dev` as a user runs it: the env file has what the README
// promises, the token in it is an ephemeral caller bound to the demo
// bundle, and SIGTERM stops the Vault it started.
func TestDevStack(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sas-server")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build sas-server: %v\n%s", err, out)
	}
	vaultBin, err := devvault.FindRepoTool("vault-dev")
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "env")
	cmd := exec.Command(exe, "dev", "-listen", "127.0.0.1:0", "-data-dir", filepath.Join(dir, "data"),
		"-env-file", envFile, "-vault-dev-bin", vaultBin, "-log-level", "warn")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(envFile); err == nil && st.Size() > 0 {
			if st.Mode().Perm() != 0o600 {
				t.Errorf("env file mode %v; it holds tokens, want 0600", st.Mode().Perm())
			}
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("sas-server dev exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no env file after 60s\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	env := readEnvFile(t, envFile)
	for _, k := range []string{"SAS_ADDR", "VAULT_ADDR", "VAULT_TOKEN", "SAS_POLICY_BUNDLE", "SAS_ENVIRONMENT", "SAS_DEV_VAULT_ROOT_TOKEN", "SAS_DATA_DIR"} {
		if env[k] == "" {
			t.Errorf("env file lacks %s", k)
		}
	}
	if env["SAS_POLICY_BUNDLE"] != "fedramp_sbx_default" || env["SAS_ENVIRONMENT"] != "sbx" {
		t.Errorf("bundle/environment = %q/%q", env["SAS_POLICY_BUNDLE"], env["SAS_ENVIRONMENT"])
	}

	req, _ := http.NewRequest(http.MethodGet, env["SAS_ADDR"]+"/v1/identity", nil)
	req.Header.Set(api.HeaderVaultToken, env["VAULT_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var id api.Identity
	_ = json.NewDecoder(resp.Body).Decode(&id)
	resp.Body.Close()
	if resp.StatusCode != 200 || id.Owner != "demo-user" || strings.Join(id.Bundles, ",") != "fedramp_sbx_default" {
		t.Fatalf("identity with the env file's token: %d %+v", resp.StatusCode, id)
	}
	if id.Token.TTLSeconds <= 0 || id.Token.TTLSeconds > 8*3600 {
		t.Errorf("demo token TTL %ds is not ephemeral", id.Token.TTLSeconds)
	}
	if strings.Contains(stderr.String(), env["VAULT_TOKEN"]) || strings.Contains(stderr.String(), env["SAS_DEV_VAULT_ROOT_TOKEN"]) {
		t.Error("sas-server dev logged a token")
	}

	var info struct{ PID int }
	b, err := os.ReadFile(filepath.Join(env["SAS_DATA_DIR"], "vault", "vault-dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(b, &info)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
	if info.PID == 0 {
		t.Fatal("no vault-dev pid recorded")
	}
	if err := syscall.Kill(info.PID, 0); err == nil {
		t.Errorf("vault-dev (pid %d) still running after sas-server dev stopped", info.PID)
	}
	if _, err := http.Get(env["VAULT_ADDR"] + "/v1/sys/health"); err == nil {
		t.Error("Vault still answers after sas-server dev stopped")
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("env file line %q is not KEY=VALUE", sc.Text())
		}
		env[k] = v
	}
	return env
}
