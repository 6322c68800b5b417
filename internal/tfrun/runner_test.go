package tfrun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testRunner(t *testing.T) (*Runner, string) {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(root, "bin", "terraform")
	plugins := filepath.Join(root, "bin", "plugins")
	for _, p := range []string{tf, plugins} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run `make tools`", err)
		}
	}
	return &Runner{Terraform: tf, PluginDir: plugins, WorkRoot: filepath.Join(t.TempDir(), "runs"), Interrupt: 20 * time.Second}, root
}

// A catalog module, offline, end to end: plan (judged from its JSON),
// apply of that saved plan, outputs (sensitive ones marked), a second plan
// with nothing to do, destroy. The secret input and the credentials in the
// environment are in no file and no log line; the working directory goes.
func TestRunAppliesAndDestroysOffline(t *testing.T) {
	r, root := testRunner(t)
	state := filepath.Join(t.TempDir(), "state", "mr-1.tfstate")
	const secret, token = "correct-horse-rotation-9931", "sub-token-fixture-that-must-never-leak-8841"
	log := &syncBuf{}
	ctx := context.Background()
	spec := Spec{ID: "op-1", Source: filepath.Join(root, "examples", "modules", "platform", "secret-rotation", "1.0.0"), StateFile: state,
		Inputs: map[string]any{"service": "billing", "rotation_days": 14}, SecretInputs: map[string]string{"initial_secret": secret},
		Env: map[string]string{"VAULT_TOKEN": token, "VAULT_ADDR": "http://127.0.0.1:1"}, Log: log}
	run, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := run.Plan(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, rc := range plan.JSON.ResourceChanges {
		types[rc.Type] = true
	}
	if plan.Summary != (Summary{Add: 2}) || !types["time_rotating"] || !types["terraform_data"] {
		t.Fatalf("plan %+v, types %v", plan.Summary, types)
	}
	if err := run.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	outs, err := run.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The module outputs nothing derived from its secret (a bare hash could
	// be brute forced); the gateway's executor reports a keyed fingerprint.
	// testdata/secret-echo proves the secret reaches Terraform.
	var rotatedAt string
	_ = json.Unmarshal(outs["rotated_at"].Value, &rotatedAt)
	if rotatedAt == "" || outs["rotated_at"].Sensitive || outs["rotates_at"].Sensitive {
		t.Fatalf("outputs %+v", outs)
	}
	sum := sha256.Sum256([]byte(secret))
	for name, o := range outs {
		if v := string(o.Value); strings.Contains(v, secret) || strings.Contains(v, hex.EncodeToString(sum[:])) {
			t.Errorf("output %s is derived from the secret input: %s", name, v)
		}
	}
	again, err := run.Plan(ctx, false)
	if err != nil || again.Summary != (Summary{}) {
		t.Fatalf("second plan: %+v %v", again, err)
	}
	gone, err := run.Plan(ctx, true)
	if err != nil || gone.Summary != (Summary{Destroy: 2}) {
		t.Fatalf("destroy plan: %+v %v", gone, err)
	}
	if err := run.Apply(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := run.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(run.Dir); !os.IsNotExist(err) {
		t.Fatalf("working directory left behind: %v", err)
	}
	st, err := os.ReadFile(state)
	if err != nil || !bytes.Contains(st, []byte(`"resources": []`)) {
		t.Fatalf("state after destroy: %v\n%s", err, st)
	}
	if log.String() == "" {
		t.Fatal("no log")
	}
	for what, s := range map[string]string{"secret input": secret, "secret input's bare hash": hex.EncodeToString(sum[:]), "sub-token": token} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the %s is in the run's log", what)
		}
		_ = filepath.Walk(filepath.Dir(state), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(s)) {
					t.Errorf("the %s is in %s", what, p)
				}
			}
			return nil
		})
	}
}

// A run past its deadline is interrupted, not torn down: Terraform stops,
// its lock is released, its state is readable, and the next plan runs.
func TestRunPastItsDeadlineReleasesItsLock(t *testing.T) {
	r, _ := testRunner(t)
	state := filepath.Join(t.TempDir(), "slow.tfstate")
	ctx := context.Background()
	run, err := r.Start(ctx, Spec{ID: "op-slow", Source: "testdata/slow", StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	plan, err := run.Plan(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	t0 := time.Now()
	err = run.Apply(short, plan)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || time.Since(t0) > 50*time.Second {
		t.Fatalf("apply past its deadline: %v after %s", err, time.Since(t0))
	}
	if _, err := os.Stat(state + ".lock.info"); !os.IsNotExist(err) {
		t.Fatalf("lock left behind: %v", err)
	}
	if _, err := run.Plan(ctx, false); err != nil {
		t.Fatalf("plan after the interrupt: %v", err)
	}
}
