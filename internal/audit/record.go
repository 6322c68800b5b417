// Package audit is the gateway's AuditChain — trust boundary ⑤ of the
// threat model. Every request that reaches the gateway is recorded before
// anything happens, and the record is durable before Append returns; if it
// is not, Append returns an error and the caller must not proceed (fail
// closed).
//
// # Tamper evidence
//
// Records form a hash chain: each stores the previous record's hash
// (prev_hash; the first record's is GenesisHash) and its own hash, the
// lowercase hex SHA-256 of its canonical encoding (see Canonical), which
// covers prev_hash and seq. Every CheckpointEvery records, and on demand,
// the chain signs {seq, hash, time} of its head with an Ed25519 key
// (see Checkpoint). Verify recomputes every hash and link and checks every
// checkpoint, so an edited, deleted, inserted or reordered record is
// reported by seq and request_id.
//
// What the chain cannot prove: a store whose tail was cut *after* the last
// signed checkpoint, with the chain-head row rewritten to match, looks like
// a shorter intact chain — anyone who can write the database can do that,
// and only a later checkpoint (or a copy of one held elsewhere) reveals
// it. Checkpoint often (e.g. on shutdown) to keep that window small.
//
// # Secrets
//
// The caller's token never reaches this package; its accessor is stored
// only as HMAC-SHA256 under a key of the gateway's (HashAccessor), so an
// auditor holding the key can find a token's records, and a reader of the
// database cannot use what it sees.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// GenesisHash is the prev_hash of the first record.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// TimeFormat is how record and checkpoint times appear in canonical
// encodings and exports: UTC, always nine fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// canonicalVersion is the "v" member of every canonical encoding.
const canonicalVersion = 1

// Decision is what the gateway decided about a request.
type Decision string

// Decisions.
const (
	DecisionAllow   Decision = "allow"   // the policy bundle allowed it
	DecisionDeny    Decision = "deny"    // the policy bundle denied it (violations say why)
	DecisionRefused Decision = "refused" // refused before policy: authentication, schema, rate limit
	DecisionError   Decision = "error"   // the gateway could not decide (fails closed)
)

// Valid reports whether d is one of the four decisions.
func (d Decision) Valid() bool {
	switch d {
	case DecisionAllow, DecisionDeny, DecisionRefused, DecisionError:
		return true
	}
	return false
}

// Record is one audit event. Fields the chain assigns (Seq, PrevHash,
// Hash, and Time when zero) are ignored on input to Append.
type Record struct {
	Seq       int64     `json:"seq"`
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"` // UTC, nanoseconds

	OwnerEntityID string `json:"owner_entity_id"` // the Vault entity — never a client-sent field
	OwnerName     string `json:"owner_name"`

	// TokenAccessor is input only: Append replaces it by its keyed HMAC in
	// TokenAccessorHMAC and never stores or returns it. Leave it empty for
	// requests without a valid token.
	TokenAccessor     string `json:"-"`
	TokenAccessorHMAC string `json:"token_accessor_hmac"`

	Bundle         string `json:"bundle"`
	BundleRevision string `json:"bundle_revision"`
	Environment    string `json:"environment"`
	Kind           string `json:"kind"`
	Action         string `json:"action"`
	TargetID       string `json:"target_id"`

	Decision   Decision        `json:"decision"`
	Violations []api.Violation `json:"violations"`
	DecisionID string          `json:"decision_id"`
	Outcome    string          `json:"outcome"`
	StatusCode int             `json:"status_code"`
	ClientIP   string          `json:"client_ip"`
	UserAgent  string          `json:"user_agent"`
	ControlIDs []string        `json:"control_ids"`

	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// MarshalJSON writes Time in TimeFormat, the form the hash covers.
func (r Record) MarshalJSON() ([]byte, error) {
	type plain Record
	return json.Marshal(struct {
		plain
		Time string `json:"time"`
	}{plain(r), r.Time.UTC().Format(TimeFormat)})
}

// row is a record as stored: one field per column, JSON columns as text.
// Hashes are computed from rows so that Verify sees exactly what is stored.
type row struct {
	seq                         int64
	requestID                   string
	tsNS                        int64
	ownerEntityID, ownerName    string
	accessorHMAC                string
	bundle, bundleRevision, env string
	kind, action, targetID      string
	decision                    string
	violations                  string // JSON array
	decisionID, outcome         string
	statusCode                  int64
	clientIP, userAgent         string
	controlIDs                  string // JSON array of strings
	prevHash, hash              string
}

// columns lists audit_records' columns in row order.
const columns = `seq, request_id, ts_ns, owner_entity_id, owner_name, token_accessor_hmac,
	bundle, bundle_revision, environment, kind, action, target_id,
	decision, violations, decision_id, outcome, status_code, client_ip, user_agent,
	control_ids, prev_hash, hash`

func (w *row) scanArgs() []any {
	return []any{&w.seq, &w.requestID, &w.tsNS, &w.ownerEntityID, &w.ownerName, &w.accessorHMAC,
		&w.bundle, &w.bundleRevision, &w.env, &w.kind, &w.action, &w.targetID,
		&w.decision, &w.violations, &w.decisionID, &w.outcome, &w.statusCode, &w.clientIP, &w.userAgent,
		&w.controlIDs, &w.prevHash, &w.hash}
}

func (w *row) insertArgs() []any {
	return []any{w.seq, w.requestID, w.tsNS, w.ownerEntityID, w.ownerName, w.accessorHMAC,
		w.bundle, w.bundleRevision, w.env, w.kind, w.action, w.targetID,
		w.decision, w.violations, w.decisionID, w.outcome, w.statusCode, w.clientIP, w.userAgent,
		w.controlIDs, w.prevHash, w.hash}
}

// Canonical returns the bytes a record's hash covers. It is the record's
// JSON object with these members and no others:
//
//	action, bundle, bundle_revision, client_ip, control_ids, decision,
//	decision_id, environment, kind, outcome, owner_entity_id, owner_name,
//	prev_hash, request_id, seq, status_code, target_id, time,
//	token_accessor_hmac, user_agent, v, violations
//
// encoded as Go's encoding/json encodes a map[string]any: members sorted
// by key (byte order) at every level, no whitespace, strings as JSON
// strings with <, > and & escaped as \u003c, \u003e, \u0026 and U+2028,
// U+2029 as \u2028, \u2029. seq and status_code are integers; v is 1;
// time is UTC in TimeFormat ("2006-01-02T15:04:05.000000000Z");
// violations (objects as api.Violation encodes them: rule, message, and
// path and control_ids unless empty) and control_ids are arrays, [] when
// empty, re-encoded by the same rules;
// every string is valid UTF-8 without NUL (Append replaces offending bytes
// by U+FFFD). The record's own hash is not a member.
//
// hash = lowercase hex(SHA-256(Canonical(record))).
func Canonical(r Record) ([]byte, error) {
	w, err := toRow(r)
	if err != nil {
		return nil, err
	}
	return w.canonical()
}

// canonical is Canonical for a stored row.
func (w *row) canonical() ([]byte, error) {
	f, err := w.form()
	if err != nil {
		return nil, err
	}
	return f.fill(w.seq, w.prevHash)
}

// computeHash is the hash of a stored row's canonical encoding.
func (w *row) computeHash() (string, error) {
	f, err := w.form()
	if err != nil {
		return "", err
	}
	return f.hash(w.seq, w.prevHash)
}

// canonicalForm is a canonical encoding with holes where prev_hash and seq
// go: head + JSON(prev_hash) + mid + decimal(seq) + tail. Append builds it
// in the caller's goroutine, so the single writer only fills the holes and
// hashes; Verify goes through the same code, so the two cannot disagree.
type canonicalForm struct{ head, mid, tail []byte }

// The form is cut at these keyed placeholders. In encoding/json output a
// quote inside a string is always escaped, so the patterns occur only as
// top-level members (prev_hash and seq sort before violations, the only
// member that may hold objects).
const (
	prevPlaceholder = "\x00prev"
	prevHole        = `"prev_hash":"\u0000prev"`
	seqHole         = `"seq":0`
)

func (w *row) form() (canonicalForm, error) {
	violations, err := decodeGeneric(w.violations)
	if err != nil {
		return canonicalForm{}, fmt.Errorf("violations: %w", err)
	}
	controlIDs, err := decodeGeneric(w.controlIDs)
	if err != nil {
		return canonicalForm{}, fmt.Errorf("control_ids: %w", err)
	}
	if _, ok := violations.([]any); !ok {
		return canonicalForm{}, errors.New("violations: not a JSON array")
	}
	if _, ok := controlIDs.([]any); !ok {
		return canonicalForm{}, errors.New("control_ids: not a JSON array")
	}
	m := map[string]any{
		"v":                   canonicalVersion,
		"seq":                 0,
		"request_id":          w.requestID,
		"time":                time.Unix(0, w.tsNS).UTC().Format(TimeFormat),
		"owner_entity_id":     w.ownerEntityID,
		"owner_name":          w.ownerName,
		"token_accessor_hmac": w.accessorHMAC,
		"bundle":              w.bundle,
		"bundle_revision":     w.bundleRevision,
		"environment":         w.env,
		"kind":                w.kind,
		"action":              w.action,
		"target_id":           w.targetID,
		"decision":            w.decision,
		"violations":          violations,
		"decision_id":         w.decisionID,
		"outcome":             w.outcome,
		"status_code":         w.statusCode,
		"client_ip":           w.clientIP,
		"user_agent":          w.userAgent,
		"control_ids":         controlIDs,
		"prev_hash":           prevPlaceholder,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return canonicalForm{}, err
	}
	i := bytes.Index(b, []byte(prevHole))
	if i < 0 {
		return canonicalForm{}, errors.New("canonical form: prev_hash hole not found")
	}
	rest := b[i+len(prevHole):]
	j := bytes.Index(rest, []byte(seqHole))
	if j < 0 {
		return canonicalForm{}, errors.New("canonical form: seq hole not found")
	}
	return canonicalForm{
		head: b[:i+len(`"prev_hash":`)],
		mid:  rest[:j+len(`"seq":`)],
		tail: rest[j+len(seqHole):],
	}, nil
}

// fill completes the encoding.
func (f canonicalForm) fill(seq int64, prevHash string) ([]byte, error) {
	p, err := json.Marshal(prevHash)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(f.head)+len(p)+len(f.mid)+20+len(f.tail))
	out = append(out, f.head...)
	out = append(out, p...)
	out = append(out, f.mid...)
	out = strconv.AppendInt(out, seq, 10)
	return append(out, f.tail...), nil
}

// hash is lowercase hex SHA-256 of the filled encoding.
func (f canonicalForm) hash(seq int64, prevHash string) (string, error) {
	b, err := f.fill(seq, prevHash)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// decodeGeneric parses stored JSON into maps, slices, strings and
// json.Number, so re-encoding sorts keys and keeps numbers verbatim.
func decodeGeneric(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

// toRow converts a record whose strings are already clean.
func toRow(r Record) (row, error) {
	violations := r.Violations
	if violations == nil {
		violations = []api.Violation{}
	}
	vj, err := marshalNoHTMLEscape(violations)
	if err != nil {
		return row{}, err
	}
	controlIDs := r.ControlIDs
	if controlIDs == nil {
		controlIDs = []string{}
	}
	cj, err := marshalNoHTMLEscape(controlIDs)
	if err != nil {
		return row{}, err
	}
	return row{
		seq: r.Seq, requestID: r.RequestID, tsNS: r.Time.UnixNano(),
		ownerEntityID: r.OwnerEntityID, ownerName: r.OwnerName, accessorHMAC: r.TokenAccessorHMAC,
		bundle: r.Bundle, bundleRevision: r.BundleRevision, env: r.Environment,
		kind: r.Kind, action: r.Action, targetID: r.TargetID,
		decision: string(r.Decision), violations: string(vj), decisionID: r.DecisionID,
		outcome: r.Outcome, statusCode: int64(r.StatusCode), clientIP: r.ClientIP, userAgent: r.UserAgent,
		controlIDs: string(cj), prevHash: r.PrevHash, hash: r.Hash,
	}, nil
}

// record converts a stored row back; it fails only on undecodable JSON.
func (w *row) record() (Record, error) {
	r := Record{
		Seq: w.seq, RequestID: w.requestID, Time: time.Unix(0, w.tsNS).UTC(),
		OwnerEntityID: w.ownerEntityID, OwnerName: w.ownerName, TokenAccessorHMAC: w.accessorHMAC,
		Bundle: w.bundle, BundleRevision: w.bundleRevision, Environment: w.env,
		Kind: w.kind, Action: w.action, TargetID: w.targetID,
		Decision: Decision(w.decision), DecisionID: w.decisionID,
		Outcome: w.outcome, StatusCode: int(w.statusCode), ClientIP: w.clientIP, UserAgent: w.userAgent,
		PrevHash: w.prevHash, Hash: w.hash,
	}
	if err := json.Unmarshal([]byte(w.violations), &r.Violations); err != nil {
		return Record{}, fmt.Errorf("audit record %d: violations: %w", w.seq, err)
	}
	if err := json.Unmarshal([]byte(w.controlIDs), &r.ControlIDs); err != nil {
		return Record{}, fmt.Errorf("audit record %d: control_ids: %w", w.seq, err)
	}
	return r, nil
}

// marshalNoHTMLEscape stores JSON columns readably (<, >, & as is); the
// canonical encoding re-escapes them, so storage form does not matter.
func marshalNoHTMLEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// clean makes s storable on both engines, stable under JSON and safe to
// print: valid UTF-8 (PostgreSQL TEXT refuses anything else), and every
// control character — C0 (NUL, ESC, CR, LF…), DEL, C1 — and every
// character that reorders or hides text (bidi controls, line and paragraph
// separators, zero-width marks) written as a visible escape (\x1b,
// \u202e). A record printed to a terminal or a log line is then exactly
// one line that shows what was sent; it cannot forge a second record,
// recolour the screen or hide a word.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafeRune(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// unsafeRune: control characters and the format characters that change
// how surrounding text is displayed.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

func cleanAll(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}
