// Package orchestrator is the threat model's "sas_client" — boundaries ③ to
// ⑤: it executes the operations the gateway allowed, each with its own
// short-lived Vault sub-token, on a durable River queue, and records every
// step in the audit chain.
//
// Per attempt: mark running → mint a sub-token through sas-exec-<env> and
// record its accessor on the operation (so a crash cannot orphan it) →
// audit the mint → read downstream credentials with it → execute → store
// the result → audit the outcome → revoke the sub-token and audit that.
//
// A request's secret values reach the executor through internal/secrets
// (never through the sub-token, which can read none): a step's
// Job.Secrets unwraps the operation's single-use wrapping token, and every
// end of the operation destroys whatever wrapping token is left before
// the operation is marked ended.
package orchestrator

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/secrets"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Config configures an Orchestrator.
type Config struct {
	Store     *store.Store
	Book      *operations.Book
	Vault     *vault.Session
	Audit     *audit.AuditChain
	Executors map[string]executor.Executor // by kind
	// Secrets hands requests' secret values to executors (Job.Secrets) and
	// destroys what is left when an operation ends. Without it executors
	// get no secrets (vault.ErrRequestSecretsGone).
	Secrets *secrets.Courier
	// Settings are each kind's operational limits (the kinds table's, with
	// the operator's overrides); a kind without an entry gets the defaults below.
	Settings map[string]api.Settings
	// WorkersPerKind bounds concurrent operations of a kind without settings (default 8).
	WorkersPerKind int
	// OperationTimeout bounds one step and its sub-token's lifetime for a
	// kind without settings (default 2m).
	OperationTimeout time.Duration
	// MaxAttempts before a transiently failing operation fails (default 8).
	MaxAttempts int
	// Deadline bounds a whole operation of a kind without settings (default 1h).
	Deadline time.Duration
	// RescueAfter: a job running this long is presumed abandoned by a dead
	// process and retried (default the longest step timeout + 1m).
	RescueAfter time.Duration
	// RevokeTimeout bounds an attempt's own revocation of its sub-token
	// (default 30s); past it the revocation is left to the sweep.
	RevokeTimeout time.Duration
	// PollInterval for new jobs (default 200ms; SQLite has no LISTEN).
	PollInterval time.Duration
	Logger       hclog.Logger
}

// Orchestrator runs operations.
type Orchestrator struct {
	cfg      Config
	insert   func(ctx context.Context, args OperationArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	retryNow func(ctx context.Context, id int64) (*rivertype.JobRow, error)
	start    func(ctx context.Context) error
	stop     func(ctx context.Context) error
	pool     *pgxpool.Pool
}

// OperationArgs is the River job: the operation id and nothing secret.
type OperationArgs struct {
	OperationID string `json:"operation_id"`
}

// Kind is River's job kind.
func (OperationArgs) Kind() string { return "sas_operation" }

// New migrates River's tables into the store and prepares the client.
func New(ctx context.Context, cfg Config) (*Orchestrator, error) {
	if cfg.WorkersPerKind <= 0 {
		cfg.WorkersPerKind = 8
	}
	if cfg.OperationTimeout <= 0 {
		cfg.OperationTimeout = 2 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = time.Hour
	}

	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.RevokeTimeout <= 0 {
		cfg.RevokeTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	o := &Orchestrator{cfg: cfg}
	longest := time.Duration(0) // the longest step of the kinds executed here
	if len(cfg.Executors) == 0 {
		longest = cfg.OperationTimeout
	}
	for kind := range cfg.Executors {
		longest = max(longest, o.settings(kind).StepTimeout)
	}
	if o.cfg.RescueAfter <= longest {
		o.cfg.RescueAfter = longest + time.Minute
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &operationWorker{o: o})
	queues := map[string]river.QueueConfig{}
	for kind := range cfg.Executors {
		// A kind with long steps has one pool per environment: a sandbox
		// caller's runs never hold the workers a prod operation waits for
		// (its own queue still drains jobs enqueued before). Every queue is
		// polled, so the others keep one.
		queues[kind] = river.QueueConfig{MaxWorkers: o.settings(kind).Workers}
		if o.settings(kind).PoolPerEnvironment {
			for _, env := range api.Environments {
				queues[o.queueOf(kind, env)] = river.QueueConfig{MaxWorkers: o.settings(kind).Workers}
			}
		}
	}
	rcfg := &river.Config{
		Queues:               queues,
		Workers:              workers,
		JobTimeout:           longest, // each kind's own is the worker's Timeout
		RescueStuckJobsAfter: o.cfg.RescueAfter,
		MaxAttempts:          cfg.MaxAttempts,
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(cfg.PollInterval, 50*time.Millisecond),
		RetryPolicy:          backoff{},
		Logger:               slog.New(slog.DiscardHandler), // River's own chatter; ours goes to hclog
	}
	switch cfg.Store.Driver {
	case store.DriverSQLite:
		drv := riversqlite.New(cfg.Store.DB)
		if err := migrate[*sql.Tx](ctx, drv); err != nil {
			return nil, err
		}
		c, err := river.NewClient(drv, rcfg)
		if err != nil {
			return nil, fmt.Errorf("river: %w", err)
		}
		o.insert = func(ctx context.Context, a OperationArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
			return c.Insert(ctx, a, opts)
		}
		o.retryNow, o.start, o.stop = c.JobRetry, c.Start, c.Stop
	case store.DriverPostgres:
		pool, err := pgxpool.New(ctx, cfg.Store.DSN())
		if err != nil {
			return nil, fmt.Errorf("river: postgres pool: %w", err)
		}
		o.pool = pool
		drv := riverpgxv5.New(pool)
		if err := migrate[pgx.Tx](ctx, drv); err != nil {
			pool.Close()
			return nil, err
		}
		c, err := river.NewClient(drv, rcfg)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("river: %w", err)
		}
		o.insert = func(ctx context.Context, a OperationArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
			return c.Insert(ctx, a, opts)
		}
		o.retryNow, o.start, o.stop = c.JobRetry, c.Start, c.Stop
	default:
		return nil, fmt.Errorf("orchestrator: unsupported store driver %q", cfg.Store.Driver)
	}
	return o, nil
}

func migrate[TTx any](ctx context.Context, drv riverdriver.Driver[TTx]) error {
	m, err := rivermigrate.New(drv, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// settings are kind's limits, with the defaults for what it leaves unset.
func (o *Orchestrator) settings(kind string) api.Settings {
	s := o.cfg.Settings[kind]
	if s.Workers <= 0 {
		s.Workers = o.cfg.WorkersPerKind
	}
	if s.StepTimeout <= 0 {
		s.StepTimeout = o.cfg.OperationTimeout
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = o.cfg.MaxAttempts
	}
	if s.Deadline <= 0 {
		s.Deadline = o.cfg.Deadline
	}
	return s
}

// StepTimeout is one step's bound for kind (its sub-tokens' and wrapping
// tokens' TTL): the kinds table's, or the operator's override.
func (o *Orchestrator) StepTimeout(kind string) time.Duration { return o.settings(kind).StepTimeout }

// queueOf is the River queue (the worker pool) of kind's operations in env.
func (o *Orchestrator) queueOf(kind, env string) string {
	if !o.settings(kind).PoolPerEnvironment {
		return kind
	}
	return kind + "-" + env
}

// kindOfQueue is the kind a queue serves.
func kindOfQueue(queue string) string {
	kind, _, _ := strings.Cut(queue, "-")
	return kind
}

// Handles reports whether this orchestrator can execute operations of kind.
func (o *Orchestrator) Handles(kind string) bool { _, ok := o.cfg.Executors[kind]; return ok }

// Enqueue schedules an operation. It is unique by operation id, so
// enqueueing again (at recovery, or a retried request) never runs it twice.
func (o *Orchestrator) Enqueue(ctx context.Context, op api.Operation) error {
	_, err := o.insert(ctx, OperationArgs{OperationID: op.ID}, &river.InsertOpts{
		Queue: o.queueOf(op.Kind, op.Environment),
		// The operation counts its own attempts and fails itself first;
		// River's count also grows with every snooze (a wait).
		MaxAttempts: o.settings(op.Kind).MaxAttempts + 1,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	})
	if err != nil {
		return fmt.Errorf("enqueue operation %s: %w", op.ID, err)
	}
	return nil
}

// Wake runs an operation's next step now rather than at its scheduled time
// (a cancel should not wait out a long poll interval). A step already
// running is left alone: it sees the cancel when it ends.
func (o *Orchestrator) Wake(ctx context.Context, op api.Operation) error {
	res, err := o.insert(ctx, OperationArgs{OperationID: op.ID}, &river.InsertOpts{
		Queue: o.queueOf(op.Kind, op.Environment), MaxAttempts: o.settings(op.Kind).MaxAttempts + 1, UniqueOpts: river.UniqueOpts{ByArgs: true}})
	if err != nil {
		return fmt.Errorf("wake operation %s: %w", op.ID, err)
	}
	switch res.Job.State {
	case rivertype.JobStateScheduled, rivertype.JobStateRetryable:
		if _, err := o.retryNow(ctx, res.Job.ID); err != nil {
			return fmt.Errorf("wake operation %s: %w", op.ID, err)
		}
	}
	return nil
}

// Start recovers from a crash — sweeping sub-tokens no attempt will
// revoke itself, re-enqueueing unfinished operations — then starts working.
//
// A sub-token still held by an unfinished operation is left alone here: on
// a shared database it may belong to another replica's running attempt. The
// attempt that resumes the operation revokes it, and its TTL bounds it.
func (o *Orchestrator) Start(ctx context.Context) error {
	go o.Sweep(ctx) // Vault may be slow to answer; serving does not wait for it
	unfinished, err := o.cfg.Book.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	for _, w := range unfinished {
		if err := o.Enqueue(ctx, w.Operation); err != nil {
			return err
		}
	}
	if len(unfinished) > 0 {
		o.cfg.Logger.Info("recovered after restart", "operations_resumed", len(unfinished))
	}
	if len(o.cfg.Executors) == 0 {
		return nil // nothing to execute here: an insert-only gateway
	}
	return o.start(ctx)
}

// Stop waits for running attempts to finish (their sub-tokens are revoked).
func (o *Orchestrator) Stop(ctx context.Context) error {
	var err error
	if len(o.cfg.Executors) > 0 {
		err = o.stop(ctx)
	}
	if o.pool != nil {
		o.pool.Close()
	}
	return err
}

// backoff retries quickly at first (1s, 2s, 4s … capped at 60s), with jitter.
type backoff struct{}

func (backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := time.Second << min(job.Attempt-1, 6)
	d = min(d, time.Minute)
	jitter := time.Duration(time.Now().UnixNano() % int64(d/4+1))
	return time.Now().Add(d + jitter)
}

type operationWorker struct {
	river.WorkerDefaults[OperationArgs]
	o *Orchestrator
}

func (w *operationWorker) Work(ctx context.Context, job *river.Job[OperationArgs]) error {
	return w.o.run(ctx, job.Args.OperationID)
}

// Timeout is one step's bound: its kind's step timeout (the queue names the kind).
func (w *operationWorker) Timeout(job *river.Job[OperationArgs]) time.Duration {
	return w.o.settings(kindOfQueue(job.Queue)).StepTimeout
}

// run is one step of one operation: an attempt, or the continuation of
// one that is waiting on its downstream system.
//
// Attempts are the operation's own count (a step that continues a waiting
// one is not a new attempt), not River's: snoozes count in River's.
func (o *Orchestrator) run(ctx context.Context, opID string) error {
	book := o.cfg.Book
	attempt, err := book.Start(ctx, opID)
	if err != nil {
		var done *operations.TerminalError
		if errors.As(err, &done) {
			return nil // finished by an earlier attempt; nothing to do twice
		}
		return err
	}
	w, err := book.Load(ctx, opID)
	if err != nil {
		return err
	}
	// The request's secrets, for this step: unwrapped only if the executor
	// asks; kept for a retry when the step leaves the operation unfinished
	// (even by a panic); destroyed when it ends it (succeed, end).
	secretsOf := o.cfg.Secrets.Deliver(w, attempt)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.RevokeTimeout)
		defer cancel()
		secretsOf.Settle(sctx)
	}()
	exec, ok := o.cfg.Executors[w.Kind]
	if !ok {
		return o.fail(ctx, w, secretsOf, nil, executor.Job{}, func() {}, fmt.Errorf("no executor for kind %s", w.Kind))
	}
	settings := o.settings(w.Kind)
	if w.SubTokenAccessor != "" { // a previous attempt died holding one
		if err := o.revoke(ctx, w, w.SubTokenAccessor, "sub-token of an abandoned attempt revoked"); err != nil {
			return err
		}
	}

	// An existing resource is changed in its own bundle and environment:
	// the sub-token comes from its environment's role, never another's.
	var target *operations.Resource
	if w.TargetID != "" {
		r, err := book.GetResource(ctx, w.Kind, w.TargetID, w.OwnerEntityID)
		if errors.Is(err, operations.ErrResourceNotFound) {
			if w.Action == api.ActionDelete { // already gone: deleting it is done
				return o.succeed(ctx, w, secretsOf, func() {}, executor.Result{ResourceID: w.TargetID, Deleted: true})
			}
			return o.fail(ctx, w, secretsOf, nil, executor.Job{}, func() {}, executor.Permanent(fmt.Errorf("%s %s no longer exists", w.Kind, w.TargetID)))
		}
		if err != nil {
			return err
		}
		if r.Bundle != w.Bundle || r.Environment != w.Environment {
			return o.fail(ctx, w, secretsOf, nil, executor.Job{}, func() {}, executor.Permanent(fmt.Errorf("%s %s belongs to bundle %s in environment %s, not %s in %s; refused",
				w.Kind, w.TargetID, r.Bundle, r.Environment, w.Bundle, w.Environment)))
		}
		target = &r
	}

	// A module approved with a shorter step than its kind's gets that, for
	// the step and its sub-token alike.
	stepTimeout := o.stepTimeout(w)
	if stepTimeout < settings.StepTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stepTimeout)
		defer cancel()
	}
	sub, err := o.mint(ctx, w, purposeOperation, stepTimeout)
	if errors.Is(err, errNotRecorded) {
		return err
	}
	if err != nil {
		return o.retry(ctx, w, secretsOf, executor.Job{Operation: w, Attempt: attempt, Credentials: noCredentials, Checkpoint: w.Checkpoint,
			Secrets: secretsOf.Secrets, ForgetSecrets: secretsOf.Forget}, err, func() {})
	}
	// release revokes the sub-token; it runs before the operation is marked
	// terminal (so "done" implies "no live credential"), and on every
	// other exit path too.
	var released bool
	release := func() {
		if released {
			return
		}
		released = true
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.RevokeTimeout)
		defer cancel()
		if err := o.revoke(rctx, w, sub.Accessor, "sub-token revoked"); err != nil {
			o.cfg.Logger.Error("sub-token revoke failed; the sweep retries it", "operation_id", w.ID, "error", err)
		}
	}
	defer release()
	if err := o.record(ctx, w, sub.Accessor, fmt.Sprintf("sub-token minted (attempt %d)", attempt)); err != nil {
		return err // fail closed: no unaudited downstream call
	}

	j := executor.Job{Operation: w, Attempt: attempt, SubTokenAccessor: sub.Accessor, Resource: target, Checkpoint: w.Checkpoint,
		Credentials: func(ctx context.Context, system string) (vault.Credentials, error) {
			return o.cfg.Vault.ReadCredentials(ctx, sub, system)
		},
		Secrets:       secretsOf.Secrets,
		ForgetSecrets: secretsOf.Forget,
		SubToken:      func() (string, string) { return o.cfg.Vault.Addr(), sub.Token },
		Log:           func(ctx context.Context, text string) error { return o.cfg.Book.AppendLog(ctx, w.ID, attempt, text) },
		Save:          func(ctx context.Context, checkpoint any) error { return o.saveCheckpoint(ctx, w, checkpoint) },
	}
	// A cancelled operation, or one past its kind's deadline, ends here:
	// compensation runs with this step's sub-token, and the end is audited.
	if w.Ending != "" { // compensation under way: continue it, never execute again
		return o.end(ctx, w, secretsOf, exec, j, release, w.Ending, w.EndingReason)
	}
	if w.CancelRequested {
		return o.end(ctx, w, secretsOf, exec, j, release, api.OperationCancelled, cancelledMsg)
	}
	if deadline := w.CreatedAt.Add(settings.Deadline); time.Now().After(deadline) {
		return o.fail(ctx, w, secretsOf, exec, j, release, fmt.Errorf("the operation's deadline (%s after it was accepted, for %s) passed at %s",
			settings.Deadline, w.Kind, deadline.Format(time.RFC3339)))
	}
	res, err := exec.Execute(ctx, j)
	var waiting *executor.InProgress
	switch {
	case errors.As(err, &waiting):
		return o.wait(ctx, w, release, waiting)
	case err != nil && executor.IsPermanent(err):
		return o.fail(ctx, w, secretsOf, exec, j, release, err)
	case err != nil:
		return o.retry(ctx, w, secretsOf, j, err, release)
	}
	if w.Action == api.ActionCreate {
		// A cancel accepted while this step ran: what the step made is
		// undone now, with the checkpoints it saved — the caller was
		// answered 202 and the operation ends cancelled, never succeeded.
		if now, lerr := book.Load(ctx, w.ID); lerr == nil && now.CancelRequested {
			j.Checkpoint = now.Checkpoint
			return o.end(ctx, w, secretsOf, exec, j, release, api.OperationCancelled, cancelledMsg)
		}
	}
	return o.succeed(ctx, w, secretsOf, release, res)
}

const cancelledMsg = "operation cancelled at the caller's request"

// stepTimeout is one step's bound for w: its kind's, or the shorter one
// its catalog entry was approved with.
func (o *Orchestrator) stepTimeout(w operations.Work) time.Duration {
	d := o.settings(w.Kind).StepTimeout
	if m := w.Approval.Module; m != nil && m.StepTimeout > 0 && m.StepTimeout < d {
		d = m.StepTimeout
	}
	return d
}

// saveCheckpoint stores an executor's checkpoint on the operation.
func (o *Orchestrator) saveCheckpoint(ctx context.Context, w operations.Work, checkpoint any) error {
	raw, err := json.Marshal(checkpoint)
	if err != nil {
		return fmt.Errorf("checkpoint of %s: %w", w.ID, err)
	}
	return o.cfg.Book.SaveCheckpoint(ctx, w.ID, raw)
}

// wait ends a step whose downstream work goes on: the checkpoint is
// stored first, the sub-token revoked, and the job snoozed — River runs it
// again after the wait without holding a worker or spending an attempt.
func (o *Orchestrator) wait(ctx context.Context, w operations.Work, release func(), ip *executor.InProgress) error {
	if ip.Checkpoint != nil {
		if err := o.saveCheckpoint(ctx, w, ip.Checkpoint); err != nil {
			return err // not durable: the step is retried, nothing waits on an unrecorded handle
		}
	}
	if err := o.cfg.Book.Wait(ctx, w.ID, truncate(ip.Progress, 300)); err != nil {
		return err
	}
	release()
	after := ip.After
	if after <= 0 {
		after = time.Second
	}
	return river.JobSnooze(after)
}

func (o *Orchestrator) succeed(ctx context.Context, w operations.Work, sec *secrets.Delivery, release func(), res executor.Result) error {
	book := o.cfg.Book
	if res.Deleted {
		if err := book.DeleteResource(ctx, res.ResourceID); err != nil {
			return err
		}
	} else if res.ResourceID != "" {
		spec := json.RawMessage(w.Request)
		opID, naturalKey, bundle, env := w.ID, w.NaturalKey, w.Bundle, w.Environment
		if w.Action == api.ActionUpdate {
			// The resource's spec stays what was created, with the update's
			// fields laid over it; it still names the operation that created
			// it, and stays in the bundle and environment it was made in.
			prev, err := book.GetResource(ctx, w.Kind, res.ResourceID, w.OwnerEntityID)
			if err != nil {
				return err
			}
			if spec, err = mergeSpec(prev.Spec, w.Request); err != nil {
				return err
			}
			opID, naturalKey, bundle, env = prev.OperationID, prev.NaturalKey, prev.Bundle, prev.Environment
		}
		if err := book.PutResource(ctx, operations.Resource{ID: res.ResourceID, Kind: w.Kind, OwnerEntityID: w.OwnerEntityID, Owner: w.Owner,
			Bundle: bundle, Environment: env, Spec: spec, Attributes: res.Attributes, OperationID: opID, NaturalKey: naturalKey}); err != nil {
			return err
		}
	}
	result := map[string]any{"resource_id": res.ResourceID}
	for k, v := range res.Attributes {
		result[k] = v
	}
	if res.Deleted {
		result["deleted"] = true
	}
	release()
	o.endSecrets(ctx, w, sec, api.OperationSucceeded)
	if err := o.record(ctx, w, "", "operation succeeded"); err != nil {
		return err
	}
	return book.Finish(ctx, w.ID, api.OperationSucceeded, result, "")
}

// fail compensates, then ends the operation with the downstream message.
func (o *Orchestrator) fail(ctx context.Context, w operations.Work, sec *secrets.Delivery, exec executor.Executor, j executor.Job, release func(), cause error) error {
	return o.end(ctx, w, sec, exec, j, release, api.OperationFailed, cause.Error())
}

// end compensates, then ends the operation failed or cancelled, audited.
//
// Compensation may take more than a step (a Calm launch must resolve
// before its app can be deleted): the operation then remembers how it will
// end, and every later step — on any replica, after any restart —
// compensates again instead of executing. Compensation that waits on its
// downstream system (executor.Wait) snoozes without spending an attempt;
// one that gives up (executor.Permanent) ends the operation failed, saying
// what is left to check; any other error is retried.
func (o *Orchestrator) end(ctx context.Context, w operations.Work, sec *secrets.Delivery, exec executor.Executor, j executor.Job, release func(), state, msg string) error {
	if exec != nil {
		if err := exec.Compensate(ctx, j); err != nil {
			if w.Ending != state {
				if merr := o.cfg.Book.MarkEnding(ctx, w.ID, state, msg); merr != nil {
					return fmt.Errorf("compensate %s: %w (and its ending was not recorded: %v)", w.ID, err, merr)
				}
			}
			var waiting *executor.InProgress
			switch {
			case errors.As(err, &waiting):
				waiting.Progress = "compensating (the operation will end " + state + "): " + waiting.Progress
				return o.wait(ctx, w, release, waiting)
			case executor.IsPermanent(err):
				state, msg = api.OperationFailed, fmt.Sprintf("%s; compensation gave up: %v", msg, err)
				o.cfg.Logger.Error("compensation gave up", "operation_id", w.ID, "error", err)
			default:
				o.cfg.Logger.Error("compensation failed; will retry", "operation_id", w.ID, "error", err)
				_ = o.cfg.Book.RetryLater(ctx, w.ID, fmt.Errorf("compensation failed, retrying (the operation will end %s): %w", state, err))
				return fmt.Errorf("compensate %s: %w", w.ID, err)
			}
		}
	}
	release()
	o.endSecrets(ctx, w, sec, state)
	outcome := "operation failed: " + truncate(msg, 400)
	if state == api.OperationCancelled {
		outcome = "operation cancelled; compensation ran"
	}
	if err := o.record(ctx, w, "", outcome); err != nil {
		return err
	}
	return o.cfg.Book.Finish(ctx, w.ID, state, nil, msg)
}

// retry records a transient failure and asks River to try again, or fails
// the operation once attempts are exhausted.
func (o *Orchestrator) retry(ctx context.Context, w operations.Work, sec *secrets.Delivery, j executor.Job, cause error, release func()) error {
	attempt := j.Attempt
	if attempt >= o.settings(w.Kind).MaxAttempts {
		// Compensation needs this attempt's credentials; without a sub-token
		// (Vault down) it fails, the job is discarded unfinished, and the
		// next start-up resumes the operation.
		return o.fail(ctx, w, sec, o.cfg.Executors[w.Kind], j, release, fmt.Errorf("gave up after %d attempts: %w", attempt, cause))
	}
	_ = o.cfg.Book.RetryLater(ctx, w.ID, cause)
	o.cfg.Logger.Warn("operation attempt failed; retrying", "operation_id", w.ID, "attempt", attempt, "error", cause)
	var ra *executor.RetryAfterError
	if errors.As(cause, &ra) && ra.After > 0 {
		release()
		return river.JobSnooze(ra.After) // counted: the operation's attempts grew at Start
	}
	return cause
}

// endSecrets destroys the wrapping token an ending operation still holds
// (audited by the courier), before the operation is marked ended; one
// Vault does not confirm is left to the sweep, and the operation ends anyway.
func (o *Orchestrator) endSecrets(ctx context.Context, w operations.Work, sec *secrets.Delivery, state string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.RevokeTimeout)
	defer cancel()
	if err := sec.End(sctx, state); err != nil {
		o.cfg.Logger.Error("request secrets not destroyed; the sweep retries", "operation_id", w.ID, "error", err)
	}
}

// Sub-token purposes, as the ledger records them.
const (
	purposeOperation = "operation"
	purposeRead      = "read"
)

// errNotRecorded: a sub-token was minted but could not be entered in the
// ledger; it was revoked at once and nothing used it.
var errNotRecorded = errors.New("sub-token not recorded")

// mint creates a sub-token for w and enters it in the ledger (and, for an
// operation, on the operation) before anything uses it, so neither a crash
// nor a failed revocation can leave it live unknown to the gateway.
func (o *Orchestrator) mint(ctx context.Context, w operations.Work, purpose string, ttl time.Duration) (vault.SubToken, error) {
	sub, err := o.cfg.Vault.MintSubToken(ctx, vault.SubTokenRequest{
		Environment: w.Environment, TTL: ttl, OperationID: w.ID,
		RequestID: w.RequestID, Owner: w.Owner, Bundle: w.Bundle,
	})
	if err != nil {
		return sub, err
	}
	err = o.cfg.Book.RecordSubToken(ctx, operations.SubTokenRecord{Accessor: sub.Accessor, OperationID: w.ID, Purpose: purpose,
		Work: w, ExpiresAt: sub.ExpireTime})
	if err == nil && purpose == purposeOperation {
		err = o.cfg.Book.SetSubToken(ctx, w.ID, sub.Accessor)
	}
	if err != nil {
		// Nothing used it; if Vault will not revoke it now either, the
		// ledger (if it got the row) hands it to the sweep, else its TTL ends it.
		if rerr := o.revoke(context.WithoutCancel(ctx), w, sub.Accessor, "sub-token revoked: it could not be recorded"); rerr != nil {
			o.cfg.Logger.Error("unrecorded sub-token not revoked", "operation_id", w.ID, "error", rerr)
		}
		return vault.SubToken{}, fmt.Errorf("%w: %w", errNotRecorded, err)
	}
	return sub, nil
}

// revoke revokes a sub-token by accessor, audits it and takes it off the
// ledger (and the operation). A revocation Vault does not confirm stays on
// the ledger for the sweep; its first failure is audited.
func (o *Orchestrator) revoke(ctx context.Context, w operations.Work, accessor, outcome string) error {
	if err := o.cfg.Vault.RevokeSubToken(ctx, accessor); err != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if first, lerr := o.cfg.Book.SubTokenRevokeFailed(wctx, accessor, err); lerr == nil && first {
			_ = o.record(wctx, w, accessor, "sub-token revocation failed; the sweep retries it until Vault confirms or its TTL passes: "+truncate(err.Error(), 200))
		}
		return err
	}
	if err := o.record(ctx, w, accessor, outcome); err != nil {
		return err
	}
	if err := o.cfg.Book.SubTokenGone(ctx, accessor); err != nil {
		return err
	}
	if w.Action == api.ActionRead {
		return nil // read tokens are not held by the operation
	}
	return o.cfg.Book.SetSubToken(ctx, w.ID, "")
}

// Sweep revokes the sub-tokens no attempt will revoke itself: those whose
// revocation failed (Vault was down), and those left by an attempt that
// died. Each ends revoked (Vault confirms) or expired (its TTL passed),
// and the audit chain says which. It also destroys the wrapping tokens of
// request secrets that ended operations still hold (secrets.Courier.Sweep).
// The gateway runs it at start and then periodically; errors are logged
// and the token tried again next time.
func (o *Orchestrator) Sweep(ctx context.Context) {
	o.sweepSubTokens(ctx)
	if o.cfg.Secrets != nil {
		o.cfg.Secrets.Sweep(ctx)
	}
}

func (o *Orchestrator) sweepSubTokens(ctx context.Context) {
	now := time.Now()
	toks, err := o.cfg.Book.SubTokensToSweep(ctx, now)
	if err != nil {
		o.cfg.Logger.Warn("sub-token sweep", "error", err)
		return
	}
	var vaultDown error // once Vault fails, the rest of this sweep does not wait on it again
	for _, t := range toks {
		if ctx.Err() != nil {
			return
		}
		if ok, err := o.cfg.Book.ClaimSubToken(ctx, t); err != nil || !ok {
			continue // another replica's sweep has it, or it changed since listed
		}
		err := vaultDown
		if err == nil {
			vctx, cancel := context.WithTimeout(ctx, sweepVaultTimeout)
			err = o.cfg.Vault.RevokeSubToken(vctx, t.Accessor)
			cancel()
			if err != nil {
				vaultDown = err
			}
		}
		// The bookkeeping gets its own time: a Vault that hung must not
		// also cost the record of what happened.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		var outcome string
		switch {
		case err == nil && now.After(t.ExpiresAt):
			outcome = fmt.Sprintf("sub-token revoked: its TTL passed at %s and Vault confirms it is gone", t.ExpiresAt.UTC().Format(time.RFC3339))
		case err == nil:
			outcome = fmt.Sprintf("sub-token revoked by the sweep after %d failed attempt(s)", t.Attempts)
		case now.After(t.ExpiresAt):
			outcome = fmt.Sprintf("sub-token expired: its TTL passed at %s before Vault could confirm its revocation (%d failed attempt(s), last: %s)",
				t.ExpiresAt.UTC().Format(time.RFC3339), t.Attempts+1, truncate(err.Error(), 200))
		default:
			if _, lerr := o.cfg.Book.SubTokenRevokeFailed(wctx, t.Accessor, err); lerr != nil {
				o.cfg.Logger.Warn("sub-token sweep", "error", lerr)
			}
			cancel()
			continue
		}
		if err := o.record(wctx, t.Work, t.Accessor, outcome); err != nil {
			o.cfg.Logger.Warn("sub-token sweep: audit", "error", err)
		} else if err := o.cfg.Book.SubTokenGone(wctx, t.Accessor); err != nil {
			o.cfg.Logger.Warn("sub-token sweep", "error", err)
		} else if t.Purpose == purposeOperation {
			_ = o.cfg.Book.ClearSubToken(wctx, t.OperationID, t.Accessor)
		}
		cancel()
	}
}

// sweepVaultTimeout bounds the sweep's wait on Vault for one token.
const sweepVaultTimeout = 5 * time.Second

// record appends an orchestrator event to the audit chain under the
// operation's request id; the accessor is HMAC'd by the chain.
func (o *Orchestrator) record(ctx context.Context, w operations.Work, accessor, outcome string) error {
	_, err := o.cfg.Audit.Append(ctx, w.Event(accessor, outcome))
	if err != nil {
		return fmt.Errorf("audit %q for operation %s: %w", outcome, w.ID, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return strings.TrimSpace(s)
}

func noCredentials(context.Context, string) (vault.Credentials, error) {
	return vault.Credentials{}, errors.New("no sub-token: Vault could not mint one")
}

// ErrGone means the resource no longer exists downstream; sas forgets it.
var ErrGone = errors.New("resource no longer exists downstream")

// Read reads a resource from its downstream system with a sub-token of its
// own (minted, audited and revoked like an operation's). A resource deleted
// outside sas is forgotten and ErrGone returned, so the next plan re-creates it.
func (o *Orchestrator) Read(ctx context.Context, res operations.Resource, requestID string, refresh bool) (map[string]any, []api.Drift, error) {
	reader, ok := o.cfg.Executors[res.Kind]
	if !ok {
		return nil, nil, fmt.Errorf("no executor for kind %s", res.Kind)
	}
	w := operations.Work{Operation: api.Operation{ID: res.OperationID, Kind: res.Kind, Action: api.ActionRead, Owner: res.Owner,
		Bundle: res.Bundle, Environment: res.Environment, RequestID: requestID}, OwnerEntityID: res.OwnerEntityID}
	sub, err := o.mint(ctx, w, purposeRead, time.Minute)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.RevokeTimeout)
		defer cancel()
		if err := o.revoke(rctx, w, sub.Accessor, "read sub-token revoked"); err != nil {
			o.cfg.Logger.Error("read sub-token revoke failed; the sweep retries it", "resource_id", res.ID, "error", err)
		}
	}()
	if err := o.record(ctx, w, sub.Accessor, "read sub-token minted"); err != nil {
		return nil, nil, err
	}
	attrs, drift, gone, err := reader.Read(ctx, executor.Job{Operation: w, Attempt: 1, SubTokenAccessor: sub.Accessor, Resource: &res, Refresh: refresh,
		Credentials: func(ctx context.Context, system string) (vault.Credentials, error) {
			return o.cfg.Vault.ReadCredentials(ctx, sub, system)
		},
		SubToken: func() (string, string) { return o.cfg.Vault.Addr(), sub.Token }})
	if err != nil {
		return nil, nil, err
	}
	if gone {
		if err := o.cfg.Book.DeleteResource(ctx, res.ID); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrGone
	}
	return attrs, drift, nil
}

// mergeSpec lays the fields an update sent over the created spec.
func mergeSpec(created, update []byte) (json.RawMessage, error) {
	var base, patch map[string]any
	if err := json.Unmarshal(created, &base); err != nil {
		return nil, fmt.Errorf("resource spec: %w", err)
	}
	if err := json.Unmarshal(update, &patch); err != nil {
		return nil, fmt.Errorf("update request: %w", err)
	}
	for k, v := range patch {
		if k == "change_ticket" {
			continue
		}
		base[k] = v
	}
	return json.Marshal(base)
}
