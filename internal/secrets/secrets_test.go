package secrets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/secrets"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// kind is the operations' kind here: any kind's executor gets its secrets
// the same way.
const kind = "secret_test"

var defaultSettings = api.Settings{Workers: 2, StepTimeout: 30 * time.Second, Deadline: 10 * time.Minute, MaxAttempts: 3}

type stepFunc func(ctx context.Context, j executor.Job) (executor.Result, error)

// scriptExecutor runs the test's steps in order (the last repeats).
type scriptExecutor struct {
	mu          sync.Mutex
	steps       []stepFunc
	calls       int
	compensated int
}

var _ executor.Executor = (*scriptExecutor)(nil)

func (e *scriptExecutor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	e.mu.Lock()
	f := e.steps[min(e.calls, len(e.steps)-1)]
	e.calls++
	e.mu.Unlock()
	return f(ctx, j)
}

func (e *scriptExecutor) Compensate(ctx context.Context, j executor.Job) error {
	e.mu.Lock()
	e.compensated++
	e.mu.Unlock()
	return nil
}

func (e *scriptExecutor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	return nil, nil, false, nil
}

func (e *scriptExecutor) counts() (calls, compensated int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls, e.compensated
}

type rig struct {
	t       *testing.T
	st      *store.Store
	book    *operations.Book
	chain   *audit.AuditChain
	sess    *vault.Session
	courier *secrets.Courier
	orch    *orchestrator.Orchestrator
	hmacKey []byte

	mu     sync.Mutex
	tokens map[string]string // every wrapping token seen -> its accessor
	// wrapTTL, when set, decides each wrap's TTL by its number (1: the
	// hand-off); 0 makes that wrap fail.
	wrapTTL func(n int) time.Duration
	wraps   int
}

func (r *rig) stepTimeout(kind string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wraps++
	if r.wrapTTL != nil {
		return r.wrapTTL(r.wraps)
	}
	return r.orch.StepTimeout(kind)
}

func newRig(t *testing.T, driver string, exec executor.Executor, settings api.Settings) *rig {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "sbx/infoblox", map[string]any{"username": "admin", "password": "infoblox-pw", "url": "http://127.0.0.1:1"}); err != nil {
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
	key, err := secrets.DeriveKey(opts.HMACKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, book: book, chain: chain, sess: sess, hmacKey: opts.HMACKey, tokens: map[string]string{}}
	r.courier, err = secrets.New(secrets.Config{Vault: sess, Book: book, Audit: chain, Key: key,
		StepTimeout: r.stepTimeout})
	if err != nil {
		t.Fatal(err)
	}
	r.orch, err = orchestrator.New(ctx, orchestrator.Config{Store: st, Book: book, Vault: sess, Audit: chain, Secrets: r.courier,
		Executors: map[string]executor.Executor{kind: exec}, Settings: map[string]api.Settings{kind: settings},
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.orch.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.orch.Stop(sctx)
		_ = chain.Close()
		_ = sess.Close(sctx)
	})
	return r
}

func uniqueSecret(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func secretValues(prefix string) vault.RequestSecrets {
	return vault.RequestSecrets{"secret_variables": {"ADMIN_PASSWORD": uniqueSecret(prefix), "API_KEY": uniqueSecret(prefix + "-key")}}
}

// create stores a new operation (not enqueued).
func (r *rig) create(key string) api.Operation {
	r.t.Helper()
	op, got, err := r.book.Create(context.Background(), operations.New{Kind: kind, Action: api.ActionCreate,
		OwnerEntityID: "e1", Owner: "alice", Bundle: "fedramp_sbx_default", Environment: "sbx", RequestID: "req-" + key,
		DecisionID: "d-" + key, IdempotencyKey: key, Request: []byte(`{"secret_variables":{"ADMIN_PASSWORD":"hmac-sha256:00"}}`)})
	if err != nil || got != operations.Created {
		r.t.Fatalf("create %s: %v %v", key, got, err)
	}
	return op
}

// hand hands values to op as admission does, and captures the token.
func (r *rig) hand(op api.Operation, values vault.RequestSecrets) {
	r.t.Helper()
	if err := r.courier.Hand(context.Background(), op, op.Environment, values); err != nil {
		r.t.Fatalf("hand: %v", err)
	}
	if tok := r.capture(op.ID); tok == "" {
		r.t.Fatal("Hand stored no wrapping token on the operation")
	}
}

func (r *rig) enqueue(op api.Operation) {
	r.t.Helper()
	if err := r.orch.Enqueue(context.Background(), op); err != nil {
		r.t.Fatal(err)
	}
}

// capture remembers the wrapping token op holds now (safe from executor goroutines).
func (r *rig) capture(opID string) string {
	tok, acc, err := r.courier.PeekToken(context.Background(), opID)
	if err != nil {
		r.t.Errorf("peek the wrapping token of %s: %v", opID, err)
		return ""
	}
	if tok != "" {
		r.mu.Lock()
		r.tokens[tok] = acc
		r.mu.Unlock()
	}
	return tok
}

func (r *rig) captured() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for k, v := range r.tokens {
		out[k] = v
	}
	return out
}

func (r *rig) wait(id string) api.Operation {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		op, err := r.book.Get(context.Background(), id, "e1")
		if err != nil {
			r.t.Fatal(err)
		}
		if operations.Terminal(op.State) {
			return op
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("operation %s not terminal after 60s", id)
	return api.Operation{}
}

// wrappingAlive asks Vault (sys/wrapping/lookup, as root) about a token.
func wrappingAlive(t *testing.T, token string) bool {
	t.Helper()
	_, err := env.Admin().Logical().Write("sys/wrapping/lookup", map[string]any{"token": token})
	if err == nil {
		return true
	}
	if strings.Contains(err.Error(), "wrapping token is not valid or does not exist") {
		return false
	}
	t.Fatalf("sys/wrapping/lookup: %v", err)
	return false
}

// liveWrappingTokens counts the wrapping tokens alive anywhere in this
// package's Vault, as its operator would find them.
func liveWrappingTokens(t *testing.T) int {
	t.Helper()
	accs, err := env.Admin().Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys, _ := accs.Data["keys"].([]any)
	for _, k := range keys {
		s, err := env.Admin().Auth().Token().LookupAccessor(k.(string))
		if err != nil || s == nil {
			continue // gone since it was listed
		}
		if s.Data["path"] == "sys/wrapping/wrap" {
			n++
		}
	}
	return n
}

// assertNothingLeft: every wrapping token the operation ever held is dead
// in Vault, no other is alive, and the operation holds none.
func (r *rig) assertNothingLeft(opID string, minTokens int) {
	r.t.Helper()
	toks := r.captured()
	if len(toks) < minTokens {
		r.t.Errorf("saw %d wrapping tokens, want at least %d", len(toks), minTokens)
	}
	for tok, acc := range toks {
		if wrappingAlive(r.t, tok) {
			r.t.Errorf("wrapping token (accessor %s) still alive in Vault", acc)
		}
	}
	if n := liveWrappingTokens(r.t); n != 0 {
		r.t.Errorf("%d wrapping tokens alive in Vault", n)
	}
	h, err := r.book.HandOff(context.Background(), opID)
	if err != nil {
		r.t.Fatal(err)
	}
	if h.State != operations.HandOffGone || h.Sealed != "" || h.Accessor != "" {
		r.t.Errorf("operation still holds a hand-off: state %q, sealed %d bytes, accessor %q", h.State, len(h.Sealed), h.Accessor)
	}
}

// secretEvents are the audit records about a request's secrets.
func (r *rig) secretEvents(requestID string) []audit.Record {
	r.t.Helper()
	recs, _, err := r.chain.Query(context.Background(), audit.Filter{RequestID: requestID})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []audit.Record
	for _, rec := range recs {
		if strings.HasPrefix(rec.Outcome, "request secrets") {
			out = append(out, rec)
		}
	}
	return out
}

func count(recs []audit.Record, prefix string) int {
	n := 0
	for _, rec := range recs {
		if strings.HasPrefix(rec.Outcome, prefix) {
			n++
		}
	}
	return n
}

func outcomes(recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, rec := range recs {
		out[i] = rec.Outcome
	}
	return out
}

// assertNowhere: neither the values nor any wrapping token appear in the
// audit chain, nor (SQLite) in the database files.
func (r *rig) assertNowhere(values vault.RequestSecrets) {
	r.t.Helper()
	var needles []string
	for _, m := range values {
		for _, v := range m {
			needles = append(needles, v)
		}
	}
	for tok := range r.captured() {
		needles = append(needles, tok)
	}
	recs, _, err := r.chain.Query(context.Background(), audit.Filter{Limit: audit.MaxQueryLimit})
	if err != nil {
		r.t.Fatal(err)
	}
	trail, _ := json.Marshal(recs)
	var files [][]byte
	if r.st.Path != "" {
		for _, p := range []string{r.st.Path, r.st.Path + "-wal"} {
			if b, err := os.ReadFile(p); err == nil {
				files = append(files, b)
			}
		}
		if len(files) == 0 {
			r.t.Fatal("no database file to search")
		}
	}
	for _, n := range needles {
		if bytes.Contains(trail, []byte(n)) {
			r.t.Errorf("the audit trail holds a secret value or a wrapping token")
		}
		for _, f := range files {
			if bytes.Contains(f, []byte(n)) {
				r.t.Errorf("the database holds a secret value or a wrapping token in clear")
			}
		}
	}
}

// The values reach the executor once: the step that unwraps them gets
// them (twice in the same step is the same values), and after ForgetSecrets
// neither that step nor a later one can have them again. The gateway
// replica that handed them over may be gone by then.
func TestSecretsReachTheExecutorOnce(t *testing.T) {
	want := secretValues("once")
	var r *rig
	var mu sync.Mutex
	var seen []vault.RequestSecrets
	var goneAfterForget, goneNextStep error
	exec := &scriptExecutor{steps: []stepFunc{
		func(ctx context.Context, j executor.Job) (executor.Result, error) {
			v, err := j.Secrets(ctx)
			if err != nil {
				return executor.Result{}, executor.Permanent(err)
			}
			r.capture(j.Operation.ID) // the token kept for a retry
			again, err := j.Secrets(ctx)
			if err != nil {
				return executor.Result{}, executor.Permanent(err)
			}
			mu.Lock()
			seen = append(seen, v, again)
			mu.Unlock()
			if err := j.ForgetSecrets(ctx); err != nil {
				return executor.Result{}, err
			}
			_, goneAfterForget = j.Secrets(ctx)
			return executor.Result{}, executor.Wait(100*time.Millisecond, map[string]bool{"launched": true}, "launched")
		},
		func(ctx context.Context, j executor.Job) (executor.Result, error) {
			_, goneNextStep = j.Secrets(ctx)
			return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
		},
	}}
	r = newRig(t, store.DriverSQLite, exec, defaultSettings)
	op := r.create("once")

	// Admission on another replica hands them over and goes away (its
	// token revoked): the wrapping token outlives it.
	admitting, err := vault.Login(context.Background(), env.VaultAddr, env.GatewayLogin, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := secrets.New(secrets.Config{Vault: admitting, Book: r.book, Audit: r.chain, Key: mustKey(t, r.hmacKey),
		StepTimeout: func(string) time.Duration { return time.Minute }})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Hand(context.Background(), op, op.Environment, want); err != nil {
		t.Fatal(err)
	}
	r.capture(op.ID)
	if err := admitting.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	r.enqueue(op)
	done := r.wait(op.ID)
	if done.State != api.OperationSucceeded {
		t.Fatalf("operation %+v", done)
	}
	if len(seen) != 2 || !reflect.DeepEqual(seen[0], want) || !reflect.DeepEqual(seen[1], want) {
		t.Errorf("the executor saw %d sets of values (equal to what was handed over: %v); want the same values twice in its one step",
			len(seen), len(seen) == 2 && reflect.DeepEqual(seen[0], want))
	}
	if !errors.Is(goneAfterForget, vault.ErrRequestSecretsGone) || !errors.Is(goneNextStep, vault.ErrRequestSecretsGone) {
		t.Errorf("after ForgetSecrets: same step %v, next step %v; want vault.ErrRequestSecretsGone both", goneAfterForget, goneNextStep)
	}
	ev := r.secretEvents(op.RequestID)
	if count(ev, "request secrets wrapped for the operation's executor") != 1 || count(ev, "request secrets unwrapped by attempt 1") != 1 ||
		count(ev, "request secrets wrapped again for a later attempt") != 1 || count(ev, "request secrets destroyed at the executor's request") != 1 ||
		len(ev) != 4 {
		t.Errorf("audit of the secrets: %q", outcomes(ev))
	}
	for _, rec := range ev {
		if rec.TokenAccessorHMAC == "" {
			t.Errorf("secrets event without the wrapping accessor's HMAC: %q", rec.Outcome)
		}
	}
	r.assertNothingLeft(op.ID, 2)
	r.assertNowhere(want)
}

func mustKey(t *testing.T, hmacKey []byte) []byte {
	t.Helper()
	k, err := secrets.DeriveKey(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Whatever way an operation that was handed secrets ends, no wrapping
// token of it is left alive in Vault and the operation holds none.
func TestSecretsDestroyedOnEveryEnd(t *testing.T) {
	busy := errors.New("grid busy")
	use := func(ctx context.Context, j executor.Job) error {
		_, err := j.Secrets(ctx)
		return err
	}
	cases := []struct {
		name      string
		steps     []stepFunc
		state     string
		minTokens int
		// destroyed is the end's own destruction of a live token (none
		// when the executor forgot them itself).
		destroyed string
	}{
		{name: "success without using them", state: api.OperationSucceeded, minTokens: 1,
			destroyed: "request secrets destroyed as the operation ended (succeeded); their unused wrapping token was revoked",
			steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
			}}},
		{name: "success using them without forgetting", state: api.OperationSucceeded, minTokens: 2,
			destroyed: "request secrets destroyed as the operation ended (succeeded); their unused wrapping token was revoked",
			steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				if err := use(ctx, j); err != nil {
					return executor.Result{}, executor.Permanent(err)
				}
				return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
			}}},
		{name: "permanent failure before using them", state: api.OperationFailed, minTokens: 1,
			destroyed: "request secrets destroyed as the operation ended (failed); their unused wrapping token was revoked",
			steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				return executor.Result{}, executor.Permanent(errors.New("module source does not hash to its approved SHA-256"))
			}}},
		{name: "permanent failure after using them (a plan that fails)", state: api.OperationFailed, minTokens: 2,
			destroyed: "request secrets destroyed as the operation ended (failed); their unused wrapping token was revoked",
			steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				if err := use(ctx, j); err != nil {
					return executor.Result{}, err
				}
				return executor.Result{}, executor.Permanent(errors.New("terraform plan: invalid value for variable"))
			}}},
		{name: "gives up after transient failures", state: api.OperationFailed, minTokens: 3,
			destroyed: "request secrets destroyed as the operation ended (failed); their unused wrapping token was revoked",
			steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				if err := use(ctx, j); err != nil {
					return executor.Result{}, executor.Permanent(err)
				}
				return executor.Result{}, busy
			}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r *rig
			steps := make([]stepFunc, len(c.steps))
			for i, f := range c.steps {
				steps[i] = func(ctx context.Context, j executor.Job) (executor.Result, error) {
					r.capture(j.Operation.ID) // the token this step finds
					res, err := f(ctx, j)
					r.capture(j.Operation.ID) // the one it leaves
					return res, err
				}
			}
			settings := defaultSettings
			settings.MaxAttempts = 2
			r = newRig(t, store.DriverSQLite, &scriptExecutor{steps: steps}, settings)
			values := secretValues("end")
			op := r.create("end")
			r.hand(op, values)
			r.enqueue(op)
			done := r.wait(op.ID)
			if done.State != c.state {
				t.Fatalf("operation ended %s (%s), want %s", done.State, done.Error, c.state)
			}
			ev := r.secretEvents(op.RequestID)
			if count(ev, c.destroyed) != 1 {
				t.Errorf("audit of the secrets: %q; want one %q", outcomes(ev), c.destroyed)
			}
			r.assertNothingLeft(op.ID, c.minTokens)
			r.assertNowhere(values)
		})
	}
}

// A step that fails transiently after unwrapping leaves the values wrapped
// again, so the retry gets the same values; then nothing is left.
func TestRetryAfterTransientFailureGetsTheSameSecrets(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			want := secretValues("retry")
			var r *rig
			var mu sync.Mutex
			var seen []vault.RequestSecrets
			step := func(fail bool) stepFunc {
				return func(ctx context.Context, j executor.Job) (executor.Result, error) {
					r.capture(j.Operation.ID)
					v, err := j.Secrets(ctx)
					if err != nil {
						return executor.Result{}, executor.Permanent(err)
					}
					r.capture(j.Operation.ID)
					mu.Lock()
					seen = append(seen, v)
					mu.Unlock()
					if fail {
						return executor.Result{}, errors.New("503 grid unavailable")
					}
					if err := j.ForgetSecrets(ctx); err != nil {
						return executor.Result{}, err
					}
					return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
				}
			}
			r = newRig(t, driver, &scriptExecutor{steps: []stepFunc{step(true), step(false)}}, defaultSettings)
			op := r.create("retry")
			r.hand(op, want)
			r.enqueue(op)
			done := r.wait(op.ID)
			if done.State != api.OperationSucceeded || done.Attempts != 2 {
				t.Fatalf("operation %+v", done)
			}
			if len(seen) != 2 || !reflect.DeepEqual(seen[0], want) || !reflect.DeepEqual(seen[1], want) {
				t.Errorf("the attempts saw %d sets of values; want the handed-over values in each of 2 attempts", len(seen))
			}
			ev := r.secretEvents(op.RequestID)
			if count(ev, "request secrets unwrapped by attempt 1") != 1 || count(ev, "request secrets unwrapped by attempt 2") != 1 ||
				count(ev, "request secrets destroyed at the executor's request (attempt 2)") != 1 {
				t.Errorf("audit of the secrets: %q", outcomes(ev))
			}
			r.assertNothingLeft(op.ID, 3)
			r.assertNowhere(want)
		})
	}
}

// An operation cancelled while it waits in the queue never gives its
// secrets to the executor, and its wrapping token is destroyed.
func TestCancelWhileQueuedDestroysSecrets(t *testing.T) {
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		return executor.Result{}, executor.Permanent(errors.New("must not run"))
	}}}
	r := newRig(t, store.DriverSQLite, exec, defaultSettings)
	values := secretValues("cancel")
	op := r.create("cancel")
	r.hand(op, values)
	if _, err := r.book.RequestCancel(context.Background(), op.ID, "e1"); err != nil {
		t.Fatal(err)
	}
	r.enqueue(op)
	done := r.wait(op.ID)
	if done.State != api.OperationCancelled {
		t.Fatalf("operation %+v", done)
	}
	if calls, compensated := exec.counts(); calls != 0 || compensated != 1 {
		t.Errorf("executor: %d executions, %d compensations; want 0 and 1", calls, compensated)
	}
	ev := r.secretEvents(op.RequestID)
	if count(ev, "request secrets destroyed as the operation ended (cancelled); their unused wrapping token was revoked") != 1 ||
		count(ev, "request secrets unwrapped") != 0 {
		t.Errorf("audit of the secrets: %q", outcomes(ev))
	}
	r.assertNothingLeft(op.ID, 1)
}

// An operation whose deadline passed before its step ran fails, and its
// wrapping token (alive: its TTL is the step timeout) is destroyed.
func TestDeadlineDestroysSecrets(t *testing.T) {
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		return executor.Result{}, executor.Permanent(errors.New("must not run"))
	}}}
	settings := defaultSettings
	settings.Deadline = time.Second
	r := newRig(t, store.DriverSQLite, exec, settings)
	values := secretValues("deadline")
	op := r.create("deadline")
	r.hand(op, values)
	time.Sleep(1200 * time.Millisecond)
	r.enqueue(op)
	done := r.wait(op.ID)
	if done.State != api.OperationFailed || !strings.Contains(done.Error, "deadline") {
		t.Fatalf("operation %+v", done)
	}
	if calls, _ := exec.counts(); calls != 0 {
		t.Errorf("executor ran %d times", calls)
	}
	ev := r.secretEvents(op.RequestID)
	if count(ev, "request secrets destroyed as the operation ended (failed); their unused wrapping token was revoked") != 1 {
		t.Errorf("audit of the secrets: %q", outcomes(ev))
	}
	r.assertNothingLeft(op.ID, 1)
}

// An operation that ended while its process died before destroying its
// wrapping token (simulated: marked ended behind the orchestrator's back)
// has it destroyed by the sweep — once, by one of two replicas sweeping at
// once; an unfinished operation's token is left for its steps.
func TestSweepDestroysSecretsLeftByACrash(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
				return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
			}}}
			r := newRig(t, driver, exec, defaultSettings)
			crashed := r.create("crashed")
			r.hand(crashed, secretValues("crashed"))
			crashedToken := r.capture(crashed.ID)
			if _, err := r.book.Start(ctx, crashed.ID); err != nil {
				t.Fatal(err)
			}
			if err := r.book.Finish(ctx, crashed.ID, api.OperationFailed, nil, "calm refused the launch"); err != nil {
				t.Fatal(err)
			}
			queued := r.create("queued")
			r.hand(queued, secretValues("queued"))
			queuedToken := r.capture(queued.ID)
			if !wrappingAlive(t, crashedToken) {
				t.Fatal("the crashed operation's token is not alive before the sweep: nothing under test")
			}

			replica, err := orchestrator.New(ctx, orchestrator.Config{Store: r.st, Book: r.book, Vault: r.sess, Audit: r.chain, Secrets: r.courier})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, o := range []*orchestrator.Orchestrator{r.orch, replica} {
				wg.Add(1)
				go func() { defer wg.Done(); o.Sweep(ctx) }()
			}
			wg.Wait()

			if wrappingAlive(t, crashedToken) {
				t.Error("the ended operation's wrapping token is alive after the sweep")
			}
			if !wrappingAlive(t, queuedToken) {
				t.Error("the sweep destroyed the wrapping token of an operation that has not run yet")
			}
			ev := r.secretEvents(crashed.RequestID)
			if len(ev) != 2 || count(ev, "request secrets destroyed by the sweep after the operation ended (failed); their unused wrapping token was revoked") != 1 {
				t.Errorf("audit of the crashed operation's secrets: %q; want the hand-off and one destruction by the sweep", outcomes(ev))
			}
			h, err := r.book.HandOff(ctx, crashed.ID)
			if err != nil || h.State != operations.HandOffGone || h.Sealed != "" || h.Accessor != "" {
				t.Errorf("the crashed operation still holds %+v (%v)", h, err)
			}

			// A destroying claim whose process died is taken over once it is
			// a minute old, never while it may still be at work.
			claimed := r.create("claimed")
			r.hand(claimed, secretValues("claimed"))
			claimedToken := r.capture(claimed.ID)
			if err := r.book.Finish(ctx, claimed.ID, api.OperationSucceeded, nil, ""); err != nil {
				t.Fatal(err)
			}
			h, err = r.book.HandOff(ctx, claimed.ID)
			if err != nil {
				t.Fatal(err)
			}
			claim := h
			claim.State = operations.HandOffDestroying
			if _, err := r.book.SwapHandOff(ctx, claimed.ID, h, claim, false); err != nil {
				t.Fatal(err)
			}
			r.orch.Sweep(ctx)
			if !wrappingAlive(t, claimedToken) {
				t.Error("the sweep took over a fresh destroying claim")
			}
			if _, err := r.st.DB.ExecContext(ctx, `UPDATE operations SET updated_ns = $1 WHERE id = $2`, time.Now().Add(-2*time.Minute).UnixNano(), claimed.ID); err != nil {
				t.Fatal(err)
			}
			r.orch.Sweep(ctx)
			if wrappingAlive(t, claimedToken) {
				t.Error("the sweep left a destroying claim of a dead process alone")
			}
			if ev := r.secretEvents(claimed.RequestID); count(ev, "request secrets destroyed by the sweep after the operation ended (succeeded); their unused wrapping token was revoked") != 1 {
				t.Errorf("audit of the claimed operation's secrets: %q", outcomes(ev))
			}

			// The queued one runs and ends: then nothing is left at all.
			r.enqueue(queued)
			if done := r.wait(queued.ID); done.State != api.OperationSucceeded {
				t.Fatalf("queued operation %+v", done)
			}
			r.assertNothingLeft(queued.ID, 2)
		})
	}
}

// A sub-token of the same environment — what a module run hands to
// Terraform — finds no other operation's secrets: no KV path holds them,
// its policy grants nothing on the retired drop box, and it cannot unwrap
// what it does not hold. The other operation then still gets its values.
func TestSubTokenOfTheSameEnvironmentCannotReadAnotherOperationsSecrets(t *testing.T) {
	ctx := context.Background()
	victimValues := secretValues("victim")
	var r *rig
	var victim api.Operation
	var attempts []string
	var victimSaw vault.RequestSecrets
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		if j.Operation.ID == victim.ID {
			v, err := j.Secrets(ctx)
			if err != nil {
				return executor.Result{}, executor.Permanent(err)
			}
			victimSaw = v
			r.capture(j.Operation.ID)
			return executor.Result{ResourceID: "res-" + j.Operation.ID}, j.ForgetSecrets(ctx)
		}
		// The attacker: an approved module that reads Vault with the run's token.
		addr, token := j.SubToken()
		c, err := vault.NewClient(addr)
		if err != nil {
			return executor.Result{}, executor.Permanent(err)
		}
		c.SetToken(token)
		try := func(what string, err error) {
			if err == nil {
				attempts = append(attempts, what+": allowed")
			}
		}
		_, err = c.KVv2(vaultsetup.RequestSecretsMount).Get(ctx, "sbx/"+victim.RequestID)
		try("read the drop box", err)
		_, err = c.Logical().ListWithContext(ctx, vaultsetup.RequestSecretsMount+"/metadata/sbx")
		try("list the drop box", err)
		_, err = c.Logical().UnwrapWithContext(ctx, "")
		try("unwrap with the sub-token itself", err)
		_, err = c.Logical().WriteWithContext(ctx, "sys/wrapping/unwrap", map[string]any{"token": token})
		try("unwrap through sys/wrapping/unwrap", err)
		caps, err := env.Admin().Sys().CapabilitiesWithContext(ctx, token, vaultsetup.RequestSecretsMount+"/data/sbx/"+victim.RequestID)
		if err != nil || len(caps) != 1 || caps[0] != "deny" {
			attempts = append(attempts, fmt.Sprintf("capabilities on the drop box: %v %v", caps, err))
		}
		return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
	}}}
	r = newRig(t, store.DriverSQLite, exec, defaultSettings)
	victim = r.create("victim")
	r.hand(victim, victimValues)

	mounts, err := env.Admin().Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts[vaultsetup.RequestSecretsMount+"/"]; ok {
		t.Errorf("Vault still mounts the drop box %s", vaultsetup.RequestSecretsMount)
	}

	attacker := r.create("attacker")
	r.enqueue(attacker)
	if done := r.wait(attacker.ID); done.State != api.OperationSucceeded {
		t.Fatalf("attacker operation %+v", done)
	}
	if len(attempts) != 0 {
		t.Errorf("a sub-token of the same environment could: %v", attempts)
	}
	r.enqueue(victim)
	if done := r.wait(victim.ID); done.State != api.OperationSucceeded {
		t.Fatalf("victim operation %+v", done)
	}
	if !reflect.DeepEqual(victimSaw, victimValues) {
		t.Error("the victim's executor did not get its values after the attacker ran")
	}
	r.assertNothingLeft(victim.ID, 2)
}

// A wrapping token used before the step (someone who got it and the key
// unwrapped it) is detected: the executor gets none and the chain says so.
func TestSecretsUsedBySomeoneElseAreDetected(t *testing.T) {
	var got error
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		_, got = j.Secrets(ctx)
		return executor.Result{}, executor.Permanent(got)
	}}}
	r := newRig(t, store.DriverSQLite, exec, defaultSettings)
	op := r.create("stolen")
	r.hand(op, secretValues("stolen"))
	tok := r.capture(op.ID)
	if _, err := r.sess.Unwrap(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	r.enqueue(op)
	if done := r.wait(op.ID); done.State != api.OperationFailed {
		t.Fatalf("operation %+v", done)
	}
	if !errors.Is(got, vault.ErrRequestSecretsGone) {
		t.Errorf("Secrets: %v; want vault.ErrRequestSecretsGone", got)
	}
	ev := r.secretEvents(op.RequestID)
	if count(ev, "request secrets missing: their wrapping token was used or revoked by someone else before attempt 1 could unwrap it") != 1 {
		t.Errorf("audit of the secrets: %q", outcomes(ev))
	}
	r.assertNothingLeft(op.ID, 1)
}

// A step that runs before admission stored the wrapping token (the queue's
// periodic re-enqueue can start an operation that early) is retried and
// then gets the values.
func TestStepBeforeHandOffIsRetried(t *testing.T) {
	want := secretValues("early")
	var r *rig
	var first error
	var later vault.RequestSecrets
	exec := &scriptExecutor{steps: []stepFunc{
		func(ctx context.Context, j executor.Job) (executor.Result, error) {
			_, first = j.Secrets(ctx)
			if err := r.courier.Hand(ctx, j.Operation.Operation, "sbx", want); err != nil { // admission finishing meanwhile
				return executor.Result{}, executor.Permanent(err)
			}
			r.capture(j.Operation.ID)
			return executor.Result{}, first
		},
		func(ctx context.Context, j executor.Job) (executor.Result, error) {
			v, err := j.Secrets(ctx)
			if err != nil {
				return executor.Result{}, executor.Permanent(err)
			}
			later = v
			r.capture(j.Operation.ID)
			return executor.Result{ResourceID: "res-" + j.Operation.ID}, j.ForgetSecrets(ctx)
		},
	}}
	r = newRig(t, store.DriverSQLite, exec, defaultSettings)
	op := r.create("early")
	r.enqueue(op)
	if done := r.wait(op.ID); done.State != api.OperationSucceeded {
		t.Fatalf("operation %+v", done)
	}
	if !errors.Is(first, secrets.ErrNotHandedOver) || executor.IsPermanent(first) {
		t.Errorf("first step: %v; want the transient secrets.ErrNotHandedOver", first)
	}
	if !reflect.DeepEqual(later, want) {
		t.Error("the retry did not get the values handed over meanwhile")
	}
	r.assertNothingLeft(op.ID, 2)
}

// Hand's contract: once per operation, never for one that ended, in the
// operation's own environment; on refusal nothing is left in Vault.
func TestHandRefusals(t *testing.T) {
	ctx := context.Background()
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
	}}}
	r := newRig(t, store.DriverSQLite, exec, defaultSettings)

	op := r.create("twice")
	r.hand(op, secretValues("first"))
	first := r.capture(op.ID)
	if err := r.courier.Hand(ctx, op, op.Environment, secretValues("second")); err == nil {
		t.Error("a second hand-off to the same operation was accepted")
	}
	if tok := r.capture(op.ID); tok != first {
		t.Error("the second hand-off replaced the first's token")
	}
	if n := liveWrappingTokens(t); n != 1 {
		t.Errorf("%d wrapping tokens alive after a refused second hand-off; want only the first", n)
	}

	other := r.create("elsewhere")
	if err := r.courier.Hand(ctx, other, "prod", secretValues("elsewhere")); err == nil {
		t.Error("a hand-off naming another environment than the operation's was accepted")
	}
	ended := r.create("ended")
	if err := r.book.Finish(ctx, ended.ID, api.OperationFailed, nil, "x"); err != nil {
		t.Fatal(err)
	}
	if err := r.courier.Hand(ctx, ended, ended.Environment, secretValues("ended")); err == nil {
		t.Error("a hand-off to an ended operation was accepted")
	}
	if err := r.courier.Hand(ctx, other, other.Environment, nil); err != nil {
		t.Errorf("a hand-off of nothing: %v", err)
	}
	if n := liveWrappingTokens(t); n != 1 {
		t.Errorf("%d wrapping tokens alive after refused hand-offs; want only the first", n)
	}
	for _, o := range []api.Operation{other, ended} {
		if h, err := r.book.HandOff(ctx, o.ID); err != nil || h.State != operations.HandOffNone {
			t.Errorf("operation %s holds %+v after a refused hand-off (%v)", o.ID, h, err)
		}
	}
	r.enqueue(op)
	r.wait(op.ID)
	r.assertNothingLeft(op.ID, 1)
}

// The sealed token does not open with another gateway's key, nor on
// another operation's row.
func TestSealedTokenIsBoundToKeyAndOperation(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, store.DriverSQLite, &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		return executor.Result{ResourceID: "res-" + j.Operation.ID}, nil
	}}}, defaultSettings)
	a, b := r.create("a"), r.create("b")
	r.hand(a, secretValues("a"))
	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)
	stranger, err := secrets.New(secrets.Config{Vault: r.sess, Book: r.book, Audit: r.chain, Key: mustKey(t, otherKey),
		StepTimeout: func(string) time.Duration { return time.Minute }})
	if err != nil {
		t.Fatal(err)
	}
	if tok, _, err := stranger.PeekToken(ctx, a.ID); err == nil || tok != "" {
		t.Error("the sealed wrapping token opened with another key")
	}
	// Move a's sealed token onto b, as a database writer could.
	ha, err := r.book.HandOff(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	moved, err := r.book.SwapHandOff(ctx, b.ID, operations.HandOff{}, ha, true)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _, err := r.courier.PeekToken(ctx, b.ID); err == nil || tok != "" {
		t.Error("a's sealed wrapping token opened on b's row")
	}
	if _, err := r.book.SwapHandOff(ctx, b.ID, moved, operations.HandOff{State: operations.HandOffGone}, true); err != nil {
		t.Fatal(err)
	}
	r.enqueue(a)
	r.wait(a.ID)
	r.assertNothingLeft(a.ID, 1)
}

// When Vault does not wrap the values again right after the unwrap, the
// step tries once more as it ends, so the retry still has them; when that
// fails too, the retry finds them lost and says so (and the chain does).
func TestSecretsKeptWhenTheFirstRewrapFails(t *testing.T) {
	for _, c := range []struct {
		name      string
		wrapTTL   func(n int) time.Duration
		retryGets bool
	}{
		{name: "kept as the step ends", retryGets: true, wrapTTL: func(n int) time.Duration {
			if n == 2 { // the re-wrap right after attempt 1's unwrap
				return 0
			}
			return time.Minute
		}},
		{name: "lost", retryGets: false, wrapTTL: func(n int) time.Duration {
			if n == 1 {
				return time.Minute
			}
			return 0
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := secretValues("rewrap")
			var r *rig
			var first vault.RequestSecrets
			var second error
			var secondValues vault.RequestSecrets
			exec := &scriptExecutor{steps: []stepFunc{
				func(ctx context.Context, j executor.Job) (executor.Result, error) {
					v, err := j.Secrets(ctx)
					if err != nil {
						return executor.Result{}, executor.Permanent(err)
					}
					first = v
					return executor.Result{}, errors.New("grid busy")
				},
				func(ctx context.Context, j executor.Job) (executor.Result, error) {
					r.capture(j.Operation.ID)
					secondValues, second = j.Secrets(ctx)
					if second != nil {
						return executor.Result{}, executor.Permanent(second)
					}
					return executor.Result{ResourceID: "res-" + j.Operation.ID}, j.ForgetSecrets(ctx)
				},
			}}
			r = newRig(t, store.DriverSQLite, exec, defaultSettings)
			r.mu.Lock()
			r.wrapTTL = c.wrapTTL
			r.mu.Unlock()
			op := r.create("rewrap")
			r.hand(op, want)
			r.enqueue(op)
			done := r.wait(op.ID)
			if !reflect.DeepEqual(first, want) {
				t.Fatal("attempt 1 did not get the values")
			}
			ev := r.secretEvents(op.RequestID)
			if c.retryGets {
				if done.State != api.OperationSucceeded || second != nil || !reflect.DeepEqual(secondValues, want) {
					t.Errorf("retry: %v, operation %s (%s); want the values and success", second, done.State, done.Error)
				}
			} else {
				if done.State != api.OperationFailed || !errors.Is(second, vault.ErrRequestSecretsGone) {
					t.Errorf("retry: %v, operation %s; want vault.ErrRequestSecretsGone and failure", second, done.State)
				}
				if count(ev, "request secrets lost: an earlier step unwrapped them and ended without wrapping them again") != 1 {
					t.Errorf("audit of the secrets: %q", outcomes(ev))
				}
			}
			r.assertNothingLeft(op.ID, 1)
		})
	}
}

// A wrapping token whose TTL (the kind's step timeout) passed while the
// operation waited in the queue is gone: the executor gets none, and the
// chain says it expired — not that someone else used it.
func TestSecretsExpiredInTheQueue(t *testing.T) {
	var got error
	exec := &scriptExecutor{steps: []stepFunc{func(ctx context.Context, j executor.Job) (executor.Result, error) {
		_, got = j.Secrets(ctx)
		return executor.Result{}, executor.Permanent(got)
	}}}
	r := newRig(t, store.DriverSQLite, exec, defaultSettings)
	r.mu.Lock()
	r.wrapTTL = func(int) time.Duration { return time.Second }
	r.mu.Unlock()
	op := r.create("expired")
	r.hand(op, secretValues("expired"))
	time.Sleep(2500 * time.Millisecond)
	r.enqueue(op)
	if done := r.wait(op.ID); done.State != api.OperationFailed {
		t.Fatalf("operation %+v", done)
	}
	if !errors.Is(got, vault.ErrRequestSecretsGone) {
		t.Errorf("Secrets: %v; want vault.ErrRequestSecretsGone", got)
	}
	ev := r.secretEvents(op.RequestID)
	if count(ev, "request secrets missing: their wrapping token's TTL (the kind's step timeout) passed at ") != 1 {
		t.Errorf("audit of the secrets: %q", outcomes(ev))
	}
	r.assertNothingLeft(op.ID, 1)
}
