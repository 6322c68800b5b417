package operations

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Work is an operation as the orchestrator needs it.
type Work struct {
	api.Operation
	OwnerEntityID    string
	Request          []byte
	SubTokenAccessor string
	NaturalKey       string
	// Checkpoint is the executor's durable state of the downstream work it
	// started (nil before the first): a resumed step continues that work.
	Checkpoint json.RawMessage
	// Waiting: the last step ended "in progress"; the next one continues it.
	Waiting bool
	// Approval is what admission resolved when it allowed the operation.
	Approval api.Approval
	// Ending is the terminal state a compensation under way will end the
	// operation in (failed, cancelled); "" while it runs normally.
	// EndingReason says why (the message it will end with).
	Ending, EndingReason string
}

// Load returns everything about an operation.
func (b *Book) Load(ctx context.Context, id string) (Work, error) {
	op, err := get(ctx, b.st.DB, id)
	if err != nil {
		return Work{}, err
	}
	w := Work{Operation: op}
	var req, checkpoint, approval string
	var waiting int
	err = b.st.DB.QueryRowContext(ctx, `SELECT owner_entity_id, request_json, subtoken_accessor, natural_key, checkpoint_json, waiting,
		approval_json, ending FROM operations WHERE id = $1`, id).
		Scan(&w.OwnerEntityID, &req, &w.SubTokenAccessor, &w.NaturalKey, &checkpoint, &waiting, &approval, &w.Ending)
	w.Waiting = waiting != 0
	w.Ending, w.EndingReason, _ = strings.Cut(w.Ending, ":")
	if err == nil && approval != "" {
		if err = json.Unmarshal([]byte(approval), &w.Approval); err != nil {
			err = fmt.Errorf("operation %s approval: %w", id, err)
		}
	}
	w.Request = []byte(req)
	if checkpoint != "" {
		w.Checkpoint = json.RawMessage(checkpoint)
	}
	return w, err
}

// Start marks an operation running (one more attempt). It refuses an
// operation already in a terminal state, so a job run twice does nothing twice.
//
// A step that follows one that ended "in progress" (Wait) continues the
// same attempt: waiting on a downstream system is not a failure.
func (b *Book) Start(ctx context.Context, id string) (attempt int, err error) {
	err = b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		var state string
		var waiting int
		if err := q.QueryRowContext(ctx, `SELECT state, attempts, waiting FROM operations WHERE id = $1`, id).Scan(&state, &attempt, &waiting); err != nil {
			return fmt.Errorf("operation %s: %w", id, err)
		}
		if Terminal(state) {
			return &TerminalError{ID: id, State: state}
		}
		if waiting == 0 || attempt == 0 {
			attempt++
		}
		_, err := q.ExecContext(ctx, `UPDATE operations SET state = $1, attempts = $2, waiting = 0, updated_ns = $3 WHERE id = $4`,
			api.OperationRunning, attempt, time.Now().UnixNano(), id)
		return err
	})
	return attempt, err
}

// SaveCheckpoint stores the executor's handle on the downstream work it
// started, durably, before anything waits on that work.
func (b *Book) SaveCheckpoint(ctx context.Context, id string, checkpoint json.RawMessage) error {
	if !json.Valid(checkpoint) {
		return fmt.Errorf("operation %s: checkpoint is not JSON", id)
	}
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET checkpoint_json = $1, updated_ns = $2 WHERE id = $3`,
		string(checkpoint), time.Now().UnixNano(), id)
	return err
}

// Wait records that a step ended "in progress": the downstream work goes
// on, progress says how far, and the next step continues this attempt.
func (b *Book) Wait(ctx context.Context, id, progress string) error {
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET waiting = 1, progress = $1, error = '', updated_ns = $2 WHERE id = $3`,
		progress, time.Now().UnixNano(), id)
	return err
}

// RequestCancel asks for an unfinished operation of ownerEntityID to be
// cancelled at its next step. A finished one is a *TerminalError.
func (b *Book) RequestCancel(ctx context.Context, id, ownerEntityID string) (api.Operation, error) {
	var op api.Operation
	err := b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		var entity, state string
		err := q.QueryRowContext(ctx, `SELECT owner_entity_id, state FROM operations WHERE id = $1`, id).Scan(&entity, &state)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (ownerEntityID == "" || entity != ownerEntityID)) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if Terminal(state) {
			return &TerminalError{ID: id, State: state}
		}
		if _, err := q.ExecContext(ctx, `UPDATE operations SET cancel_requested = 1, updated_ns = $1 WHERE id = $2`, time.Now().UnixNano(), id); err != nil {
			return err
		}
		op, err = get(ctx, q, id)
		return err
	})
	return op, err
}

// TerminalError means the operation already ended.
type TerminalError struct{ ID, State string }

func (e *TerminalError) Error() string { return fmt.Sprintf("operation %s already %s", e.ID, e.State) }

// Terminal reports whether state is final.
func Terminal(state string) bool {
	return state == api.OperationSucceeded || state == api.OperationFailed || state == api.OperationCancelled
}

// SetSubToken records (or clears, with "") the accessor of the operation's
// live sub-token — before the token is used, so a crash cannot orphan it.
func (b *Book) SetSubToken(ctx context.Context, id, accessor string) error {
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET subtoken_accessor = $1, updated_ns = $2 WHERE id = $3`, accessor, time.Now().UnixNano(), id)
	return err
}

// ClearSubToken clears the operation's accessor if it is still accessor.
func (b *Book) ClearSubToken(ctx context.Context, id, accessor string) error {
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET subtoken_accessor = '', updated_ns = $1 WHERE id = $2 AND subtoken_accessor = $3`,
		time.Now().UnixNano(), id, accessor)
	return err
}

// RetryLater records a transient failure; the operation stays running.
func (b *Book) RetryLater(ctx context.Context, id string, cause error) error {
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET error = $1, updated_ns = $2 WHERE id = $3`, cause.Error(), time.Now().UnixNano(), id)
	return err
}

// Finish moves an operation to a terminal state with its result or error.
func (b *Book) Finish(ctx context.Context, id, state string, result map[string]any, cause string) error {
	var res []byte
	if result != nil {
		var err error
		if res, err = json.Marshal(result); err != nil {
			return err
		}
	}
	_, err := b.st.DB.ExecContext(ctx, `UPDATE operations SET state = $1, result_json = $2, error = $3, updated_ns = $4 WHERE id = $5`,
		state, string(res), cause, time.Now().UnixNano(), id)
	return err
}

// Unfinished lists operations not yet terminal (for start-up recovery).
func (b *Book) Unfinished(ctx context.Context) ([]Work, error) {
	return b.loadAll(ctx, `SELECT id FROM operations WHERE state IN ($1, $2) ORDER BY created_ns`, api.OperationPending, api.OperationRunning)
}

// loadAll loads every operation whose id query returns, in its order.
func (b *Book) loadAll(ctx context.Context, query string, args ...any) ([]Work, error) {
	rows, err := b.st.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Work, 0, len(ids))
	for _, id := range ids {
		w, err := b.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// LiveSubTokens lists accessors recorded on operations (any state).
func (b *Book) LiveSubTokens(ctx context.Context) (map[string]string, error) {
	rows, err := b.st.DB.QueryContext(ctx, `SELECT id, subtoken_accessor FROM operations WHERE subtoken_accessor <> ''`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, acc string
		if err := rows.Scan(&id, &acc); err != nil {
			return nil, err
		}
		out[id] = acc
	}
	return out, rows.Err()
}

// Event is the audit record of something that happened to the operation
// after its admission (a sub-token, its secrets, a step's outcome), under
// its request id; accessor is a token's (the chain HMACs it).
func (w Work) Event(accessor, outcome string) audit.Record {
	return audit.Record{
		RequestID: w.RequestID, OwnerEntityID: w.OwnerEntityID, OwnerName: w.Owner,
		TokenAccessor: accessor, Bundle: w.Bundle, Environment: w.Environment,
		Kind: w.Kind, Action: w.Action, TargetID: w.ID, Decision: audit.DecisionAllow,
		DecisionID: w.DecisionID, Outcome: outcome, UserAgent: "sas-orchestrator",
	}
}
