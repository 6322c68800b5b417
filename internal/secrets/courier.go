// Package secrets carries the clear values of a request's secret fields
// (a Calm app's secret_variables, a module run's secret_inputs) from
// admission to the one executor step that hands them downstream — for
// every kind, with a lifecycle that ends on every ending of the operation.
//
// The values never rest in Vault KV (where a token of the environment
// could read them) nor in the database: admission, once the operation
// exists, asks Vault to wrap them (sys/wrapping/wrap, with the gateway's
// own token) in a single-use response-wrapping token whose TTL is the
// kind's step timeout, and the operation keeps that token sealed. A step
// unwraps it — presenting the wrapping token itself, so no policy of any
// token, a sub-token included, grants access to the values — and Vault
// consumes it. To keep a retry possible the step at once wraps the values
// again under a fresh token; the executor's ForgetSecrets destroys that
// one, and the end of the operation (success, failure, compensation,
// cancel, deadline) destroys whatever is left, by the wrapping accessor.
// The orchestrator's sweep takes what a crash left on ended operations.
// Each wrap, unwrap and destruction is in the audit chain, under the
// wrapping accessor's HMAC; no record holds a value or a token.
//
// A wrapping token someone else used first is detected: the step finds it
// invalid before its TTL and the chain says so.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Config configures a Courier.
type Config struct {
	// Vault is the gateway's session: it wraps, and revokes by accessor.
	Vault *vault.Session
	Book  *operations.Book
	Audit *audit.AuditChain
	// Key seals wrapping tokens at rest (AES-256-GCM, 32 bytes). Every
	// replica needs the same; DeriveKey makes it from the audit HMAC key
	// they already share.
	Key []byte
	// StepTimeout is a kind's step timeout: the TTL of its wrapping tokens.
	StepTimeout func(kind string) time.Duration
	Logger      hclog.Logger
}

// Courier hands a request's secret values to its operation's executor
// through Vault response wrapping.
type Courier struct {
	cfg  Config
	aead cipher.AEAD
}

// New returns a Courier.
func New(cfg Config) (*Courier, error) {
	if cfg.Vault == nil || cfg.Book == nil || cfg.Audit == nil || cfg.StepTimeout == nil {
		return nil, errors.New("secrets: a courier needs Vault, Book, Audit and StepTimeout")
	}
	if len(cfg.Key) != 32 {
		return nil, fmt.Errorf("secrets: the sealing key must be 32 bytes, not %d (see DeriveKey)", len(cfg.Key))
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	cfg.Key = nil // the AEAD holds it
	return &Courier{cfg: cfg, aead: aead}, nil
}

// DeriveKey derives the key that seals wrapping tokens at rest from the
// gateway's audit HMAC key (audit-hmac.key), which every replica already
// shares, so operators provision nothing new. HKDF-SHA256 uses the audit
// key as input keying material, never as an HMAC key over chosen input,
// so no digest the audit chain or a sealed request field publishes
// (HMAC(key, accessor), HMAC(key, "secret\x00"+value)) reveals it.
func DeriveKey(auditHMACKey []byte) ([]byte, error) {
	if len(auditHMACKey) < audit.MinHMACKeyLen {
		return nil, fmt.Errorf("secrets: the audit HMAC key must be at least %d bytes", audit.MinHMACKeyLen)
	}
	return hkdf.Key(sha256.New, auditHMACKey, nil, "sas secrets hand-off: wrapping-token seal v1", 32)
}

// Hand wraps the clear values of a new operation's secret fields in a
// single-use wrapping token (TTL: the kind's step timeout) and records it,
// sealed, on the operation. It satisfies admission.SecretCourier.
//
// Contract: call it only after the operation row exists, only for an
// operation this request created (never for a replayed, joined or adopted
// one: those must leave nothing in Vault), and before it is enqueued.
// It refuses an operation that already holds a hand-off or has ended. On
// error nothing is left: the wrapping token it made, if any, is revoked
// (and a token Vault would not revoke ends with its TTL); the operation
// cannot get its secrets any more, so fail it ("send the request again").
// A step that runs before Hand has stored the token gets a transient error
// and is retried.
func (c *Courier) Hand(ctx context.Context, op api.Operation, environment string, values map[string]map[string]string) error {
	if len(values) == 0 {
		return nil
	}
	if environment != op.Environment {
		return fmt.Errorf("secrets: hand-off for operation %s in environment %q, but the operation is in %q", op.ID, environment, op.Environment)
	}
	w, err := c.cfg.Book.Load(ctx, op.ID)
	if err != nil {
		return fmt.Errorf("secrets: hand-off for operation %s: %w", op.ID, err)
	}
	if operations.Terminal(w.State) {
		return fmt.Errorf("secrets: operation %s already %s; its secrets are not handed over", op.ID, w.State)
	}
	ttl := c.cfg.StepTimeout(w.Kind)
	wrapped, err := c.cfg.Vault.Wrap(ctx, payload(w.ID, values), ttl)
	if err != nil {
		return fmt.Errorf("secrets: wrap the secret values of operation %s: %w", op.ID, err)
	}
	undo := func(cause error) error {
		dctx, cancel := detached(ctx)
		defer cancel()
		if _, rerr := c.cfg.Vault.RevokeWrapping(dctx, wrapped.Accessor); rerr != nil {
			c.cfg.Logger.Error("wrapping token of a failed hand-off not revoked; its TTL ends it", "operation_id", w.ID, "expires", wrapped.ExpireTime, "error", rerr)
		}
		return cause
	}
	next, err := c.stored(w.ID, wrapped)
	if err != nil {
		return undo(err)
	}
	next, err = c.cfg.Book.SwapHandOff(ctx, w.ID, operations.HandOff{State: operations.HandOffNone}, next, true)
	if err != nil {
		if errors.Is(err, operations.ErrHandOffChanged) {
			err = fmt.Errorf("secrets: operation %s already holds a secrets hand-off, or has ended", w.ID)
		}
		return undo(err)
	}
	if err := c.record(ctx, w, wrapped.Accessor, fmt.Sprintf("request secrets wrapped for the operation's executor (single use, expires %s)", stamp(wrapped.ExpireTime))); err != nil {
		// Fail closed: no hand-off the chain does not know of.
		dctx, cancel := detached(ctx)
		defer cancel()
		_, _ = c.cfg.Book.SwapHandOff(dctx, w.ID, next, operations.HandOff{State: operations.HandOffGone}, false)
		return undo(err)
	}
	return nil
}

// payload is what a wrapping token holds: the operation it was made for
// (checked at unwrap) and the values.
func payload(opID string, values map[string]map[string]string) map[string]any {
	return map[string]any{"operation_id": opID, "secrets": values}
}

func fromPayload(opID string, data map[string]any) (vault.RequestSecrets, error) {
	if got, _ := data["operation_id"].(string); got != opID {
		return nil, fmt.Errorf("the wrapping token holds the secrets of operation %q, not %s", got, opID)
	}
	fields, ok := data["secrets"].(map[string]any)
	if !ok {
		return nil, errors.New("the wrapping token holds no secret values")
	}
	out := vault.RequestSecrets{}
	for field, v := range fields {
		m, _ := v.(map[string]any)
		values := make(map[string]string, len(m))
		for k, val := range m {
			s, ok := val.(string)
			if !ok {
				return nil, fmt.Errorf("secret %s of field %s is not a string", k, field)
			}
			values[k] = s
		}
		out[field] = values
	}
	return out, nil
}

// stored is the hand-off row for a new wrapping token.
//
// Why sealed: until it is used, a wrapping token is a bearer credential
// for the values — whoever reads it from the database (a backup, a
// PostgreSQL replica, a read-only DBA, an SQL injection) could unwrap them
// before the executor does. Vault would reveal that afterwards (the
// executor's unwrap fails, and the chain says "used by someone else"), but
// detection is not protection. Sealed with AES-256-GCM under a key only the
// gateway processes hold, the column is useless without that key too; the
// additional data binds the token to its operation and accessor, so a
// database writer cannot move one operation's token to another. The
// accessor stays in clear: it can revoke but never unwrap, and the sweep
// needs it.
func (c *Courier) stored(opID string, w vault.Wrapped) (operations.HandOff, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return operations.HandOff{}, err
	}
	sealed := c.aead.Seal(nonce, nonce, []byte(w.Token), additionalData(opID, w.Accessor))
	return operations.HandOff{State: operations.HandOffWrapped, Sealed: sealedPrefix + base64.RawStdEncoding.EncodeToString(sealed),
		Accessor: w.Accessor, ExpiresAt: w.ExpireTime}, nil
}

const sealedPrefix = "aes256gcm:v1:"

func additionalData(opID, accessor string) []byte {
	return []byte("sas secrets hand-off v1\x00" + opID + "\x00" + accessor)
}

// open unseals the wrapping token of a hand-off.
func (c *Courier) open(opID string, h operations.HandOff) (string, error) {
	raw, ok := strings.CutPrefix(h.Sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("secrets: operation %s: the stored wrapping token is not sealed the way this gateway seals", opID)
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < c.aead.NonceSize() {
		return "", fmt.Errorf("secrets: operation %s: the stored wrapping token is malformed", opID)
	}
	tok, err := c.aead.Open(nil, b[:c.aead.NonceSize()], b[c.aead.NonceSize():], additionalData(opID, h.Accessor))
	if err != nil {
		return "", fmt.Errorf("secrets: operation %s: the stored wrapping token does not open with this gateway's key (another key, or a row changed outside the gateway)", opID)
	}
	return string(tok), nil
}

// record appends an event about an operation's secrets to the audit chain
// under its request id; accessor is a wrapping token's (HMAC'd by the chain).
func (c *Courier) record(ctx context.Context, w operations.Work, accessor, outcome string) error {
	_, err := c.cfg.Audit.Append(ctx, w.Event(accessor, outcome))
	if err != nil {
		return fmt.Errorf("audit %q for operation %s: %w", outcome, w.ID, err)
	}
	return nil
}

// Sweep destroys the wrapping tokens of ended operations that still hold
// one — left by a crash between the end and the destruction, or by a
// destruction Vault did not confirm — and audits each. The orchestrator's
// sweep runs it; errors are logged and the token tried again next time.
// Replicas may sweep at once: only the one that clears the row audits.
func (c *Courier) Sweep(ctx context.Context) {
	left, err := c.cfg.Book.HandOffsToSweep(ctx, time.Now())
	if err != nil {
		c.cfg.Logger.Warn("secrets sweep", "error", err)
		return
	}
	for _, l := range left {
		if ctx.Err() != nil {
			return
		}
		vctx, cancel := context.WithTimeout(ctx, sweepVaultTimeout)
		err := c.destroy(vctx, l.Work, l.HandOff, "by the sweep after the operation ended ("+l.Work.State+")")
		cancel()
		if err != nil {
			c.cfg.Logger.Warn("secrets sweep: wrapping token not destroyed; next sweep retries", "operation_id", l.Work.ID, "error", err)
			return // Vault is not answering: the rest waits for the next sweep too
		}
	}
}

// sweepVaultTimeout bounds the sweep's wait on Vault for one token.
const sweepVaultTimeout = 5 * time.Second

// destroy revokes the hand-off's wrapping token (if any) by accessor,
// clears the row and audits it ("request secrets destroyed <why>; …").
// The row is claimed first (destroying), so of two processes at it only
// one revokes and audits; a revocation Vault does not confirm gives the
// claim back for the sweep to retry.
func (c *Courier) destroy(ctx context.Context, w operations.Work, h operations.HandOff, why string) error {
	book := c.cfg.Book
	wctx, cancel := detached(ctx)
	defer cancel()
	switch h.State {
	case operations.HandOffWrapped, operations.HandOffDestroying:
		claim := h
		claim.State = operations.HandOffDestroying
		claim, err := book.SwapHandOff(ctx, w.ID, h, claim, false)
		if errors.Is(err, operations.ErrHandOffChanged) {
			return nil // another replica's sweep has it, and audits it
		}
		if err != nil {
			return err
		}
		alive, err := c.cfg.Vault.RevokeWrapping(ctx, h.Accessor)
		if err != nil {
			back := h
			back.State = operations.HandOffWrapped
			if _, serr := book.SwapHandOff(wctx, w.ID, claim, back, false); serr != nil {
				c.cfg.Logger.Warn("destroying claim not given back; the sweep takes it over in a minute", "operation_id", w.ID, "error", serr)
			}
			return err
		}
		if _, err := book.SwapHandOff(wctx, w.ID, claim, operations.HandOff{State: operations.HandOffGone}, false); err != nil {
			return err
		}
		outcome := "request secrets destroyed " + why + "; their unused wrapping token was revoked"
		if !alive {
			outcome = "request secrets destroyed " + why + "; their wrapping token was already gone from Vault (" + goneReason(h) + ")"
		}
		if err := c.record(wctx, w, h.Accessor, outcome); err != nil {
			c.cfg.Logger.Warn("secrets destroyed but not audited", "operation_id", w.ID, "error", err)
		}
		return nil
	case operations.HandOffOpened:
		if _, err := book.SwapHandOff(wctx, w.ID, h, operations.HandOff{State: operations.HandOffGone}, false); err != nil && !errors.Is(err, operations.ErrHandOffChanged) {
			return err
		}
		return nil // nothing in Vault: a step's memory held them, and that step is over
	}
	return nil
}

func goneReason(h operations.HandOff) string {
	if expired(h) {
		return "its TTL passed at " + stamp(h.ExpiresAt)
	}
	return "used or revoked before its TTL"
}

func expired(h operations.HandOff) bool {
	return !h.ExpiresAt.IsZero() && time.Now().After(h.ExpiresAt)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// detached is a short context that outlives a cancelled step: bookkeeping
// and destruction must not be cut off with the work they follow.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
