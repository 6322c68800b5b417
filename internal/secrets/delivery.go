package secrets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// ErrNotHandedOver: admission has not stored the operation's wrapping
// token yet (it does so right after storing the operation; if it cannot,
// it fails the operation). Transient: the step is retried.
var ErrNotHandedOver = errors.New("the request's secret values have not been handed over to the operation yet; retrying")

// Delivery is one step's access to its operation's secrets. The
// orchestrator makes one per step (Deliver) and gives the executor its
// Secrets and Forget as Job.Secrets and Job.ForgetSecrets; it calls End
// when the step ends the operation and Settle when it does not. A nil
// Delivery (no Courier configured) has no secrets to give.
type Delivery struct {
	c       *Courier
	w       operations.Work
	attempt int

	mu        sync.Mutex
	values    vault.RequestSecrets // unwrapped by this step, until it ends
	cur       operations.HandOff   // the hand-off as this step last left it
	opened    bool                 // this step unwrapped the values
	kept      bool                 // a stored wrapping token holds them for a later step
	forgotten bool
	over      bool
}

// Deliver starts a step's delivery; nothing is read before the executor asks.
func (c *Courier) Deliver(w operations.Work, attempt int) *Delivery {
	if c == nil {
		return nil
	}
	return &Delivery{c: c, w: w, attempt: attempt}
}

// Secrets unwraps the operation's wrapping token (Vault consumes it) and
// returns the values; later calls in the same step return the same values.
// At once it wraps them again in a fresh single-use token for a later
// attempt (a step that fails transiently is retried with them), which
// Forget, or the end of the operation, destroys.
//
// vault.ErrRequestSecretsGone when there are none to give: forgotten by an
// earlier step, destroyed, lost with a step that died, or their token
// expired or was used by someone else (the audit chain records which);
// ErrNotHandedOver (transient) while admission has not stored any.
func (d *Delivery) Secrets(ctx context.Context) (vault.RequestSecrets, error) {
	if d == nil {
		return nil, vault.ErrRequestSecretsGone
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.over || d.forgotten {
		return nil, vault.ErrRequestSecretsGone
	}
	if d.values != nil {
		return clone(d.values), nil
	}
	h, err := d.c.cfg.Book.HandOff(ctx, d.w.ID)
	if err != nil {
		return nil, err
	}
	d.cur = h
	switch h.State {
	case operations.HandOffNone:
		return nil, ErrNotHandedOver
	case operations.HandOffGone, operations.HandOffDestroying:
		return nil, vault.ErrRequestSecretsGone
	case operations.HandOffOpened:
		// An earlier step unwrapped them and ended without keeping them (it
		// died mid-step, or Vault refused the new wrap): they are lost.
		d.gone(ctx, h, "", fmt.Sprintf("request secrets lost: an earlier step unwrapped them and ended without wrapping them again (attempt %d found none)", d.attempt))
		return nil, vault.ErrRequestSecretsGone
	}
	token, err := d.c.open(d.w.ID, h)
	if err != nil {
		return nil, err
	}
	data, err := d.c.cfg.Vault.Unwrap(ctx, token)
	if errors.Is(err, vault.ErrWrappingTokenInvalid) {
		outcome := fmt.Sprintf("request secrets missing: their wrapping token was used or revoked by someone else before attempt %d could unwrap it", d.attempt)
		if expired(h) {
			outcome = "request secrets missing: their wrapping token's TTL (the kind's step timeout) passed at " + stamp(h.ExpiresAt) + " before a step used it"
		}
		d.gone(ctx, h, h.Accessor, outcome)
		return nil, vault.ErrRequestSecretsGone
	}
	if err != nil {
		return nil, err // Vault unavailable: transient, the token may still be there
	}
	values, err := fromPayload(d.w.ID, data)
	if err != nil {
		d.gone(ctx, h, h.Accessor, "request secrets refused: "+err.Error())
		return nil, vault.ErrRequestSecretsGone
	}
	d.values, d.opened = values, true
	audited := d.c.record(ctx, d.w, h.Accessor, fmt.Sprintf("request secrets unwrapped by attempt %d", d.attempt))
	wctx, cancel := detached(ctx)
	defer cancel()
	d.keep(wctx, h)
	if audited != nil {
		d.values = nil
		return nil, audited // fail closed: nothing unaudited reaches the downstream system (a retry has them)
	}
	return clone(values), nil
}

// keep wraps this step's values again in a fresh single-use token and
// stores it in place of from (whose token Vault consumed); when it cannot,
// the hand-off is marked opened: the values then live only in this step.
func (d *Delivery) keep(ctx context.Context, from operations.HandOff) {
	book := d.c.cfg.Book
	opened := operations.HandOff{State: operations.HandOffOpened}
	fail := func(err error) {
		d.c.cfg.Logger.Error("request secrets not wrapped again; a retry of this operation will not have them", "operation_id", d.w.ID, "error", err)
		if cur, serr := book.SwapHandOff(ctx, d.w.ID, from, opened, false); serr == nil {
			d.cur = cur
		}
	}
	wrapped, err := d.c.cfg.Vault.Wrap(ctx, payload(d.w.ID, d.values), d.c.cfg.StepTimeout(d.w.Kind))
	if err != nil {
		fail(err)
		return
	}
	next, err := d.c.stored(d.w.ID, wrapped)
	if err == nil {
		next, err = book.SwapHandOff(ctx, d.w.ID, from, next, true)
	}
	if err != nil {
		if _, rerr := d.c.cfg.Vault.RevokeWrapping(ctx, wrapped.Accessor); rerr != nil {
			d.c.cfg.Logger.Error("unrecorded wrapping token not revoked; its TTL ends it", "operation_id", d.w.ID, "expires", wrapped.ExpireTime, "error", rerr)
		}
		fail(err)
		return
	}
	d.cur, d.kept = next, true
	if err := d.c.record(ctx, d.w, wrapped.Accessor, fmt.Sprintf("request secrets wrapped again for a later attempt (single use, expires %s)", stamp(wrapped.ExpireTime))); err != nil {
		d.c.cfg.Logger.Warn("re-wrap of request secrets not audited", "operation_id", d.w.ID, "error", err)
	}
}

// gone marks the hand-off h gone and audits why (once: only the step that
// changes the row records it).
func (d *Delivery) gone(ctx context.Context, h operations.HandOff, accessor, outcome string) {
	wctx, cancel := detached(ctx)
	defer cancel()
	cur, err := d.c.cfg.Book.SwapHandOff(wctx, d.w.ID, h, operations.HandOff{State: operations.HandOffGone}, false)
	if err != nil {
		return
	}
	d.cur = cur
	if err := d.c.record(wctx, d.w, accessor, outcome); err != nil {
		d.c.cfg.Logger.Warn("secrets event not audited", "operation_id", d.w.ID, "outcome", outcome, "error", err)
	}
}

// Forget ends the operation's secrets for good — the downstream system
// holds them, or they are not needed any more: this step drops its copy
// and the wrapping token kept for a later attempt is revoked. Afterwards
// Secrets, in any step, is vault.ErrRequestSecretsGone. An error (Vault
// did not confirm) leaves the token to the end of the operation.
func (d *Delivery) Forget(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgotten, d.values = true, nil
	h, err := d.c.cfg.Book.HandOff(ctx, d.w.ID)
	if err != nil {
		return err
	}
	d.cur = h
	switch h.State {
	case operations.HandOffWrapped, operations.HandOffDestroying:
		if err := d.c.destroy(ctx, d.w, h, fmt.Sprintf("at the executor's request (attempt %d)", d.attempt)); err != nil {
			return fmt.Errorf("forget the request's secrets: %w", err)
		}
	case operations.HandOffOpened:
		d.gone(ctx, h, "", fmt.Sprintf("request secrets forgotten at the executor's request (attempt %d); no wrapping token held them", d.attempt))
	}
	d.cur = operations.HandOff{State: operations.HandOffGone}
	return nil
}

// Settle ends a step that leaves the operation unfinished (a retry, a
// wait, a failed compensation, a panic): if this step unwrapped the values
// and could not keep them yet, it tries once more, so the next attempt has
// them; then the step's copy is dropped.
func (d *Delivery) Settle(ctx context.Context) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.over {
		return
	}
	d.over = true
	if d.opened && !d.forgotten && !d.kept && d.values != nil {
		d.keep(ctx, d.cur)
	}
	d.values = nil
}

// End ends a step that ends the operation (any terminal state, state):
// whatever wrapping token it still holds is revoked by accessor and the
// operation cleared of it, audited; the step's copy is dropped. Call it
// before the operation is marked ended. An error (Vault did not confirm)
// leaves the token to the sweep.
func (d *Delivery) End(ctx context.Context, state string) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.over, d.values = true, nil
	h, err := d.c.cfg.Book.HandOff(ctx, d.w.ID)
	if err != nil {
		return err
	}
	return d.c.destroy(ctx, d.w, h, "as the operation ended ("+state+")")
}

func clone(v vault.RequestSecrets) vault.RequestSecrets {
	out := make(vault.RequestSecrets, len(v))
	for k, m := range v {
		out[k] = maps.Clone(m)
	}
	return out
}
