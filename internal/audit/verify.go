package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// ErrChainBroken is wrapped by the error Verify returns for a chain that
// fails verification (errors.Is(err, ErrChainBroken)).
var ErrChainBroken = errors.New("audit chain broken")

// maxProblems caps Report.Problems.
const maxProblems = 100

// Problem is one thing wrong with the chain, placed at the first record it
// concerns. RequestID is empty when that record is missing.
type Problem struct {
	Seq       int64  `json:"seq"`
	RequestID string `json:"request_id,omitempty"`
	Reason    string `json:"reason"`
}

func (p Problem) String() string {
	if p.RequestID != "" {
		return fmt.Sprintf("seq %d (request_id %s): %s", p.Seq, p.RequestID, p.Reason)
	}
	return fmt.Sprintf("seq %d: %s", p.Seq, p.Reason)
}

// Report is what Verify found.
type Report struct {
	Store          string      `json:"store"`
	Records        int64       `json:"records"`
	LastSeq        int64       `json:"last_seq"`
	LastHash       string      `json:"last_hash"`
	Checkpoints    int         `json:"checkpoints"`
	LastCheckpoint *Checkpoint `json:"last_checkpoint,omitempty"`
	// Unprotected counts records after the last checkpoint: cutting them
	// off together with rewriting the chain-head row goes unnoticed.
	Unprotected int64 `json:"unprotected"`
	// Problems, in seq order, at most 100; ProblemsOmitted counts the rest.
	Problems        []Problem `json:"problems,omitempty"`
	ProblemsOmitted int       `json:"problems_omitted,omitempty"`
}

// Intact reports whether Verify found nothing wrong.
func (r Report) Intact() bool { return len(r.Problems) == 0 }

// Summary is a one-paragraph description for people.
func (r Report) Summary() string {
	var b strings.Builder
	if r.Intact() {
		fmt.Fprintf(&b, "audit chain intact: %d records", r.Records)
	} else {
		fmt.Fprintf(&b, "audit chain BROKEN: %d problem(s), first at %s; %d records", len(r.Problems)+r.ProblemsOmitted, r.Problems[0], r.Records)
	}
	if r.Records > 0 {
		fmt.Fprintf(&b, " (seq 1–%d, head %s)", r.LastSeq, r.LastHash)
	}
	fmt.Fprintf(&b, " in %s; %d signed checkpoint(s)", r.Store, r.Checkpoints)
	if cp := r.LastCheckpoint; cp != nil {
		fmt.Fprintf(&b, ", latest at seq %d (%s, key %s); %d record(s) after it", cp.Seq, cp.Time.Format(time.RFC3339), cp.KeyID, r.Unprotected)
	}
	return b.String()
}

// ChainError is the error Verify returns when it found problems.
type ChainError struct {
	First Problem
	Count int
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%s: %d problem(s), first at %s", ErrChainBroken, e.Count, e.First)
}

func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Verify checks the whole chain in st against verifyKey, reading one
// consistent snapshot while appends continue. It recomputes every record's
// hash and link, checks that seq runs 1, 2, 3, … without gaps, that every
// checkpoint's signature verifies and its hash is the hash of the record
// at its seq, and that the chain ends where the chain-head row and the
// latest checkpoint say. So an edited record, a deleted one (gap),
// reordered or inserted ones, a chain rewritten with fresh hashes up to a
// checkpoint, and a tail cut off at or before the latest checkpoint are
// all reported; a tail cut after the latest checkpoint is reported only
// if the chain-head row was left alone (see the package doc).
//
// The Report is filled either way. The error is a *ChainError (wrapping
// ErrChainBroken) when there are problems, another error when the store
// could not be read.
func Verify(ctx context.Context, st *store.Store, verifyKey ed25519.PublicKey) (Report, error) {
	rep := Report{Store: st.String()}
	if len(verifyKey) != ed25519.PublicKeySize {
		return rep, errors.New("audit verify: an Ed25519 verify key is required")
	}
	var opts *sql.TxOptions
	if st.Driver == store.DriverPostgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := st.DB.BeginTx(ctx, opts)
	if err != nil {
		return rep, fmt.Errorf("audit verify: %w", err)
	}
	defer tx.Rollback()

	v := verifier{rep: &rep, key: verifyKey, keyID: KeyID(verifyKey), checkpoints: map[int64]Checkpoint{}}
	headSeq, headHash, headErr := readHead(ctx, tx, false)
	if headErr != nil && !errors.Is(headErr, errHeadMissing) {
		return rep, headErr
	}
	if err := v.loadCheckpoints(ctx, tx); err != nil {
		return rep, err
	}
	if err := v.walk(ctx, tx); err != nil {
		return rep, err
	}
	v.checkEnd(headErr == nil, headSeq, headHash)

	sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Seq < v.problems[j].Seq })
	if len(v.problems) > maxProblems {
		rep.ProblemsOmitted = len(v.problems) - maxProblems
		v.problems = v.problems[:maxProblems]
	}
	rep.Problems = v.problems
	rep.Unprotected = rep.LastSeq
	if cp := rep.LastCheckpoint; cp != nil {
		rep.Unprotected = max(0, rep.LastSeq-cp.Seq)
	}
	if len(rep.Problems) > 0 {
		return rep, &ChainError{First: rep.Problems[0], Count: len(rep.Problems) + rep.ProblemsOmitted}
	}
	return rep, nil
}

type verifier struct {
	rep         *Report
	key         ed25519.PublicKey
	keyID       string
	checkpoints map[int64]Checkpoint
	maxCP       *Checkpoint
	problems    []Problem
}

func (v *verifier) problem(seq int64, requestID, format string, args ...any) {
	v.problems = append(v.problems, Problem{Seq: seq, RequestID: requestID, Reason: fmt.Sprintf(format, args...)})
}

func (v *verifier) loadCheckpoints(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT seq, hash, ts_ns, key_id, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("audit verify: read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cp Checkpoint
		var ts int64
		if err := rows.Scan(&cp.Seq, &cp.Hash, &ts, &cp.KeyID, &cp.Signature); err != nil {
			return fmt.Errorf("audit verify: read checkpoints: %w", err)
		}
		cp.Time = time.Unix(0, ts).UTC()
		v.rep.Checkpoints++
		sig, err := base64.StdEncoding.DecodeString(cp.Signature)
		switch {
		case err != nil || len(sig) != ed25519.SignatureSize:
			v.problem(cp.Seq, "", "checkpoint at seq %d: signature is not a base64 Ed25519 signature", cp.Seq)
			continue
		case !ed25519.Verify(v.key, CheckpointMessage(cp.Seq, cp.Hash, cp.Time), sig):
			if cp.KeyID != v.keyID {
				v.problem(cp.Seq, "", "checkpoint at seq %d: signature does not verify; it names key %s, the verify key is %s", cp.Seq, cp.KeyID, v.keyID)
			} else {
				v.problem(cp.Seq, "", "checkpoint at seq %d: signature does not verify (checkpoint forged or altered)", cp.Seq)
			}
			continue
		}
		// Only checkpoints with good signatures vouch for anything.
		v.checkpoints[cp.Seq] = cp
		c := cp
		v.maxCP = &c
		if cp.Seq == 0 && cp.Hash != GenesisHash {
			v.problem(0, "", "checkpoint at seq 0 names hash %s, not the genesis hash", cp.Hash)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit verify: read checkpoints: %w", err)
	}
	v.rep.LastCheckpoint = v.maxCP
	return nil
}

// walk streams the records in seq order, a page at a time.
func (v *verifier) walk(ctx context.Context, tx *sql.Tx) error {
	const page = 1000
	prevSeq, prevHash := int64(0), GenesisHash
	for {
		rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2`, prevSeq, page)
		if err != nil {
			return fmt.Errorf("audit verify: read records: %w", err)
		}
		n := 0
		for rows.Next() {
			var w row
			if err := rows.Scan(w.scanArgs()...); err != nil {
				rows.Close()
				return fmt.Errorf("audit verify: read record after seq %d: %w", prevSeq, err)
			}
			n++
			v.check(&w, prevSeq, prevHash)
			prevSeq, prevHash = w.seq, w.hash
			v.rep.Records++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("audit verify: read records: %w", err)
		}
		if n < page {
			break
		}
	}
	v.rep.LastSeq, v.rep.LastHash = prevSeq, prevHash
	if prevSeq == 0 {
		v.rep.LastHash = ""
	}
	return nil
}

// check reports at most one problem for record w, which follows a record
// with prevSeq and prevHash as stored.
func (v *verifier) check(w *row, prevSeq int64, prevHash string) {
	computed, herr := w.computeHash()
	hashOK := herr == nil && computed == w.hash
	linkOK := w.prevHash == prevHash
	switch {
	case w.seq != prevSeq+1:
		if w.seq == prevSeq+2 {
			v.problem(w.seq, w.requestID, "record %d is missing (deleted)", prevSeq+1)
		} else {
			v.problem(w.seq, w.requestID, "records %d–%d are missing (deleted)", prevSeq+1, w.seq-1)
		}
	case herr != nil:
		v.problem(w.seq, w.requestID, "record cannot be decoded (edited): %v", herr)
	case !hashOK && !linkOK:
		v.problem(w.seq, w.requestID, "neither its hash nor its prev_hash fits position %d: records reordered or replaced", w.seq)
	case !hashOK:
		v.problem(w.seq, w.requestID, "contents edited: stored hash %s, contents hash to %s", w.hash, computed)
	case !linkOK:
		v.problem(w.seq, w.requestID, "prev_hash %s is not the hash of record %d (%s): chain relinked", w.prevHash, prevSeq, prevHash)
	}
	if cp, ok := v.checkpoints[w.seq]; ok && cp.Hash != w.hash {
		v.problem(w.seq, w.requestID, "signed checkpoint at seq %d (%s) says hash %s, the record has %s: the chain was rewritten at or before this record",
			cp.Seq, cp.Time.Format(time.RFC3339Nano), cp.Hash, w.hash)
	}
}

// checkEnd compares the chain's end with the head row and the latest
// signed checkpoint.
func (v *verifier) checkEnd(haveHead bool, headSeq int64, headHash string) {
	lastSeq, lastHash := v.rep.LastSeq, v.rep.LastHash
	if lastSeq == 0 {
		lastHash = GenesisHash
	}
	if cp := v.maxCP; cp != nil && cp.Seq > lastSeq {
		v.problem(lastSeq+1, "", "records %d–%d are missing: the chain ends at seq %d but a signed checkpoint (%s) covers seq %d (tail truncated)",
			lastSeq+1, cp.Seq, lastSeq, cp.Time.Format(time.RFC3339Nano), cp.Seq)
	}
	switch {
	case !haveHead:
		v.problem(lastSeq+1, "", "the chain-head row is missing")
	case headSeq > lastSeq:
		v.problem(lastSeq+1, "", "records %d–%d are missing: the chain ends at seq %d but the chain head is at seq %d (tail truncated)", lastSeq+1, headSeq, lastSeq, headSeq)
	case headSeq < lastSeq:
		v.problem(headSeq+1, "", "records %d–%d lie beyond the chain head at seq %d (appended outside the chain, or the head row was rewound)", headSeq+1, lastSeq, headSeq)
	case headHash != lastHash:
		v.problem(lastSeq, "", "the chain head names hash %s for seq %d, the record has %s", headHash, lastSeq, lastHash)
	}
}
