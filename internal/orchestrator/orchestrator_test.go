package orchestrator_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("SAS_RESUME_CHILD") == "1" {
		runResumeChild() // a process TestLongOperationResumesAcrossKills kills
	}
	testenv.Main(m, &env)
}

// scriptedExecutor is a downstream whose outcome per attempt the test
// chooses; it proves the sub-token works by reading real credentials from
// Vault with it.
type scriptedExecutor struct {
	mu          sync.Mutex
	outcomes    []error // per attempt; nil = success
	accessors   []string
	compensated int
	sawPassword string
}

func (e *scriptedExecutor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	creds, err := j.Credentials(ctx, "infoblox")
	if err != nil {
		return executor.Result{}, executor.Permanent(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sawPassword = creds.Password
	e.accessors = append(e.accessors, j.SubTokenAccessor)
	if j.Attempt-1 < len(e.outcomes) && e.outcomes[j.Attempt-1] != nil {
		return executor.Result{}, e.outcomes[j.Attempt-1]
	}
	return executor.Result{ResourceID: "res-" + j.Operation.ID, Attributes: map[string]any{"ip_address": "10.10.0.9"}}, nil
}

// Read reports the resource as sas recorded it: no drift.
func (e *scriptedExecutor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	return j.Resource.Attributes, nil, false, nil
}

var _ executor.Executor = (*scriptedExecutor)(nil)

func (e *scriptedExecutor) Compensate(ctx context.Context, j executor.Job) error {
	e.mu.Lock()
	e.compensated++
	e.mu.Unlock()
	return nil
}

type rig struct {
	st    *store.Store
	book  *operations.Book
	chain *audit.AuditChain
	sess  *vault.Session
	orch  *orchestrator.Orchestrator
}

func newRig(t *testing.T, driver string, exec executor.Executor) *rig {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "sbx/infoblox", map[string]any{"username": "admin", "password": "infoblox-pw", "url": "http://127.0.0.1:1/wapi/v2.12"}); err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t, driver)
	keys := audit.DefaultKeyPaths(t.TempDir())
	if err := audit.EnsureKeys(keys); err != nil {
		t.Fatal(err)
	}
	opts, err := audit.LoadOptions(keys)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := audit.New(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := vault.Login(ctx, env.VaultAddr, env.GatewayLogin, nil)
	if err != nil {
		t.Fatal(err)
	}
	book := operations.NewBook(st)
	orch, err := orchestrator.New(ctx, orchestrator.Config{Store: st, Book: book, Vault: sess, Audit: chain,
		Executors: map[string]executor.Executor{api.KindIPReservation: exec}, MaxAttempts: 4, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = orch.Stop(sctx)
		_ = chain.Close()
		_ = sess.Close(sctx)
	})
	return &rig{st: st, book: book, chain: chain, sess: sess, orch: orch}
}

func (r *rig) submit(t *testing.T, key string) api.Operation {
	t.Helper()
	op, _, err := r.book.Create(context.Background(), operations.New{Kind: api.KindIPReservation, Action: api.ActionCreate,
		OwnerEntityID: "e1", Owner: "alice", Bundle: "fedramp_sbx_default", Environment: "sbx", RequestID: "req-" + key,
		DecisionID: "d-" + key, IdempotencyKey: key, Request: []byte(`{"network":"sbx-app"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.orch.Enqueue(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	return op
}

func (r *rig) wait(t *testing.T, id string) api.Operation {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		op, err := r.book.Get(context.Background(), id, "e1")
		if err != nil {
			t.Fatal(err)
		}
		if operations.Terminal(op.State) {
			return op
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("operation %s not terminal after 60s", id)
	return api.Operation{}
}

// outcomes counts the orchestrator's audit records for a request by outcome prefix.
func (r *rig) outcomes(t *testing.T, requestID string) map[string]int {
	t.Helper()
	recs, _, err := r.chain.Query(context.Background(), audit.Filter{RequestID: requestID})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rec := range recs {
		out[strings.SplitN(rec.Outcome, " (", 2)[0]]++
		if rec.TokenAccessorHMAC == "" && strings.HasPrefix(rec.Outcome, "sub-token") {
			t.Errorf("sub-token event without accessor HMAC: %+v", rec)
		}
	}
	return out
}

func (r *rig) assertAllRevoked(t *testing.T, accessors []string) {
	t.Helper()
	for _, acc := range accessors {
		alive, err := r.sess.SubTokenAlive(context.Background(), acc)
		if err != nil || alive {
			t.Errorf("sub-token %s still alive (%v)", acc, err)
		}
	}
	live, err := r.book.LiveSubTokens(context.Background())
	if err != nil || len(live) != 0 {
		t.Errorf("operations still record live sub-tokens: %v %v", live, err)
	}
}

func TestTransientFailuresRetryThenSucceed(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			exec := &scriptedExecutor{outcomes: []error{errors.New("grid busy"), errors.New("grid busy")}}
			r := newRig(t, driver, exec)
			op := r.wait(t, r.submit(t, "k1").ID)
			if op.State != api.OperationSucceeded || op.Attempts != 3 || op.Result["ip_address"] != "10.10.0.9" {
				t.Fatalf("operation %+v", op)
			}
			if exec.sawPassword != "infoblox-pw" {
				t.Error("the executor did not read the credentials with the sub-token")
			}
			got := r.outcomes(t, op.RequestID)
			if got["sub-token minted"] != 3 || got["sub-token revoked"] != 3 || got["operation succeeded"] != 1 {
				t.Errorf("audit outcomes %v; want 3 minted = 3 revoked and one success", got)
			}
			r.assertAllRevoked(t, exec.accessors)
			if len(exec.accessors) != 3 || exec.accessors[0] == exec.accessors[1] {
				t.Errorf("each attempt needs its own sub-token: %v", exec.accessors)
			}
			res, err := r.book.GetResource(context.Background(), api.KindIPReservation, "res-"+op.ID, "e1")
			if err != nil || res.Attributes["ip_address"] != "10.10.0.9" {
				t.Fatalf("resource %+v %v", res, err)
			}
		})
	}
}

func TestPermanentFailureCompensatesAndKeepsTheMessage(t *testing.T) {
	exec := &scriptedExecutor{outcomes: []error{executor.Permanent(errors.New("Client.Ibap.Data.Conflict: host web-01 exists"))}}
	r := newRig(t, store.DriverSQLite, exec)
	op := r.wait(t, r.submit(t, "k2").ID)
	if op.State != api.OperationFailed || !strings.Contains(op.Error, "Client.Ibap.Data.Conflict") || op.Attempts != 1 {
		t.Fatalf("operation %+v", op)
	}
	if exec.compensated != 1 {
		t.Errorf("compensated %d times", exec.compensated)
	}
	r.assertAllRevoked(t, exec.accessors)
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	busy := errors.New("503 grid unavailable")
	exec := &scriptedExecutor{outcomes: []error{busy, busy, busy, busy, busy}}
	r := newRig(t, store.DriverSQLite, exec)
	op := r.wait(t, r.submit(t, "k3").ID)
	if op.State != api.OperationFailed || !strings.Contains(op.Error, "gave up after 4 attempts") || !strings.Contains(op.Error, "503 grid unavailable") {
		t.Fatalf("operation %+v", op)
	}
	r.assertAllRevoked(t, exec.accessors)
}

// An operation on an existing resource that names another bundle or
// environment than the resource's (a bug or a tampered row upstream) is
// refused before any sub-token is minted: a resource is only ever changed
// with a sub-token of its own environment's role.
func TestOperationInAnotherContextThanItsResourceIsRefused(t *testing.T) {
	exec := &scriptedExecutor{}
	r := newRig(t, store.DriverSQLite, exec)
	created := r.wait(t, r.submit(t, "made").ID)
	id, _ := created.Result["resource_id"].(string)
	if created.State != api.OperationSucceeded || id == "" {
		t.Fatalf("create: %+v", created)
	}
	ctx := context.Background()
	op, _, err := r.book.Create(ctx, operations.New{Kind: api.KindIPReservation, Action: api.ActionDelete, TargetID: id,
		OwnerEntityID: "e1", Owner: "alice", Bundle: "fedramp_sbx_default", Environment: "dev", RequestID: "req-elsewhere",
		DecisionID: "d-elsewhere", IdempotencyKey: "elsewhere", Request: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.orch.Enqueue(ctx, op); err != nil {
		t.Fatal(err)
	}
	done := r.wait(t, op.ID)
	if done.State != api.OperationFailed || !strings.Contains(done.Error, "belongs to bundle fedramp_sbx_default in environment sbx") {
		t.Fatalf("delete in dev of an sbx resource: %+v", done)
	}
	if got := r.outcomes(t, "req-elsewhere"); got["sub-token minted"] != 0 {
		t.Fatalf("a sub-token was minted for it: %v", got)
	}
	if len(exec.accessors) != 1 {
		t.Fatalf("the executor ran %d times; want only the create", len(exec.accessors))
	}
	if _, err := r.book.GetResource(ctx, api.KindIPReservation, id, "e1"); err != nil {
		t.Fatalf("the resource is gone: %v", err)
	}
}

// A downstream that says when to come back (Retry-After) is asked again no
// sooner — without holding a worker — and the wait counts as an attempt.
func TestRetryAfterIsHonoured(t *testing.T) {
	exec := &scriptedExecutor{outcomes: []error{&executor.RetryAfterError{Err: errors.New("grid busy"), After: 1500 * time.Millisecond}}}
	r := newRig(t, store.DriverSQLite, exec)
	start := time.Now()
	op := r.wait(t, r.submit(t, "busy").ID)
	if op.State != api.OperationSucceeded || op.Attempts != 2 {
		t.Fatalf("operation %+v", op)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Fatalf("retried after %s; the downstream asked for 1.5s", took)
	}
	r.assertAllRevoked(t, exec.accessors)
}
