package operations

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Work is an operation as the orchestrator needs it.
type Work struct {
	api.Operation
	OwnerEntityID    string
	Request          []byte
	SubTokenAccessor string
	NaturalKey       string
}

// Load returns everything about an operation.
func (b *Book) Load(ctx context.Context, id string) (Work, error) {
	op, err := get(ctx, b.st.DB, id)
	if err != nil {
		return Work{}, err
	}
	w := Work{Operation: op}
	var req string
	err = b.st.DB.QueryRowContext(ctx, `SELECT owner_entity_id, request_json, subtoken_accessor, natural_key FROM operations WHERE id = $1`, id).
		Scan(&w.OwnerEntityID, &req, &w.SubTokenAccessor, &w.NaturalKey)
	w.Request = []byte(req)
	return w, err
}

// Start marks an operation running (one more attempt). It refuses an
// operation already in a terminal state, so a job run twice does nothing twice.
func (b *Book) Start(ctx context.Context, id string) (attempt int, err error) {
	err = b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		var state string
		if err := q.QueryRowContext(ctx, `SELECT state, attempts FROM operations WHERE id = $1`, id).Scan(&state, &attempt); err != nil {
			return fmt.Errorf("operation %s: %w", id, err)
		}
		if Terminal(state) {
			return &TerminalError{ID: id, State: state}
		}
		attempt++
		_, err := q.ExecContext(ctx, `UPDATE operations SET state = $1, attempts = $2, updated_ns = $3 WHERE id = $4`,
			api.OperationRunning, attempt, time.Now().UnixNano(), id)
		return err
	})
	return attempt, err
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
	rows, err := b.st.DB.QueryContext(ctx, `SELECT id FROM operations WHERE state IN ($1, $2) ORDER BY created_ns`, api.OperationPending, api.OperationRunning)
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
	out := make([]Work, 0, len(ids))
	for _, id := range ids {
		w, err := b.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
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
