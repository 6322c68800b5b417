package operations

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// The rules between operations that must hold however requests race: an
// object in use is not deleted, an object being deleted is not used, and a
// caller has at most so many unfinished operations of a kind. Admission
// checks them early (so the common refusal comes before anything is
// audited as accepted); Create checks them again in the transaction that
// stores the operation, under locks that serialise the requests involved
// (PostgreSQL advisory locks; SQLite serialises writers already).

// Ref is a resource an operation relies on (the kinds table's References).
type Ref struct{ Kind, ID string }

// InUseError: a delete of a resource something refers to, or a create
// referring to a resource that is being deleted.
type InUseError struct {
	Kind, ID string
	// Users are what refers to it ("calm_app app-1"); BeingDeletedBy the
	// delete operation that will remove it.
	Users          []string
	BeingDeletedBy string
}

func (e *InUseError) Error() string {
	if e.BeingDeletedBy != "" {
		return fmt.Sprintf("%s %s is being deleted by operation %s; nothing can start using it", e.Kind, e.ID, e.BeingDeletedBy)
	}
	return fmt.Sprintf("%s %s is used by %s; delete that first (its address would otherwise be freed while it holds it)",
		e.Kind, e.ID, strings.Join(e.Users, ", "))
}

// CallerLimitError: the caller already has Max unfinished operations of Kind.
type CallerLimitError struct {
	Kind       string
	Count, Max int
}

func (e *CallerLimitError) Error() string {
	return fmt.Sprintf("you have %d unfinished %s operations, the most one caller may have at once (%d); wait for one to end and send this again",
		e.Count, e.Kind, e.Max)
}

// UsersOf lists what refers to a resource of kind: the owner's resources
// and unfinished creates whose referring field names id.
func (b *Book) UsersOf(ctx context.Context, kind, id, ownerEntityID string) ([]string, error) {
	return usersOf(ctx, b.st.DB, kind, id, ownerEntityID)
}

// BeingDeletedBy is the unfinished delete of a resource, or "".
func (b *Book) BeingDeletedBy(ctx context.Context, kind, id string) (string, error) {
	return beingDeletedBy(ctx, b.st.DB, kind, id)
}

// CountUnfinished counts the unfinished operations of kind that ownerEntityID made.
func (b *Book) CountUnfinished(ctx context.Context, kind, ownerEntityID string) (int, error) {
	return countUnfinished(ctx, b.st.DB, kind, ownerEntityID)
}

func usersOf(ctx context.Context, q store.Querier, kind, id, ownerEntityID string) ([]string, error) {
	var users []string
	for _, ref := range api.ReferrersOf(kind) {
		for _, src := range []struct{ query, label string }{
			{`SELECT id, spec_json FROM resources WHERE kind = $1 AND owner_entity_id = $2 ORDER BY id`, "%s %s"},
			{`SELECT id, request_json FROM operations WHERE kind = $1 AND owner_entity_id = $2 AND action = 'create' AND state IN ('pending', 'running') ORDER BY created_ns`,
				"the %s being created by operation %s"},
		} {
			rows, err := q.QueryContext(ctx, src.query, ref.Kind, ownerEntityID)
			if err != nil {
				return nil, fmt.Errorf("look up users of %s: %w", id, err)
			}
			for rows.Next() {
				var rid, spec string
				if err := rows.Scan(&rid, &spec); err != nil {
					rows.Close()
					return nil, err
				}
				var m map[string]any
				if json.Unmarshal([]byte(spec), &m) == nil && m[ref.Field] == id {
					users = append(users, fmt.Sprintf(src.label, ref.Kind, rid))
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
	}
	return users, nil
}

func beingDeletedBy(ctx context.Context, q store.Querier, kind, id string) (string, error) {
	var op string
	err := q.QueryRowContext(ctx, `SELECT id FROM operations WHERE kind = $1 AND target_id = $2 AND action = $3 AND state IN ($4, $5) LIMIT 1`,
		kind, id, api.ActionDelete, api.OperationPending, api.OperationRunning).Scan(&op)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up deletes of %s: %w", id, err)
	}
	return op, nil
}

func countUnfinished(ctx context.Context, q store.Querier, kind, ownerEntityID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM operations WHERE kind = $1 AND owner_entity_id = $2 AND state IN ($3, $4)`,
		kind, ownerEntityID, api.OperationPending, api.OperationRunning).Scan(&n)
	return n, err
}

// guardKeys are the advisory locks the guards need, beside lockKeys':
// every resource the operation relies on or deletes, and the caller's
// count of unfinished operations of the kind.
func guardKeys(n New) []string {
	var keys []string
	for _, r := range n.Refers {
		keys = append(keys, "resource\x00"+r.ID)
	}
	if n.Action == api.ActionDelete && n.TargetID != "" {
		keys = append(keys, "resource\x00"+n.TargetID)
	}
	if n.MaxUnfinished > 0 {
		keys = append(keys, "unfinished\x00"+n.OwnerEntityID+"\x00"+n.Kind)
	}
	slices.Sort(keys) // one order, so two requests never wait on each other
	return slices.Compact(keys)
}

func (b *Book) lockGuards(ctx context.Context, q store.Querier, n New) error {
	if b.st.Driver != store.DriverPostgres {
		return nil
	}
	for _, k := range guardKeys(n) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(k))
		if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return fmt.Errorf("lock %q: %w", strings.ReplaceAll(k, "\x00", " "), err)
		}
	}
	return nil
}

// guard checks, in the transaction about to store a new operation n, the
// rules its locks protect.
func guard(ctx context.Context, q store.Querier, n New) error {
	for _, r := range n.Refers {
		by, err := beingDeletedBy(ctx, q, r.Kind, r.ID)
		if err != nil {
			return err
		}
		if by != "" {
			return &InUseError{Kind: r.Kind, ID: r.ID, BeingDeletedBy: by}
		}
	}
	if n.Action == api.ActionDelete && n.TargetID != "" {
		users, err := usersOf(ctx, q, n.Kind, n.TargetID, n.OwnerEntityID)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return &InUseError{Kind: n.Kind, ID: n.TargetID, Users: users}
		}
	}
	if n.MaxUnfinished > 0 {
		count, err := countUnfinished(ctx, q, n.Kind, n.OwnerEntityID)
		if err != nil {
			return err
		}
		if count >= n.MaxUnfinished {
			return &CallerLimitError{Kind: n.Kind, Count: count, Max: n.MaxUnfinished}
		}
	}
	return nil
}
