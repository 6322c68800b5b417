package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// A long-running downstream system, simulated: a job takes jobLength of
// simulated time, and simulated time runs simSpeed× faster than the wall
// clock. Its state lives in a file, so it outlives the processes that drive it.
const (
	longKind  = "long_test"
	jobLength = 5 * time.Minute
	simSpeed  = 100 // 5 simulated minutes = 3 real seconds
)

type downstream struct {
	path string
	mu   sync.Mutex
}

type downstreamState struct {
	Started     map[string]int64 `json:"started"` // job id -> unix nanos
	Starts      int              `json:"starts"`
	Compensated int              `json:"compensated"`
	InStep      bool             `json:"in_step"` // a step is checking right now
}

func (d *downstream) update(change func(*downstreamState)) downstreamState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.read()
	change(&s)
	b, _ := json.Marshal(s)
	tmp := d.path + ".tmp"
	_ = os.WriteFile(tmp, b, 0o600)
	_ = os.Rename(tmp, d.path)
	return s
}

func (d *downstream) read() downstreamState {
	s := downstreamState{Started: map[string]int64{}}
	if b, err := os.ReadFile(d.path); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// longExecutor drives the simulated system the way a Calm launch is driven:
// start the job, checkpoint its id before anything waits, then check on it.
type longExecutor struct {
	down      *downstream
	stepPause time.Duration // how long a check step takes (a slow status call)
}

var _ executor.Executor = (*longExecutor)(nil)

func (e *longExecutor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	if _, err := j.Credentials(ctx, "infoblox"); err != nil { // the step's own sub-token works
		return executor.Result{}, err
	}
	var cp struct{ Job string }
	if j.Checkpoint != nil {
		if err := json.Unmarshal(j.Checkpoint, &cp); err != nil {
			return executor.Result{}, executor.Permanent(err)
		}
	}
	if cp.Job == "" {
		id := "job-" + j.Operation.ID
		e.down.update(func(s *downstreamState) { s.Started[id] = time.Now().UnixNano(); s.Starts++ })
		if err := j.Save(ctx, map[string]string{"job": id}); err != nil {
			return executor.Result{}, err
		}
		return executor.Result{}, executor.Wait(100*time.Millisecond, nil, "job started")
	}
	e.down.update(func(s *downstreamState) { s.InStep = true })
	defer e.down.update(func(s *downstreamState) { s.InStep = false })
	select {
	case <-time.After(e.stepPause):
	case <-ctx.Done():
		return executor.Result{}, ctx.Err()
	}
	started, ok := e.down.read().Started[cp.Job]
	if !ok {
		return executor.Result{}, executor.Permanent(fmt.Errorf("downstream has no job %s", cp.Job))
	}
	simulated := time.Duration(time.Now().UnixNano()-started) * simSpeed
	if simulated < jobLength {
		return executor.Result{}, executor.Wait(150*time.Millisecond, nil, fmt.Sprintf("%s of %s done", simulated.Truncate(time.Second), jobLength))
	}
	return executor.Result{ResourceID: "long-" + j.Operation.ID, Attributes: map[string]any{"job": cp.Job}}, nil
}

func (e *longExecutor) Compensate(ctx context.Context, j executor.Job) error {
	e.down.update(func(s *downstreamState) { s.Compensated++ })
	return nil
}

func (e *longExecutor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	return j.Resource.Attributes, nil, false, nil
}

// The child process: an orchestrator for longKind on the parent's store,
// run until it is killed. TestMain starts it instead of the tests.
func runResumeChild() {
	ctx := context.Background()
	dir := os.Getenv("SAS_RESUME_CHILD_DIR")
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DataDir: dir})
	must(err)
	opts, err := audit.LoadOptions(audit.DefaultKeyPaths(dir))
	must(err)
	chain, err := audit.New(ctx, st, opts)
	must(err)
	sess, err := vault.Login(ctx, os.Getenv("SAS_RESUME_VAULT_ADDR"),
		vault.AppRoleLogin{RoleID: os.Getenv("SAS_RESUME_ROLE_ID"), SecretID: os.Getenv("SAS_RESUME_SECRET_ID")}, nil)
	must(err)
	pause, _ := time.ParseDuration(os.Getenv("SAS_RESUME_STEP_PAUSE"))
	o, err := orchestrator.New(ctx, orchestrator.Config{Store: st, Book: operations.NewBook(st), Vault: sess, Audit: chain,
		Executors:   map[string]executor.Executor{longKind: &longExecutor{down: &downstream{path: filepath.Join(dir, "downstream.json")}, stepPause: pause}},
		Settings:    map[string]api.Settings{longKind: {Workers: 2, StepTimeout: 2500 * time.Millisecond, Deadline: 10 * time.Minute, MaxAttempts: 5}},
		RescueAfter: 3 * time.Second, PollInterval: 50 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "resume-child", Level: hclog.Warn, Output: os.Stderr})})
	must(err)
	must(o.Start(ctx))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig // the test kills with SIGKILL; SIGTERM only at cleanup
	os.Exit(0)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "resume child:", err)
		os.Exit(3)
	}
}

type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func startChild(t *testing.T, dir string, stepPause time.Duration) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SAS_RESUME_CHILD=1", "SAS_RESUME_CHILD_DIR="+dir, "SAS_RESUME_VAULT_ADDR="+env.VaultAddr,
		"SAS_RESUME_ROLE_ID="+env.GatewayLogin.RoleID, "SAS_RESUME_SECRET_ID="+env.GatewayLogin.SecretID,
		"SAS_RESUME_STEP_PAUSE="+stepPause.String())
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child stderr:\n%s", c.stderr)
		}
	})
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, debug ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var info []string
			for _, f := range debug {
				info = append(info, f())
			}
			t.Fatalf("not %s after %s %v", what, d, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A long-running operation survives its process being SIGKILLed twice —
// once while it waits on the downstream system, once in the middle of a
// step — and finishes in the next process from its checkpoint: the
// downstream job is started exactly once, waiting never counted as a
// failed attempt, and no sub-token is left alive.
func TestLongOperationResumesAcrossKills(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := audit.EnsureKeys(audit.DefaultKeyPaths(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "sbx/infoblox", map[string]any{"username": "u", "password": "p", "url": "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	book := operations.NewBook(st)
	op, _, err := book.Create(ctx, operations.New{Kind: longKind, Action: api.ActionCreate, OwnerEntityID: "e1", Owner: "alice",
		Bundle: "fedramp_sbx_default", Environment: "sbx", RequestID: "req-long", DecisionID: "d-long", IdempotencyKey: "long", Request: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	down := &downstream{path: filepath.Join(dir, "downstream.json")}
	load := func() operations.Work {
		w, err := book.Load(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	// 1: killed while waiting — the checkpoint is durable and the step ended "in progress".
	first := startChild(t, dir, 0)
	waitFor(t, 30*time.Second, "waiting on a checkpointed job", func() bool {
		w := load()
		return w.Checkpoint != nil && w.Waiting && w.State == api.OperationRunning
	})
	first.kill(t)
	if w := load(); operations.Terminal(w.State) || down.read().Starts != 1 {
		t.Fatalf("at the first kill: state %s, %d downstream starts\n%s", w.State, down.read().Starts, first.stderr)
	}

	// 2: killed in the middle of a (slow) check step.
	second := startChild(t, dir, 1500*time.Millisecond)
	// (River's rescuer, every 30s, frees a step a kill left running.)
	jobs := func() string {
		rows, err := st.DB.Query(`SELECT state, attempt, max_attempts, scheduled_at, COALESCE(errors, '[]') FROM river_job`)
		if err != nil {
			return err.Error()
		}
		defer rows.Close()
		var out string
		for rows.Next() {
			var state, sched, errs string
			var att, max int
			_ = rows.Scan(&state, &att, &max, &sched, &errs)
			out += fmt.Sprintf("[%s %d/%d %s %.300s]", state, att, max, sched, errs)
		}
		var leader, exp string
		_ = st.DB.QueryRow(`SELECT leader_id, expires_at FROM river_leader`).Scan(&leader, &exp)
		out += fmt.Sprintf(" leader %s until %s (now %s)", leader, exp, time.Now().UTC().Format(time.RFC3339))
		w := load()
		return out + fmt.Sprintf(" op %s attempts %d waiting %v progress %q error %q", w.State, w.Attempts, w.Waiting, w.Progress, w.Error)
	}
	waitFor(t, 75*time.Second, "in a check step", func() bool { return down.read().InStep }, jobs)
	second.kill(t)
	if w := load(); operations.Terminal(w.State) {
		t.Fatalf("finished before the second kill: %+v\n%s", w.Operation, second.stderr)
	}

	// 3: the next process finishes it (rescuing the killed step after 3s).
	third := startChild(t, dir, 100*time.Millisecond)
	waitFor(t, 75*time.Second, "finished", func() bool { return operations.Terminal(load().State) })
	w := load()
	if w.State != api.OperationSucceeded || w.Result["job"] != "job-"+op.ID {
		t.Fatalf("operation %+v\n%s", w.Operation, third.stderr)
	}
	if s := down.read(); s.Starts != 1 || s.Compensated != 0 {
		t.Fatalf("downstream: %d starts, %d compensations; want the one job, never repeated", s.Starts, s.Compensated)
	}
	// Waits are not attempts: the first attempt, plus the step the kill cut short.
	if w.Attempts > 2 {
		t.Fatalf("%d attempts for one start and many waits", w.Attempts)
	}
	if live, err := book.LiveSubTokens(ctx); err != nil || len(live) != 0 {
		t.Fatalf("sub-tokens still recorded as live: %v %v", live, err)
	}
	t.Logf("%s of simulated work across 3 processes (2 SIGKILLs), %d attempts", jobLength, w.Attempts)
}
