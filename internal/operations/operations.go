// Package operations keeps the gateway's long-running provisioning
// operations: what was asked, by whom, under which decision, and where it
// stands. Idempotency keys live here too, so a retried create returns the
// original operation instead of provisioning twice — across restarts and
// across replicas sharing PostgreSQL.
package operations

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// ErrNotFound means no such operation (or not one the caller may see).
var ErrNotFound = errors.New("operation not found")

// IdempotencyConflictError means the key was used before with another body.
type IdempotencyConflictError struct{ Key, OperationID string }

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("Idempotency-Key %q was already used for operation %s with a different request", e.Key, e.OperationID)
}

// New is an operation about to be created.
type New struct {
	Kind, Action, TargetID string
	OwnerEntityID, Owner   string
	Bundle, Environment    string
	RequestID, DecisionID  string
	IdempotencyKey         string
	Request                []byte // canonical JSON of the decoded request
	// Object is a create's request when its kind has natural keys: a
	// create of an object that exists is adopted or refused, never repeated.
	Object api.NaturalKeyed
	// Approval is what admission resolved from the approving bundle
	// revision; the executor runs exactly that.
	Approval api.Approval
	// Refers are the resources the request names (guarded: none may be
	// being deleted); MaxUnfinished bounds the caller's unfinished
	// operations of the kind (0: no bound). Both are checked in the
	// transaction that stores a new operation.
	Refers        []Ref
	MaxUnfinished int
}

// Book stores operations in the gateway's database.
type Book struct{ st *store.Store }

// NewBook returns a Book on st.
func NewBook(st *store.Store) *Book { return &Book{st: st} }

// Create stores what a request gets, in one transaction that holds its
// idempotency and natural keys: the operation an earlier request with the
// same key made (Replayed); the unfinished create already making the same
// object (Joined); a succeeded operation adopting the existing object
// (Adopted); or a new pending operation (Created). A key reused with
// another body is an *IdempotencyConflictError, an object that cannot be
// adopted a *ConflictError.
func (b *Book) Create(ctx context.Context, n New) (op api.Operation, outcome Outcome, err error) {
	hash := requestHash(n)
	err = b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		if err := b.lockKeys(ctx, q, n); err != nil {
			return err
		}
		if err := b.lockGuards(ctx, q, n); err != nil {
			return err
		}
		res, err := resolve(ctx, q, n, hash)
		if err != nil {
			return err
		}
		outcome = res.Outcome
		switch res.Outcome {
		case Replayed, Joined:
			op = *res.Operation
			return nil
		case Adopted:
			op, err = adopt(ctx, q, n, hash, res.Resource)
			return err
		}
		if err := guard(ctx, q, n); err != nil {
			return err
		}
		id := newID()
		if err := insert(ctx, q, id, n, hash, api.OperationPending, "", ""); err != nil {
			return err
		}
		op, err = get(ctx, q, id)
		return err
	})
	return op, outcome, err
}

func replay(ctx context.Context, q store.Querier, n New, hash string) (*api.Operation, error) {
	if n.IdempotencyKey == "" {
		return nil, nil
	}
	var id, prevHash string
	err := q.QueryRowContext(ctx, `SELECT id, request_hash FROM operations WHERE owner_entity_id = $1 AND idempotency_key = $2 ORDER BY created_ns LIMIT 1`,
		n.OwnerEntityID, n.IdempotencyKey).Scan(&id, &prevHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look up idempotency key: %w", err)
	case prevHash != hash:
		return nil, &IdempotencyConflictError{Key: n.IdempotencyKey, OperationID: id}
	}
	op, err := get(ctx, q, id)
	return &op, err
}

// requestHash identifies "the same request" for idempotency: kind, action,
// target, bundle, environment and the canonical body.
func requestHash(n New) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{n.Kind, n.Action, n.TargetID, n.Bundle, n.Environment, string(n.Request)}, "\x00")))
	return hex.EncodeToString(sum[:])
}

// Get returns the operation id if it belongs to the Vault entity
// ownerEntityID: operations are not shared between callers.
func (b *Book) Get(ctx context.Context, id, ownerEntityID string) (api.Operation, error) {
	op, err := get(ctx, b.st.DB, id)
	if err != nil {
		return op, err
	}
	var entity string
	_ = b.st.DB.QueryRowContext(ctx, `SELECT owner_entity_id FROM operations WHERE id = $1`, id).Scan(&entity)
	if ownerEntityID == "" || entity != ownerEntityID {
		return api.Operation{}, ErrNotFound
	}
	return op, nil
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func get(ctx context.Context, q rowQuerier, id string) (api.Operation, error) {
	var op api.Operation
	var created, updated int64
	var result string
	var cancel int
	err := q.QueryRowContext(ctx, `SELECT id, kind, action, target_id, state, attempts, owner_name, bundle, environment,
		request_id, decision_id, result_json, error, created_ns, updated_ns, progress, cancel_requested, bundle_revision FROM operations WHERE id = $1`, id).Scan(
		&op.ID, &op.Kind, &op.Action, &op.TargetID, &op.State, &op.Attempts, &op.Owner, &op.Bundle, &op.Environment,
		&op.RequestID, &op.DecisionID, &result, &op.Error, &created, &updated, &op.Progress, &cancel, &op.BundleRevision)
	op.CancelRequested = cancel != 0
	if errors.Is(err, sql.ErrNoRows) {
		return op, ErrNotFound
	}
	if err != nil {
		return op, fmt.Errorf("read operation: %w", err)
	}
	op.CreatedAt, op.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	if result != "" {
		if err := json.Unmarshal([]byte(result), &op.Result); err != nil {
			return op, fmt.Errorf("operation %s result: %w", id, err)
		}
	}
	return op, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "op-" + hex.EncodeToString(b[:])
}
