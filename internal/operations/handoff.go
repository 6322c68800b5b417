package operations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// States of an operation's secrets hand-off (internal/secrets): how the
// clear values of its request's secret fields travel from admission to
// its executor, in a single-use Vault response-wrapping token.
const (
	// HandOffNone: nothing was handed over (yet): the request has no
	// secrets, or admission has not stored the wrapping token yet.
	HandOffNone = ""
	// HandOffWrapped: a wrapping token waits for a step (Sealed, Accessor).
	HandOffWrapped = "wrapped"
	// HandOffOpened: a step unwrapped the token; the values are only in
	// that step's memory (a crash there loses them).
	HandOffOpened = "opened"
	// HandOffDestroying: one process (a step ending, or one replica's
	// sweep) is revoking the token; a claim older than a minute was left by
	// a process that died, and the sweep takes it over.
	HandOffDestroying = "destroying"
	// HandOffGone: used and forgotten, or destroyed: nothing is left anywhere.
	HandOffGone = "gone"
)

// destroyClaimFor: a destroying claim older than this was left by a process that died.
const destroyClaimFor = time.Minute

// HandOff is an operation's secrets hand-off as the book keeps it: the
// wrapping token only sealed (never in clear), its accessor (which can
// revoke the token but not unwrap it) and expiry.
type HandOff struct {
	State     string
	Sealed    string
	Accessor  string
	ExpiresAt time.Time
	// Version is the row's updated_ns when read (or swapped in): a
	// destroying claim is taken over only from the version it was seen at.
	Version int64
}

// ErrHandOffChanged: the hand-off was not in the state the change expected
// (another step, replica or sweep changed it first).
var ErrHandOffChanged = errors.New("the operation's secrets hand-off changed meanwhile")

// HandOff reads an operation's secrets hand-off.
func (b *Book) HandOff(ctx context.Context, id string) (HandOff, error) {
	var h HandOff
	var exp int64
	err := b.st.DB.QueryRowContext(ctx, `SELECT secrets_handoff, secrets_wrapped, secrets_accessor, secrets_expires_ns, updated_ns FROM operations WHERE id = $1`, id).
		Scan(&h.State, &h.Sealed, &h.Accessor, &exp, &h.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, fmt.Errorf("operation %s: secrets hand-off: %w", id, err)
	}
	if exp != 0 {
		h.ExpiresAt = time.Unix(0, exp)
	}
	return h, nil
}

// SwapHandOff moves an operation's hand-off from what the caller last saw
// (its state and accessor; for a destroying claim, also its version) to
// next, and returns next as stored (with its version); ErrHandOffChanged
// when the row is not what from says. With unfinishedOnly, an operation
// that has ended is refused too (ErrHandOffChanged): nothing is handed to
// an operation that will never run another step.
func (b *Book) SwapHandOff(ctx context.Context, id string, from, next HandOff, unfinishedOnly bool) (HandOff, error) {
	var exp int64
	if !next.ExpiresAt.IsZero() {
		exp = next.ExpiresAt.UnixNano()
	}
	next.Version = time.Now().UnixNano()
	q := `UPDATE operations SET secrets_handoff = $1, secrets_wrapped = $2, secrets_accessor = $3, secrets_expires_ns = $4, updated_ns = $5
		WHERE id = $6 AND secrets_handoff = $7 AND secrets_accessor = $8`
	args := []any{next.State, next.Sealed, next.Accessor, exp, next.Version, id, from.State, from.Accessor}
	if from.State == HandOffDestroying {
		q += fmt.Sprintf(` AND updated_ns = $%d`, len(args)+1)
		args = append(args, from.Version)
	}
	if unfinishedOnly {
		q += fmt.Sprintf(` AND state IN ($%d, $%d)`, len(args)+1, len(args)+2)
		args = append(args, api.OperationPending, api.OperationRunning)
	}
	res, err := b.st.DB.ExecContext(ctx, q, args...)
	if err != nil {
		return HandOff{}, fmt.Errorf("operation %s: secrets hand-off: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return HandOff{}, err
	}
	if n != 1 {
		return HandOff{}, ErrHandOffChanged
	}
	return next, nil
}

// HandOffLeftover is an ended operation still holding a secrets hand-off.
type HandOffLeftover struct {
	Work    Work // what the audit records of its destruction say
	HandOff HandOff
}

// HandOffsToSweep lists ended operations whose hand-off was never cleared
// (a crash, or Vault down, between the end and the destruction), with
// destroying claims left by a process that died. Each hand-off is as the
// listing saw it, so a claim taken meanwhile makes its swap fail.
func (b *Book) HandOffsToSweep(ctx context.Context, now time.Time) ([]HandOffLeftover, error) {
	rows, err := b.st.DB.QueryContext(ctx, `SELECT id, secrets_handoff, secrets_wrapped, secrets_accessor, secrets_expires_ns, updated_ns FROM operations
		WHERE (secrets_handoff IN ($1, $2) OR (secrets_handoff = $3 AND updated_ns < $4)) AND state IN ($5, $6, $7) ORDER BY updated_ns`,
		HandOffWrapped, HandOffOpened, HandOffDestroying, now.Add(-destroyClaimFor).UnixNano(),
		api.OperationSucceeded, api.OperationFailed, api.OperationCancelled)
	if err != nil {
		return nil, err
	}
	var out []HandOffLeftover
	for rows.Next() {
		var l HandOffLeftover
		var exp int64
		h := &l.HandOff
		if err := rows.Scan(&l.Work.ID, &h.State, &h.Sealed, &h.Accessor, &exp, &h.Version); err != nil {
			rows.Close()
			return nil, err
		}
		if exp != 0 {
			h.ExpiresAt = time.Unix(0, exp)
		}
		out = append(out, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		w, err := b.Load(ctx, out[i].Work.ID)
		if err != nil {
			return nil, err
		}
		out[i].Work = w
	}
	return out, nil
}
