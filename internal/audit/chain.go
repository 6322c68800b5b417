package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Defaults for Options.
const (
	DefaultCheckpointEvery = 100
	DefaultMaxBatch        = 256
	DefaultWriteTimeout    = 10 * time.Second
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: chain closed")

// Options configure an AuditChain.
type Options struct {
	// HMACKey keys the token-accessor HMAC (≥ MinHMACKeyLen bytes). Required.
	HMACKey []byte
	// SigningKey signs checkpoints. Required.
	SigningKey ed25519.PrivateKey
	// CheckpointEvery signs a checkpoint whenever seq reaches a multiple of
	// it, in the same transaction as that record. 0 means
	// DefaultCheckpointEvery; negative turns automatic checkpoints off.
	CheckpointEvery int
	// MaxBatch caps how many concurrent appends share one transaction
	// (group commit). 0 means DefaultMaxBatch.
	MaxBatch int
	// WriteTimeout bounds one batch's transaction. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// AuditChain appends to, checkpoints and reads the hash-chained audit log
// in a store. One AuditChain per process; any number of processes
// (gateway replicas) may append to the same PostgreSQL database, and the
// chain stays one contiguous sequence: each append transaction locks the
// chain-head row (SELECT … FOR UPDATE; BEGIN IMMEDIATE on SQLite).
//
// Within a process, concurrent Appends are group-committed: a single
// writer goroutine takes whatever is waiting (up to MaxBatch) and writes
// it in one transaction, so many requests share one fsync.
type AuditChain struct {
	st         *store.Store
	hmacKey    []byte
	signingKey ed25519.PrivateKey
	keyID      string
	every      int64
	maxBatch   int
	timeout    time.Duration

	reqs      chan *pending
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type pending struct {
	w    row
	form canonicalForm // w's canonical encoding without seq and prev_hash
	done chan error    // buffered; receives exactly once
}

// New checks the store holds a readable chain and starts the writer. It
// fails — and the gateway must not start — if the keys are missing or
// malformed, the store does not answer, or the store's latest checkpoint
// was signed by a different key.
func New(ctx context.Context, st *store.Store, opts Options) (*AuditChain, error) {
	if st == nil {
		return nil, errors.New("audit: no store")
	}
	if len(opts.HMACKey) < MinHMACKeyLen {
		return nil, fmt.Errorf("audit: HMAC key must be at least %d bytes", MinHMACKeyLen)
	}
	if len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: an Ed25519 signing key is required")
	}
	c := &AuditChain{
		st:         st,
		hmacKey:    append([]byte(nil), opts.HMACKey...),
		signingKey: opts.SigningKey,
		keyID:      KeyID(opts.SigningKey.Public().(ed25519.PublicKey)),
		every:      int64(opts.CheckpointEvery),
		maxBatch:   opts.MaxBatch,
		timeout:    opts.WriteTimeout,
		reqs:       make(chan *pending),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if c.every == 0 {
		c.every = DefaultCheckpointEvery
	}
	if c.maxBatch <= 0 {
		c.maxBatch = DefaultMaxBatch
	}
	if c.timeout <= 0 {
		c.timeout = DefaultWriteTimeout
	}
	if _, _, err := readHead(ctx, st.DB, false); err != nil {
		return nil, err
	}
	var lastKey string
	err := st.DB.QueryRowContext(ctx, `SELECT key_id FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&lastKey)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	case lastKey != c.keyID:
		return nil, fmt.Errorf("audit: the latest checkpoint was signed by key %s, but the configured signing key is %s; restore the original key (key rotation is not supported)", lastKey, c.keyID)
	}
	go c.writer()
	return c, nil
}

// Store is the store the chain writes to.
func (c *AuditChain) Store() *store.Store { return c.st }

// VerifyKey is the public half of the signing key.
func (c *AuditChain) VerifyKey() ed25519.PublicKey {
	return c.signingKey.Public().(ed25519.PublicKey)
}

// HashAccessor is the keyed form of a token accessor that records carry:
// lowercase hex HMAC-SHA256(HMACKey, accessor). Use it to look up a
// token's records (Filter.AccessorHMAC).
func (c *AuditChain) HashAccessor(accessor string) string {
	m := hmac.New(sha256.New, c.hmacKey)
	m.Write([]byte(accessor))
	return hex.EncodeToString(m.Sum(nil))
}

// SealSecret is the keyed digest that stands in for a secret value in
// requests, operations and the audit trail: "hmac-sha256:" and the lowercase
// hex HMAC-SHA256(HMACKey, "secret\x00" + value). Equal values give equal
// digests (a retried create is recognised as the same request) without the
// value being recoverable from the database.
func (c *AuditChain) SealSecret(value string) string {
	m := hmac.New(sha256.New, c.hmacKey)
	m.Write([]byte("secret\x00"))
	m.Write([]byte(value))
	return SealedPrefix + hex.EncodeToString(m.Sum(nil))
}

// SealedPrefix starts every sealed secret.
const SealedPrefix = "hmac-sha256:"

// Append records r durably and returns it as stored, with Seq, Time,
// TokenAccessorHMAC, PrevHash and Hash set. On any error the request it
// describes must not proceed. An Append that returned an error (for
// instance because ctx ended while waiting) may still have been recorded;
// a nil error always means it was.
func (c *AuditChain) Append(ctx context.Context, r Record) (Record, error) {
	if err := c.normalize(&r); err != nil {
		return Record{}, err
	}
	w, err := toRow(r)
	if err != nil {
		return Record{}, fmt.Errorf("audit: encode record: %w", err)
	}
	form, err := w.form()
	if err != nil {
		return Record{}, fmt.Errorf("audit: encode record: %w", err)
	}
	p := &pending{w: w, form: form, done: make(chan error, 1)}
	select {
	case c.reqs <- p:
	case <-c.quit:
		return Record{}, ErrClosed
	case <-ctx.Done():
		return Record{}, fmt.Errorf("audit: %w", ctx.Err())
	}
	select {
	case err := <-p.done:
		if err != nil {
			return Record{}, err
		}
	case <-ctx.Done():
		return Record{}, fmt.Errorf("audit: %w", ctx.Err())
	}
	r.Seq, r.PrevHash, r.Hash = p.w.seq, p.w.prevHash, p.w.hash
	return r, nil
}

// normalize validates r, fills what the chain owns, and cleans strings.
func (c *AuditChain) normalize(r *Record) error {
	if r.RequestID == "" {
		return errors.New("audit: record has no request_id")
	}
	if !r.Decision.Valid() {
		return fmt.Errorf("audit: record %s: decision %q is not allow, deny, refused or error", r.RequestID, r.Decision)
	}
	if r.TokenAccessorHMAC != "" {
		return fmt.Errorf("audit: record %s: set TokenAccessor, not TokenAccessorHMAC; the chain computes the HMAC", r.RequestID)
	}
	if r.TokenAccessor != "" {
		r.TokenAccessorHMAC = c.HashAccessor(r.TokenAccessor)
		r.TokenAccessor = ""
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	if y := r.Time.Year(); y < 1970 || y > 2200 {
		return fmt.Errorf("audit: record %s: time %s out of range", r.RequestID, r.Time)
	}
	for _, s := range []*string{&r.RequestID, &r.OwnerEntityID, &r.OwnerName, &r.Bundle, &r.BundleRevision,
		&r.Environment, &r.Kind, &r.Action, &r.TargetID, &r.DecisionID, &r.Outcome, &r.ClientIP, &r.UserAgent} {
		*s = clean(*s)
	}
	r.ControlIDs = cleanAll(r.ControlIDs)
	vs := make([]api.Violation, len(r.Violations))
	for i, v := range r.Violations {
		// Copy whole, so fields api.Violation may gain are kept (and hashed).
		v.Rule, v.Message, v.Path = clean(v.Rule), clean(v.Message), clean(v.Path)
		if len(v.ControlIDs) > 0 {
			v.ControlIDs = cleanAll(v.ControlIDs)
		} else {
			v.ControlIDs = nil
		}
		vs[i] = v
	}
	r.Violations = vs
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	return nil
}

// writer is the single goroutine that writes batches.
func (c *AuditChain) writer() {
	defer close(c.done)
	for {
		var batch []*pending
		select {
		case p := <-c.reqs:
			batch = append(batch, p)
		case <-c.quit:
			return
		}
	drain:
		for len(batch) < c.maxBatch {
			select {
			case p := <-c.reqs:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		err := c.writeBatch(ctx, batch)
		cancel()
		for _, p := range batch {
			p.done <- err
		}
	}
}

// writeBatch appends batch in one transaction holding the chain-head
// lock: one multi-row INSERT, any checkpoints due, the head update.
func (c *AuditChain) writeBatch(ctx context.Context, batch []*pending) error {
	err := c.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		seq, hash, err := lockHead(ctx, c.st, q)
		if err != nil {
			return err
		}
		var due []int64 // checkpoint seqs in this batch
		var hashes []string
		args := make([]any, 0, len(batch)*recordColumns)
		for _, p := range batch {
			seq++
			p.w.seq, p.w.prevHash = seq, hash
			if p.w.hash, err = p.form.hash(seq, hash); err != nil {
				return fmt.Errorf("audit: hash record %d: %w", seq, err)
			}
			hash = p.w.hash
			args = append(args, p.w.insertArgs()...)
			if c.every > 0 && seq%c.every == 0 {
				due = append(due, seq)
				hashes = append(hashes, hash)
			}
		}
		if _, err := q.ExecContext(ctx, insertRecords(c.st.Driver, len(batch)), args...); err != nil {
			return fmt.Errorf("audit: insert records %d–%d: %w", batch[0].w.seq, seq, err)
		}
		for i, cpSeq := range due {
			if _, err := c.insertCheckpoint(ctx, q, cpSeq, hashes[i]); err != nil {
				return err
			}
		}
		return setHead(ctx, q, seq, hash)
	})
	if err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// recordColumns is the number of columns in audit_records.
const recordColumns = 22

// insertRecords is an INSERT of n rows. PostgreSQL gets $n placeholders;
// SQLite gets anonymous ? ones, because it resolves each $n by a linear
// search of the names seen so far (quadratic in a multi-row INSERT).
func insertRecords(driver string, n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_records (` + columns + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range recordColumns {
			if j > 0 {
				b.WriteString(", ")
			}
			if driver == store.DriverSQLite {
				b.WriteByte('?')
			} else {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(i*recordColumns + j + 1))
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// errHeadMissing: the one-row audit_chain_head table is empty.
var errHeadMissing = errors.New("audit: chain head row is missing (store tampered with or not migrated)")

// lockHead reads the chain head, holding its lock until the transaction
// ends (on SQLite the transaction's BEGIN IMMEDIATE already holds it).
func lockHead(ctx context.Context, st *store.Store, q store.Querier) (int64, string, error) {
	return readHead(ctx, q, st.Driver == store.DriverPostgres)
}

func readHead(ctx context.Context, q store.Querier, forUpdate bool) (int64, string, error) {
	query := `SELECT seq, hash FROM audit_chain_head WHERE id = 1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	var seq int64
	var hash string
	if err := q.QueryRowContext(ctx, query).Scan(&seq, &hash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, "", errHeadMissing
		}
		return 0, "", fmt.Errorf("audit: read chain head: %w", err)
	}
	return seq, hash, nil
}

func setHead(ctx context.Context, q store.Querier, seq int64, hash string) error {
	res, err := q.ExecContext(ctx, `UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1`, seq, hash)
	if err != nil {
		return fmt.Errorf("audit: update chain head: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("audit: update chain head: %d rows, %v", n, err)
	}
	return nil
}

// Checkpoint is a signed statement that the chain's record seq had hash
// Hash at Time. Signature is base64 (standard, padded) of the Ed25519
// signature over CheckpointMessage(Seq, Hash, Time); KeyID names the key
// (see KeyID).
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"`
}

// CheckpointMessage is what a checkpoint's signature covers, the UTF-8
// bytes of
//
//	"sas-audit-checkpoint/v1\nseq=<decimal seq>\nhash=<hex hash>\ntime=<TimeFormat>\n"
func CheckpointMessage(seq int64, hash string, t time.Time) []byte {
	return fmt.Appendf(nil, "sas-audit-checkpoint/v1\nseq=%d\nhash=%s\ntime=%s\n", seq, hash, t.UTC().Format(TimeFormat))
}

// Checkpoint signs the current head now (unless a checkpoint for it
// exists, which it returns). Call it at shutdown and periodically: records
// after the last checkpoint can be cut off undetectably by someone who
// can also rewrite the chain-head row.
func (c *AuditChain) Checkpoint(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := c.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		seq, hash, err := lockHead(ctx, c.st, q)
		if err != nil {
			return err
		}
		var ts int64
		err = q.QueryRowContext(ctx, `SELECT seq, hash, ts_ns, key_id, signature FROM audit_checkpoints WHERE seq = $1`, seq).
			Scan(&cp.Seq, &cp.Hash, &ts, &cp.KeyID, &cp.Signature)
		switch {
		case err == nil:
			cp.Time = time.Unix(0, ts).UTC()
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("audit: read checkpoint: %w", err)
		}
		cp, err = c.insertCheckpoint(ctx, q, seq, hash)
		return err
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return cp, nil
}

func (c *AuditChain) insertCheckpoint(ctx context.Context, q store.Querier, seq int64, hash string) (Checkpoint, error) {
	now := time.Now().UTC()
	sig := ed25519.Sign(c.signingKey, CheckpointMessage(seq, hash, now))
	cp := Checkpoint{Seq: seq, Hash: hash, Time: now, KeyID: c.keyID, Signature: base64.StdEncoding.EncodeToString(sig)}
	if _, err := q.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, ts_ns, key_id, signature) VALUES ($1, $2, $3, $4, $5)`,
		cp.Seq, cp.Hash, now.UnixNano(), cp.KeyID, cp.Signature); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: insert checkpoint %d: %w", seq, err)
	}
	return cp, nil
}

// Close stops the writer after the batch in flight; later Appends fail
// with ErrClosed. It does not close the store.
func (c *AuditChain) Close() error {
	c.closeOnce.Do(func() { close(c.quit) })
	<-c.done
	return nil
}
