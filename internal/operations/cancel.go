package operations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// StepRunningError means a cancel found a step of a kind that cannot be
// stopped midway running.
type StepRunningError struct{ ID string }

func (e *StepRunningError) Error() string {
	return fmt.Sprintf("operation %s is running a step that cannot be stopped midway", e.ID)
}

// RequestCancelBetweenSteps is RequestCancel for a kind whose steps cannot
// be stopped midway: it is stored only while no step runs (pending, or
// waiting between steps), in the same transaction that checks it, so a
// step starting at the same moment either sees the cancel or makes it fail
// with *StepRunningError — never runs to success under an accepted cancel.
func (b *Book) RequestCancelBetweenSteps(ctx context.Context, id, ownerEntityID string) (api.Operation, error) {
	return b.requestCancelUnlessRunning(ctx, id, ownerEntityID, false)
}

// RequestCancelBeforeStart is RequestCancel for an operation nothing can
// undo once a step started (an update or delete: its compensation does not
// put back what it changed): stored only while it is pending.
func (b *Book) RequestCancelBeforeStart(ctx context.Context, id, ownerEntityID string) (api.Operation, error) {
	return b.requestCancelUnlessRunning(ctx, id, ownerEntityID, true)
}

func (b *Book) requestCancelUnlessRunning(ctx context.Context, id, ownerEntityID string, beforeStart bool) (api.Operation, error) {
	var op api.Operation
	err := b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		var entity, state string
		var waiting int
		err := q.QueryRowContext(ctx, `SELECT owner_entity_id, state, waiting FROM operations WHERE id = $1`, id).Scan(&entity, &state, &waiting)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (ownerEntityID == "" || entity != ownerEntityID)) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if Terminal(state) {
			return &TerminalError{ID: id, State: state}
		}
		if state == api.OperationRunning && (waiting == 0 || beforeStart) {
			return &StepRunningError{ID: id}
		}
		if _, err := q.ExecContext(ctx, `UPDATE operations SET cancel_requested = 1, updated_ns = $1 WHERE id = $2`, time.Now().UnixNano(), id); err != nil {
			return err
		}
		op, err = get(ctx, q, id)
		return err
	})
	return op, err
}

// UnfinishedOf lists the unfinished operations of kind that ownerEntityID made.
func (b *Book) UnfinishedOf(ctx context.Context, kind, ownerEntityID string) ([]Work, error) {
	return b.loadAll(ctx, `SELECT id FROM operations WHERE kind = $1 AND owner_entity_id = $2 AND state IN ($3, $4) ORDER BY created_ns`,
		kind, ownerEntityID, api.OperationPending, api.OperationRunning)
}

// MarkEnding records that an operation's compensation is under way and how
// it will end (failed or cancelled, and why): the next step compensates
// again instead of executing, on any replica, after any restart.
func (b *Book) MarkEnding(ctx context.Context, id, state, cause string) error {
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET ending = $1, error = $2, updated_ns = $3 WHERE id = $4`,
		state+":"+cause, cause, time.Now().UnixNano(), id)
	return err
}
