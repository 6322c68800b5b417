package admission

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
)

// Recorder is the request's audit record, as Commit writes it: the record
// is durable before anything it allows happens (boundary ⑤ before ③).
type Recorder interface {
	// Commit writes the request's one record with the answer's status and
	// outcome; an error means it was not written, and nothing may happen.
	Commit(status int, outcome string) error
	// FollowUp appends what became of a request after its record was
	// written (stored by a concurrent request, or not stored at all), so
	// the chain never holds an allow with no ending.
	FollowUp(ctx context.Context, status int, outcome string)
	// Note fills fields of the record before it is written.
	Note(fill func(*audit.Record))
}

// Queue runs operations (the orchestrator).
type Queue interface {
	Enqueue(ctx context.Context, op api.Operation) error
	Wake(ctx context.Context, op api.Operation) error
}

// SecretCourier hands a new operation's secret values to its executor.
type SecretCourier interface {
	Hand(ctx context.Context, op api.Operation, environment string, secrets map[string]map[string]string) error
}

// ErrNotAudited: the request's audit record could not be written, so
// nothing was done (the answer is 503 audit-unavailable).
var ErrNotAudited = errors.New("the audit record could not be written; nothing was done")

// Committed is what an allowed mutation got.
type Committed struct {
	Operation api.Operation
	Status    int  // 202 accepted (or replayed, joined), 200 adopted
	New       bool // a new operation was stored (the answer names its location)
}

// writeTimeout bounds the writes an audited allow commits to, detached
// from the caller: a client that hangs up must not leave them half-done.
const writeTimeout = 15 * time.Second

func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// Commit carries out an allowed create, update or delete: what the request
// gets is resolved (a replayed key or a create joining an unfinished one
// stores nothing at all), audited, and only then stored; a new operation's
// secrets are handed over before it is queued.
func (g *Gate) Commit(ctx context.Context, a Admission, rec Recorder) (Committed, error) {
	n := *a.Work
	want, err := g.Book.Resolve(ctx, n)
	if err != nil {
		return Committed{}, err
	}
	switch want.Outcome {
	case operations.Replayed, operations.Joined:
		rec.Note(func(r *audit.Record) {
			r.Outcome, r.TargetID = outcomeText(want.Outcome, want.Operation.ID), want.Operation.ID
		})
		return Committed{Operation: *want.Operation, Status: http.StatusAccepted}, nil
	}
	if want.Outcome == operations.Created {
		if err := g.withinCallerLimit(ctx, n); err != nil {
			return Committed{}, err
		}
	}
	outcome, status := "accepted", http.StatusAccepted
	if want.Outcome == operations.Adopted {
		outcome, status = outcomeText(operations.Adopted, want.Resource.ID), http.StatusOK
		rec.Note(func(r *audit.Record) { r.TargetID = want.Resource.ID })
	}
	if err := rec.Commit(status, outcome); err != nil {
		return Committed{}, ErrNotAudited
	}
	// From here the request is audited as allowed: it completes even if
	// the client hangs up, and if it cannot, that is audited too.
	ctx, cancel := detached(ctx)
	defer cancel()
	op, got, err := g.Book.Create(ctx, n)
	var inUseErr *operations.InUseError
	var limitErr *operations.CallerLimitError
	switch {
	case errors.As(err, &inUseErr): // a concurrent request got there first
		rec.FollowUp(ctx, http.StatusConflict, "operation not stored: "+truncate(err.Error(), 300))
		return Committed{}, refuse(inUse(inUseErr))
	case errors.As(err, &limitErr):
		rec.FollowUp(ctx, http.StatusTooManyRequests, "operation not stored: "+truncate(err.Error(), 300))
		return Committed{}, refuse(tooMany(limitErr))
	case err != nil:
		if g.Logger != nil {
			g.Logger.Error("operation not stored after an allow was audited", "request_id", n.RequestID, "error", err)
		}
		rec.FollowUp(ctx, http.StatusInternalServerError, "operation not stored: "+truncate(err.Error(), 300))
		return Committed{}, err
	}
	status = http.StatusAccepted
	if got == operations.Adopted {
		status = http.StatusOK
	}
	if got != want.Outcome { // a concurrent request (this replica or another) got there first
		rec.FollowUp(ctx, status, outcomeText(got, op.ID))
	}
	if got != operations.Created {
		return Committed{Operation: op, Status: status}, nil
	}
	// Only a new operation gets the secrets: a joined or replayed request
	// leaves nothing behind in Vault.
	if len(a.Secrets) > 0 && g.Secrets != nil {
		if err := g.Secrets.Hand(ctx, op, n.Environment, a.Secrets); err != nil {
			msg := "the secret values could not be handed over through Vault, so nothing was started; send the request again"
			if ferr := g.Book.Finish(ctx, op.ID, api.OperationFailed, nil, msg); ferr != nil && g.Logger != nil {
				g.Logger.Error("operation without its secrets not failed", "operation_id", op.ID, "error", ferr)
			}
			rec.FollowUp(ctx, http.StatusServiceUnavailable, "operation "+op.ID+" failed before it started: "+truncate(err.Error(), 200))
			return Committed{}, err
		}
	}
	// The operation is durable; if the queue refuses it now, the
	// stalled-operation sweep and start-up recovery enqueue it later.
	if err := g.Queue.Enqueue(ctx, op); err != nil && g.Logger != nil {
		g.Logger.Warn("enqueue failed; the sweep will retry", "operation_id", op.ID, "error", err)
	}
	return Committed{Operation: op, Status: http.StatusAccepted, New: true}, nil
}

// CommitCancel carries out an allowed cancel: audited first, then stored
// (for a kind whose steps cannot be stopped midway, only while no step
// runs) and the operation woken so its next step compensates now.
func (g *Gate) CommitCancel(ctx context.Context, a Admission, ownerEntityID string, rec Recorder) (api.Operation, error) {
	target := *a.Operation
	if err := rec.Commit(http.StatusAccepted, "cancel requested"); err != nil {
		return api.Operation{}, ErrNotAudited
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	var op api.Operation
	var err error
	switch {
	case target.Action != Create: // an update or delete: only before it starts
		op, err = g.Book.RequestCancelBeforeStart(ctx, target.ID, ownerEntityID)
	case api.CancelsWhileRunning(target.Kind): // the step's end undoes the create
		op, err = g.Book.RequestCancel(ctx, target.ID, ownerEntityID)
	default:
		op, err = g.Book.RequestCancelBetweenSteps(ctx, target.ID, ownerEntityID)
	}
	var done *operations.TerminalError
	var running *operations.StepRunningError
	switch {
	case errors.As(err, &done): // it finished in between
		rec.FollowUp(ctx, http.StatusConflict, "cancel not applied: operation already "+done.State)
		return api.Operation{}, refuse(Finished(done.ID, done.State))
	case errors.As(err, &running): // a step started in between
		rec.FollowUp(ctx, http.StatusConflict, "cancel not applied: a step that cannot be stopped midway started")
		return api.Operation{}, refuse(CannotStopNow(target))
	case err != nil:
		rec.FollowUp(ctx, http.StatusInternalServerError, "cancel not stored: "+truncate(err.Error(), 300))
		return api.Operation{}, err
	}
	if err := g.Queue.Wake(ctx, op); err != nil && g.Logger != nil {
		g.Logger.Warn("wake for cancel failed; the next scheduled step cancels", "operation_id", op.ID, "error", err)
	}
	return op, nil
}

// outcomeText is how the audit chain names what a mutation got.
func outcomeText(o operations.Outcome, id string) string {
	switch o {
	case operations.Replayed:
		return "idempotent replay of " + id
	case operations.Joined:
		return "joined unfinished create " + id
	case operations.Adopted:
		return "adopted existing " + id
	}
	return "accepted as " + id
}

// withinCallerLimit refuses, before anything is audited as accepted, a
// new operation of a kind whose callers may have only so many unfinished
// (Settings.MaxUnfinishedPerCaller) when this caller has that many: 429,
// saying which and how many. Create checks it again under a lock, so
// concurrent requests cannot slip past it together. A replayed or joined
// request is not a new operation and is never refused by it.
func (g *Gate) withinCallerLimit(ctx context.Context, n operations.New) error {
	if n.MaxUnfinished <= 0 {
		return nil
	}
	count, err := g.Book.CountUnfinished(ctx, n.Kind, n.OwnerEntityID)
	if err != nil {
		return err
	}
	if count < n.MaxUnfinished {
		return nil
	}
	return refuse(tooMany(&operations.CallerLimitError{Kind: n.Kind, Count: count, Max: n.MaxUnfinished}))
}

func tooMany(e *operations.CallerLimitError) api.Problem {
	return api.Problem{Type: api.ProblemTooManyUnfinished, Title: "Too many unfinished operations", Status: http.StatusTooManyRequests,
		Detail: e.Error() + " (GET /v1/operations/{id})."}
}
