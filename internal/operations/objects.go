package operations

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Outcome says how Create answered a request.
type Outcome string

const (
	// Created: a new pending operation will make the object.
	Created Outcome = "created"
	// Replayed: an earlier request with this idempotency key made this operation.
	Replayed Outcome = "replayed"
	// Joined: an unfinished create by the same owner, in the same bundle and
	// environment with the same spec, is already making this object.
	Joined Outcome = "joined"
	// Adopted: the object exists for the same owner, context and spec; a
	// succeeded operation records that this request took it over.
	Adopted Outcome = "adopted"
)

// Resolution is what a request would get: an outcome and the operation or
// resource it refers to.
type Resolution struct {
	Outcome   Outcome
	Operation *api.Operation // Replayed, Joined (and Adopted once stored)
	Resource  *Resource      // Adopted
}

// ConflictError means a create names an object (by its natural key) that
// exists, or is being made, and that this request cannot adopt.
type ConflictError struct {
	Kind, NaturalKey string
	// ResourceID and OperationID are set only when the caller owns the object.
	ResourceID, OperationID string
	Reason                  string
}

func (e *ConflictError) Error() string {
	what := fmt.Sprintf("%s %q", e.Kind, e.NaturalKey)
	switch {
	case e.ResourceID != "":
		what += " already exists as " + e.ResourceID
	case e.OperationID != "":
		what += " is being made by operation " + e.OperationID
	default:
		what += " already exists"
	}
	return what + ": " + e.Reason
}

// Resolve says, without changing anything, what Create would answer for n.
// The gateway audits that answer before Create makes it so.
func (b *Book) Resolve(ctx context.Context, n New) (Resolution, error) {
	return resolve(ctx, b.st.DB, n, requestHash(n))
}

// resolve applies the rules in order: the idempotency key, then the
// natural key (an existing resource, then an unfinished create).
func resolve(ctx context.Context, q store.Querier, n New, hash string) (Resolution, error) {
	if prior, err := replay(ctx, q, n, hash); err != nil || prior != nil {
		return Resolution{Outcome: Replayed, Operation: prior}, err
	}
	if n.Object == nil {
		return Resolution{Outcome: Created}, nil
	}
	key := api.NaturalKeyIn(n.Object, n.Environment)
	row := q.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE kind = $1 AND natural_key = $2`, n.Kind, key)
	res, err := scanResource(row.Scan)
	switch {
	case err == nil:
		if err := sameObject(n, key, res.OwnerEntityID, res.Bundle, res.Environment, res.Spec, res.ID, ""); err != nil {
			return Resolution{}, err
		}
		// Adopting what is being deleted would hand back an object about
		// to vanish (a destroy cut short, then an apply): not yet.
		var deleting string
		err := q.QueryRowContext(ctx, `SELECT id FROM operations WHERE kind = $1 AND target_id = $2 AND action = $3 AND state IN ($4, $5) LIMIT 1`,
			n.Kind, res.ID, api.ActionDelete, api.OperationPending, api.OperationRunning).Scan(&deleting)
		switch {
		case err == nil:
			return Resolution{}, &ConflictError{Kind: n.Kind, NaturalKey: key, ResourceID: res.ID,
				Reason: "it is being deleted by operation " + deleting + "; apply again once that has finished"}
		case !errors.Is(err, sql.ErrNoRows):
			return Resolution{}, fmt.Errorf("look up deletes of %s: %w", res.ID, err)
		}
		return Resolution{Outcome: Adopted, Resource: &res}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Resolution{}, fmt.Errorf("look up %s %q: %w", n.Kind, key, err)
	}
	var id, entity, bundle, env, req string
	err = q.QueryRowContext(ctx, `SELECT id, owner_entity_id, bundle, environment, request_json FROM operations
		WHERE kind = $1 AND natural_key = $2 AND action = $3 AND state IN ($4, $5) ORDER BY created_ns LIMIT 1`,
		n.Kind, key, api.ActionCreate, api.OperationPending, api.OperationRunning).Scan(&id, &entity, &bundle, &env, &req)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Resolution{Outcome: Created}, nil
	case err != nil:
		return Resolution{}, fmt.Errorf("look up unfinished creates of %s %q: %w", n.Kind, key, err)
	}
	if err := sameObject(n, key, entity, bundle, env, []byte(req), "", id); err != nil {
		return Resolution{}, err
	}
	op, err := get(ctx, q, id)
	if err != nil {
		return Resolution{}, err
	}
	return Resolution{Outcome: Joined, Operation: &op}, nil
}

// sameObject checks that an object found by n's natural key is n's to
// adopt: the same owner, made in the same bundle and environment, with
// the same spec. Anything else is a conflict that says what differs and
// what to do; another owner's object is not described beyond that.
func sameObject(n New, key, entity, bundle, env string, spec []byte, resourceID, opID string) error {
	conflict := &ConflictError{Kind: n.Kind, NaturalKey: key}
	if entity != n.OwnerEntityID {
		conflict.Reason = "it belongs to another caller; choose another name"
		return conflict
	}
	conflict.ResourceID, conflict.OperationID = resourceID, opID
	next := "import it into your state (terraform import <address> " + resourceID + ") and manage it there, or choose another name"
	if resourceID == "" {
		next = "wait for that operation, then import what it made, or choose another name"
	}
	if bundle != n.Bundle || env != n.Environment {
		conflict.Reason = fmt.Sprintf("it was made under bundle %s in environment %s, not %s in %s; %s",
			bundle, env, n.Bundle, n.Environment, next)
		return conflict
	}
	diff, err := api.SpecDiff(n.Kind, spec, n.Object)
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		conflict.Reason = fmt.Sprintf("it was made with a different %s; %s", strings.Join(diff, ", "), next)
		return conflict
	}
	return nil
}

// adopt stores a succeeded operation recording that this request took
// over res; its result is the resource as the book knows it.
func adopt(ctx context.Context, q store.Querier, n New, hash string, res *Resource) (api.Operation, error) {
	result := map[string]any{}
	for k, v := range res.Attributes {
		result[k] = v
	}
	result["resource_id"], result["adopted"] = res.ID, true
	raw, err := json.Marshal(result)
	if err != nil {
		return api.Operation{}, err
	}
	id := newID()
	if err := insert(ctx, q, id, n, hash, api.OperationSucceeded, res.ID, string(raw)); err != nil {
		return api.Operation{}, err
	}
	return get(ctx, q, id)
}

func insert(ctx context.Context, q store.Querier, id string, n New, hash, state, resourceID, result string) error {
	var key any
	if n.IdempotencyKey != "" {
		key = n.IdempotencyKey
	}
	natural := ""
	if n.Object != nil {
		natural = api.NaturalKeyIn(n.Object, n.Environment)
	}
	now := time.Now().UTC().UnixNano()
	approval, err := json.Marshal(n.Approval)
	if err != nil {
		return fmt.Errorf("store operation: approval: %w", err)
	}
	_, err = q.ExecContext(ctx, `INSERT INTO operations (id, kind, action, target_id, state, attempts, owner_entity_id, owner_name,
		bundle, environment, request_id, decision_id, idempotency_key, request_hash, request_json, result_json, error, created_ns, updated_ns, natural_key,
		bundle_revision, approval_json)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '', $16, $16, $17, $18, $19)`,
		id, n.Kind, n.Action, firstNonEmpty(n.TargetID, resourceID), state, n.OwnerEntityID, n.Owner, n.Bundle, n.Environment,
		n.RequestID, n.DecisionID, key, hash, string(n.Request), result, now, natural, n.Approval.BundleRevision, string(approval))
	if err != nil {
		return fmt.Errorf("store operation: %w", err)
	}
	return nil
}

// lockKeys serialises, on PostgreSQL, concurrent requests that share an
// idempotency key or a natural key (two replicas included) for the rest
// of the transaction; SQLite's BEGIN IMMEDIATE already serialises writers.
// Idempotency first, then the natural key: one order, so no deadlock.
// (A delete's target lookup may run before the lock on that key: a key
// set once at create and never changed, so reading it unlocked is safe.)
func (b *Book) lockKeys(ctx context.Context, q store.Querier, n New) error {
	if b.st.Driver != store.DriverPostgres {
		return nil
	}
	var keys []string
	if n.IdempotencyKey != "" {
		keys = append(keys, "idempotency\x00"+n.OwnerEntityID+"\x00"+n.IdempotencyKey)
	}
	natural := ""
	if n.Object != nil {
		natural = api.NaturalKeyIn(n.Object, n.Environment)
	} else if n.TargetID != "" {
		// An update or delete holds its target's key too, so a create
		// cannot adopt the object while a delete of it is being stored.
		err := q.QueryRowContext(ctx, `SELECT natural_key FROM resources WHERE id = $1 AND kind = $2`, n.TargetID, n.Kind).Scan(&natural)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up %s: %w", n.TargetID, err)
		}
	}
	if natural != "" {
		keys = append(keys, "natural\x00"+n.Kind+"\x00"+natural)
	}
	for _, k := range keys {
		h := fnv.New64a()
		_, _ = h.Write([]byte(k))
		if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return fmt.Errorf("lock %q: %w", strings.ReplaceAll(k, "\x00", " "), err)
		}
	}
	return nil
}

// BackfillNaturalKeys gives resources and unfinished creates stored before
// natural keys existed (schema version 5) their key, so a create repeated
// after an upgrade still finds them. It is idempotent and cheap when done.
func (b *Book) BackfillNaturalKeys(ctx context.Context) (int, error) {
	type row struct{ table, id, kind, env, spec string }
	var todo []row
	for _, q := range []struct{ table, query string }{
		{"resources", `SELECT id, kind, environment, spec_json FROM resources WHERE natural_key = ''`},
		{"operations", `SELECT id, kind, environment, request_json FROM operations WHERE natural_key = '' AND action = 'create' AND state IN ('pending', 'running')`},
	} {
		rows, err := b.st.DB.QueryContext(ctx, q.query)
		if err != nil {
			return 0, fmt.Errorf("natural keys: %w", err)
		}
		for rows.Next() {
			r := row{table: q.table}
			if err := rows.Scan(&r.id, &r.kind, &r.env, &r.spec); err != nil {
				rows.Close()
				return 0, fmt.Errorf("natural keys: %w", err)
			}
			todo = append(todo, r)
		}
		rows.Close()
	}
	n := 0
	for _, r := range todo {
		obj, ok := api.NewRequestBody(r.kind, api.ActionCreate).(api.NaturalKeyed)
		if !ok || json.Unmarshal([]byte(r.spec), obj) != nil {
			continue
		}
		if _, err := b.st.DB.ExecContext(ctx, `UPDATE `+r.table+` SET natural_key = $1 WHERE id = $2 AND natural_key = ''`, api.NaturalKeyIn(obj, r.env), r.id); err != nil {
			return n, fmt.Errorf("natural key of %s: %w", r.id, err)
		}
		n++
	}
	return n, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
