package operations

import (
	"context"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Sub-token ledger states.
const (
	SubTokenLive          = "live"           // minted; its attempt (or read) may still use it
	SubTokenRevokePending = "revoke_pending" // revocation failed; the sweep retries it
	SubTokenSweeping      = "sweeping"       // one sweep (of one replica) is on it now
)

// sweepClaimFor: a claim older than this was left by a sweep that died.
const sweepClaimFor = time.Minute

// SubTokenRecord is a minted sub-token as the ledger keeps it: the
// accessor (never the token) and the context its audit records carry.
type SubTokenRecord struct {
	Accessor    string
	OperationID string
	Purpose     string // "operation" or "read"
	State       string
	Work        Work // what the audit records of this token say (request, owner, bundle…)
	ExpiresAt   time.Time
	Attempts    int // failed revocations so far
	LastError   string
	UpdatedNs   int64 // the row's version, for ClaimSubToken
}

// RecordSubToken enters a minted sub-token in the ledger, before its first
// use: from here until Vault confirms its revocation (or its TTL has
// passed) the gateway knows it is there.
func (b *Book) RecordSubToken(ctx context.Context, r SubTokenRecord) error {
	now := time.Now().UnixNano()
	w := r.Work
	_, err := b.st.DB.ExecContext(ctx, `INSERT INTO subtokens (accessor, operation_id, purpose, state, request_id, owner_entity_id, owner_name,
		bundle, environment, kind, action, decision_id, expires_ns, revoke_attempts, last_error, created_ns, updated_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, '', $14, $14)`,
		r.Accessor, r.OperationID, r.Purpose, SubTokenLive, w.RequestID, w.OwnerEntityID, w.Owner, w.Bundle, w.Environment,
		w.Kind, w.Action, w.DecisionID, r.ExpiresAt.UnixNano(), now)
	return err
}

// SubTokenGone removes a sub-token Vault no longer holds.
func (b *Book) SubTokenGone(ctx context.Context, accessor string) error {
	_, err := b.st.DB.ExecContext(ctx, `DELETE FROM subtokens WHERE accessor = $1`, accessor)
	return err
}

// SubTokenRevokeFailed marks a revocation that Vault did not confirm, for
// the sweep; it reports whether this was the first failure.
func (b *Book) SubTokenRevokeFailed(ctx context.Context, accessor string, cause error) (first bool, err error) {
	err = b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		var attempts int
		if err := q.QueryRowContext(ctx, `SELECT revoke_attempts FROM subtokens WHERE accessor = $1`, accessor).Scan(&attempts); err != nil {
			return err
		}
		first = attempts == 0
		_, err := q.ExecContext(ctx, `UPDATE subtokens SET state = $1, revoke_attempts = revoke_attempts + 1, last_error = $2, updated_ns = $3
			WHERE accessor = $4`, SubTokenRevokePending, cause.Error(), time.Now().UnixNano(), accessor)
		return err
	})
	return first, err
}

// SubTokensToSweep lists the sub-tokens that no attempt will revoke
// itself: those whose revocation failed, those whose TTL has passed, and
// those of operations already ended (their attempt died between Vault's
// answer and the ledger's).
func (b *Book) SubTokensToSweep(ctx context.Context, now time.Time) ([]SubTokenRecord, error) {
	rows, err := b.st.DB.QueryContext(ctx, `SELECT s.accessor, s.operation_id, s.purpose, s.state, s.request_id, s.owner_entity_id, s.owner_name,
		s.bundle, s.environment, s.kind, s.action, s.decision_id, s.expires_ns, s.revoke_attempts, s.last_error, s.updated_ns
		FROM subtokens s LEFT JOIN operations o ON o.id = s.operation_id AND s.purpose = 'operation'
		WHERE (s.state <> $1 OR s.updated_ns < $2) AND (s.state <> $3 OR s.expires_ns < $4 OR o.state IN ($5, $6, $7))
		ORDER BY s.created_ns`, SubTokenSweeping, now.Add(-sweepClaimFor).UnixNano(), SubTokenLive, now.UnixNano(),
		api.OperationSucceeded, api.OperationFailed, api.OperationCancelled)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SubTokenRecord
	for rows.Next() {
		var r SubTokenRecord
		var exp int64
		w := &r.Work
		if err := rows.Scan(&r.Accessor, &r.OperationID, &r.Purpose, &r.State, &w.RequestID, &w.OwnerEntityID, &w.Owner,
			&w.Bundle, &w.Environment, &w.Kind, &w.Action, &w.DecisionID, &exp, &r.Attempts, &r.LastError, &r.UpdatedNs); err != nil {
			return nil, err
		}
		w.ID = r.OperationID
		r.ExpiresAt = time.Unix(0, exp)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ClaimSubToken makes this sweep the one handling r (replicas sweep the
// same ledger): false when another sweep or the token's own attempt has
// changed the row since it was listed.
func (b *Book) ClaimSubToken(ctx context.Context, r SubTokenRecord) (bool, error) {
	res, err := b.st.DB.ExecContext(ctx, `UPDATE subtokens SET state = $1, updated_ns = $2 WHERE accessor = $3 AND updated_ns = $4`,
		SubTokenSweeping, time.Now().UnixNano(), r.Accessor, r.UpdatedNs)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
