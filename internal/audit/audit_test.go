package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

func testOptions(tb testing.TB) audit.Options {
	tb.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	hk := make([]byte, 32)
	_, _ = rand.Read(hk)
	return audit.Options{HMACKey: hk, SigningKey: sk}
}

func newChain(tb testing.TB, st *store.Store, opts audit.Options) *audit.AuditChain {
	tb.Helper()
	c, err := audit.New(context.Background(), st, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func sampleRecord(i int) audit.Record {
	return audit.Record{
		RequestID:      fmt.Sprintf("req-%04d", i),
		OwnerEntityID:  "ent-" + fmt.Sprint(i%3),
		OwnerName:      []string{"alice", "bob", "ci-pipeline"}[i%3],
		TokenAccessor:  fmt.Sprintf("accessor-%d-Xq7", i%5),
		Bundle:         "fedramp_sbx_default",
		BundleRevision: "rev-7",
		Environment:    "sbx",
		Kind:           "ip_reservation",
		Action:         "create",
		TargetID:       fmt.Sprintf("ipr-%d", i),
		Decision:       []audit.Decision{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionRefused, audit.DecisionError}[i%4],
		DecisionID:     fmt.Sprintf("dec-%d", i),
		Outcome:        "accepted",
		StatusCode:     202,
		ClientIP:       "10.0.0.7",
		UserAgent:      "terraform-provider-sas/0.1 <&>",
		ControlIDs:     []string{"AC-3", "AU-2"},
	}
}

func appendN(tb testing.TB, c *audit.AuditChain, n int) []audit.Record {
	tb.Helper()
	out := make([]audit.Record, 0, n)
	for i := range n {
		r, err := c.Append(context.Background(), sampleRecord(i+1))
		if err != nil {
			tb.Fatalf("append %d: %v", i+1, err)
		}
		out = append(out, r)
	}
	return out
}

func forDrivers(t *testing.T, fn func(t *testing.T, driver string)) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

func TestAppendQueryRoundTrip(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.Open(t, driver)
		c := newChain(t, st, testOptions(t))

		t0 := time.Date(2031, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
		denied := sampleRecord(1)
		denied.Time = t0
		denied.Decision = audit.DecisionDeny
		denied.StatusCode = 403
		denied.Violations = []api.Violation{
			{Rule: "env_scope", Message: "bundle fedramp_sbx_default does not allow environment \"prod\" <b>", Path: "/environment", ControlIDs: []string{"AC-3"}},
			{Rule: "size", Message: "größe ✓"},
		}
		denied.UserAgent = "bad\xffutf8\x00nul"
		got, err := c.Append(ctx, denied)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != 1 || got.PrevHash != audit.GenesisHash || len(got.Hash) != 64 {
			t.Fatalf("first record: seq %d prev %s hash %q", got.Seq, got.PrevHash, got.Hash)
		}
		if got.TokenAccessor != "" || got.TokenAccessorHMAC != c.HashAccessor(denied.TokenAccessor) {
			t.Errorf("accessor not replaced by its HMAC: %+v", got)
		}
		if !got.Time.Equal(t0) || got.Time.Location() != time.UTC {
			t.Errorf("time %v, want %v in UTC", got.Time, t0)
		}
		if got.UserAgent != `bad`+"\uFFFD"+`utf8\x00nul` {
			t.Errorf("user agent not cleaned: %q", got.UserAgent)
		}
		recs := []audit.Record{got}
		for i := 2; i <= 7; i++ {
			r, err := c.Append(ctx, sampleRecord(i))
			if err != nil {
				t.Fatal(err)
			}
			if r.Seq != int64(i) || r.PrevHash != recs[len(recs)-1].Hash {
				t.Fatalf("record %d: seq %d prev %s", i, r.Seq, r.PrevHash)
			}
			recs = append(recs, r)
		}

		page, next, err := c.Query(ctx, audit.Filter{RequestID: "req-0001"})
		if err != nil {
			t.Fatal(err)
		}
		if next != 0 || len(page) != 1 {
			t.Fatalf("by request id: %d records, next %d", len(page), next)
		}
		if !reflect.DeepEqual(page[0], recs[0]) {
			t.Errorf("round trip differs:\n got %+v\nwant %+v", page[0], recs[0])
		}

		all, _, err := c.Query(ctx, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(all, recs) {
			t.Errorf("Query(all) differs from what Append returned")
		}

		for name, tc := range map[string]struct {
			f    audit.Filter
			want []int64
		}{
			"owner by name":      {audit.Filter{Owner: "bob"}, []int64{1, 4, 7}},
			"owner by entity id": {audit.Filter{Owner: "ent-2"}, []int64{2, 5}},
			"decision":           {audit.Filter{Decision: audit.DecisionDeny}, []int64{1, 5}},
			"accessor":           {audit.Filter{AccessorHMAC: c.HashAccessor("accessor-2-Xq7")}, []int64{2, 7}},
			"since":              {audit.Filter{Since: t0}, []int64{1}},
			"until":              {audit.Filter{Until: t0}, []int64{2, 3, 4, 5, 6, 7}},
			"since+until":        {audit.Filter{Since: t0, Until: t0.Add(time.Nanosecond)}, []int64{1}},
			"after":              {audit.Filter{After: 5}, []int64{6, 7}},
			"combined":           {audit.Filter{Owner: "alice", Decision: audit.DecisionRefused}, []int64{6}},
		} {
			got, _, err := c.Query(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var seqs []int64
			for _, r := range got {
				seqs = append(seqs, r.Seq)
			}
			if !reflect.DeepEqual(seqs, tc.want) {
				t.Errorf("%s: seqs %v, want %v", name, seqs, tc.want)
			}
		}

		// Paging: 3 per page.
		var seen []int64
		var after int64
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			page, next, err := c.Query(ctx, audit.Filter{After: after, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				seen = append(seen, r.Seq)
			}
			if next == 0 {
				break
			}
			after = next
		}
		if !reflect.DeepEqual(seen, []int64{1, 2, 3, 4, 5, 6, 7}) {
			t.Errorf("paged seqs %v", seen)
		}

		var buf bytes.Buffer
		if err := c.Export(ctx, &buf, "jsonl"); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(&buf)
		n := 0
		for sc.Scan() {
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("export line %d: %v", n+1, err)
			}
			if !reflect.DeepEqual(r, recs[n]) {
				t.Errorf("export line %d differs:\n got %+v\nwant %+v", n+1, r, recs[n])
			}
			n++
		}
		if n != len(recs) {
			t.Errorf("export: %d lines, want %d", n, len(recs))
		}
		if err := c.Export(ctx, &buf, "csv"); err == nil {
			t.Error("export csv: want an error")
		}

		rep, err := audit.Verify(ctx, st, c.VerifyKey())
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, rep.Summary())
		}
		if rep.Records != 7 || rep.LastSeq != 7 || rep.LastHash != recs[6].Hash {
			t.Errorf("report: %+v", rep)
		}
	})
}

// TestCanonicalEncoding pins the documented canonical form: changing it
// breaks every stored chain.
func TestCanonicalEncoding(t *testing.T) {
	r := audit.Record{
		Seq: 42, RequestID: "req-1", Time: time.Date(2030, 1, 2, 3, 4, 5, 60, time.UTC),
		OwnerEntityID: "e1", OwnerName: "alice", TokenAccessorHMAC: "ab",
		Bundle: "b", BundleRevision: "r", Environment: "sbx", Kind: "k", Action: "create", TargetID: "t",
		Decision: audit.DecisionDeny, DecisionID: "d", Outcome: "o", StatusCode: 403, ClientIP: "::1", UserAgent: "<ua>",
		Violations: []api.Violation{{Rule: "r1", Message: "m & m", ControlIDs: []string{"AC-3"}}},
		PrevHash:   audit.GenesisHash,
	}
	got, err := audit.Canonical(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"create","bundle":"b","bundle_revision":"r","client_ip":"::1","control_ids":[],"decision":"deny",` +
		`"decision_id":"d","environment":"sbx","kind":"k","outcome":"o","owner_entity_id":"e1","owner_name":"alice",` +
		`"prev_hash":"` + audit.GenesisHash + `","request_id":"req-1","seq":42,"status_code":403,"target_id":"t",` +
		`"time":"2030-01-02T03:04:05.000000060Z","token_accessor_hmac":"ab","user_agent":"\u003cua\u003e","v":1,` +
		`"violations":[{"control_ids":["AC-3"],"message":"m \u0026 m","rule":"r1"}]}`
	if string(got) != want {
		t.Errorf("canonical encoding\n got %s\nwant %s", got, want)
	}
}

// TestCanonicalMatchesPlainEncoding: for hostile strings (quotes,
// backslashes, text that looks like the encoder's own placeholders) the
// canonical encoding is still exactly encoding/json's map encoding.
func TestCanonicalMatchesPlainEncoding(t *testing.T) {
	nasty := []string{`"seq":0`, `"prev_hash":"\u0000prev"`, "\x00prev", `\`, `\"`, `"},{"seq":1`, "<&>", "\u2028", "ü"}
	for i, s := range nasty {
		r := audit.Record{
			Seq: int64(i + 1), RequestID: s, Time: time.Unix(1700000000, int64(i)).UTC(), OwnerEntityID: s, OwnerName: s,
			TokenAccessorHMAC: s, Bundle: s, BundleRevision: s, Environment: s, Kind: s, Action: s, TargetID: s,
			Decision: audit.DecisionDeny, DecisionID: s, Outcome: s, StatusCode: 400 + i, ClientIP: s, UserAgent: s,
			Violations: []api.Violation{{Rule: s, Message: s, Path: s, ControlIDs: []string{s}}},
			ControlIDs: []string{s, s}, PrevHash: s,
		}
		got, err := audit.Canonical(r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]any{
			"v": 1, "seq": r.Seq, "request_id": s, "time": r.Time.Format(audit.TimeFormat), "owner_entity_id": s, "owner_name": s,
			"token_accessor_hmac": s, "bundle": s, "bundle_revision": s, "environment": s, "kind": s, "action": s, "target_id": s,
			"decision": "deny", "decision_id": s, "outcome": s, "status_code": r.StatusCode, "client_ip": s, "user_agent": s,
			"violations":  []map[string]any{{"rule": s, "message": s, "path": s, "control_ids": []string{s}}},
			"control_ids": []string{s, s}, "prev_hash": s,
		})
		if !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.Open(t, driver)
		opts := testOptions(t)
		opts.CheckpointEvery = 37
		c := newChain(t, st, opts)
		const workers, each = 8, 50
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					r := sampleRecord(w*each + i)
					r.RequestID = fmt.Sprintf("w%d-%d", w, i)
					if _, err := c.Append(ctx, r); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		checkContiguous(t, st, opts, workers*each)
	})
}

// TestConcurrentAppendsAcrossReplicas: two AuditChains on two database
// handles — two gateway processes sharing one database — still make one
// chain.
func TestConcurrentAppendsAcrossReplicas(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.Config(t, driver)
		opts := testOptions(t)
		opts.CheckpointEvery = 25
		var chains []*audit.AuditChain
		var st *store.Store
		for range 2 {
			s, err := store.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			st = s
			chains = append(chains, newChain(t, s, opts))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for w := range 8 {
			c := chains[w%2]
			wg.Go(func() {
				for i := range 25 {
					r := sampleRecord(i)
					r.RequestID = fmt.Sprintf("replica%d-w%d-%d", w%2, w, i)
					if _, err := c.Append(ctx, r); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		checkContiguous(t, st, opts, 200)
	})
}

func checkContiguous(t *testing.T, st *store.Store, opts audit.Options, n int) {
	t.Helper()
	ctx := context.Background()
	rep, err := audit.Verify(ctx, st, opts.SigningKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, rep.Summary())
	}
	if rep.Records != int64(n) || rep.LastSeq != int64(n) {
		t.Fatalf("records %d, last seq %d, want %d", rep.Records, rep.LastSeq, n)
	}
	if want := n / opts.CheckpointEvery; rep.Checkpoints != want {
		t.Errorf("checkpoints %d, want %d", rep.Checkpoints, want)
	}
	seen := map[string]bool{}
	var after int64
	for {
		page, next, err := audit.Query(ctx, st, audit.Filter{After: after, Limit: audit.MaxQueryLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			if seen[r.RequestID] {
				t.Fatalf("request %s recorded twice", r.RequestID)
			}
			seen[r.RequestID] = true
		}
		if next == 0 {
			break
		}
		after = next
	}
	if len(seen) != n {
		t.Fatalf("%d distinct requests, want %d", len(seen), n)
	}
}

// tamperCase changes the store behind the chain's back; wantSeq is the
// first record Verify must name, wantReason a fragment of its reason.
type tamperCase struct {
	name       string
	tamper     func(t *testing.T, st *store.Store, recs []audit.Record)
	wantSeq    int64
	wantReq    string // request id Verify must name ("" for a missing record)
	wantReason string
}

func exec(t *testing.T, st *store.Store, q string, args ...any) {
	t.Helper()
	if _, err := st.DB.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	// 25 records, checkpoints at 10 and 20.
	cases := []tamperCase{
		{
			name: "edited owner",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `UPDATE audit_records SET owner_name = $1 WHERE seq = $2`, "mallory", 7)
			},
			wantSeq: 7, wantReq: "req-0007", wantReason: "contents edited",
		},
		{
			name: "edited violations",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `UPDATE audit_records SET violations = $1 WHERE seq = $2`, `[{"rule":"x","message":"y"}]`, 12)
			},
			wantSeq: 12, wantReq: "req-0012", wantReason: "contents edited",
		},
		{
			name: "deleted record",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `DELETE FROM audit_records WHERE seq = $1`, 7)
			},
			wantSeq: 8, wantReq: "req-0008", wantReason: "record 7 is missing",
		},
		{
			name: "two records swapped",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `UPDATE audit_records SET seq = -1 WHERE seq = 7`)
				exec(t, st, `UPDATE audit_records SET seq = 7 WHERE seq = 8`)
				exec(t, st, `UPDATE audit_records SET seq = 8 WHERE seq = -1`)
			},
			wantSeq: 7, wantReq: "req-0008", wantReason: "reordered",
		},
		{
			name: "tail truncated before the last checkpoint, head rewritten",
			tamper: func(t *testing.T, st *store.Store, recs []audit.Record) {
				exec(t, st, `DELETE FROM audit_records WHERE seq > $1`, 15)
				exec(t, st, `UPDATE audit_chain_head SET seq = $1, hash = $2`, 15, recs[14].Hash)
			},
			wantSeq: 16, wantReason: "records 16–20 are missing",
		},
		{
			name: "tail truncated after the last checkpoint, head left",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `DELETE FROM audit_records WHERE seq > $1`, 22)
			},
			wantSeq: 23, wantReason: "records 23–25 are missing",
		},
		{
			name: "chain rewritten with fresh hashes",
			tamper: func(t *testing.T, st *store.Store, recs []audit.Record) {
				prev := recs[3].Hash
				for _, r := range recs[4:] {
					if r.Seq == 5 {
						r.OwnerName = "mallory"
					}
					r.PrevHash = prev
					b, err := audit.Canonical(r)
					if err != nil {
						t.Fatal(err)
					}
					sum := sha256.Sum256(b)
					r.Hash = hex.EncodeToString(sum[:])
					exec(t, st, `UPDATE audit_records SET owner_name = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, r.OwnerName, r.PrevHash, r.Hash, r.Seq)
					prev = r.Hash
				}
				exec(t, st, `UPDATE audit_chain_head SET hash = $1`, prev)
			},
			wantSeq: 10, wantReq: "req-0010", wantReason: "chain was rewritten",
		},
		{
			name: "checkpoint signature replaced",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				var sig string
				if err := st.DB.QueryRow(`SELECT signature FROM audit_checkpoints WHERE seq = 20`).Scan(&sig); err != nil {
					t.Fatal(err)
				}
				exec(t, st, `UPDATE audit_checkpoints SET signature = $1 WHERE seq = 10`, sig)
			},
			wantSeq: 10, wantReason: "signature does not verify",
		},
		{
			name: "checkpoint hash replaced",
			tamper: func(t *testing.T, st *store.Store, recs []audit.Record) {
				exec(t, st, `UPDATE audit_checkpoints SET hash = $1 WHERE seq = 20`, recs[18].Hash)
			},
			wantSeq: 20, wantReason: "signature does not verify",
		},
		{
			name: "chain head deleted",
			tamper: func(t *testing.T, st *store.Store, _ []audit.Record) {
				exec(t, st, `DELETE FROM audit_chain_head`)
			},
			wantSeq: 26, wantReason: "chain-head row is missing",
		},
	}
	forDrivers(t, func(t *testing.T, driver string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				st := storetest.Open(t, driver)
				opts := testOptions(t)
				opts.CheckpointEvery = 10
				c := newChain(t, st, opts)
				recs := appendN(t, c, 25)
				if rep, err := audit.Verify(ctx, st, c.VerifyKey()); err != nil {
					t.Fatalf("intact chain: %v\n%s", err, rep.Summary())
				}
				tc.tamper(t, st, recs)
				rep, err := audit.Verify(ctx, st, c.VerifyKey())
				var ce *audit.ChainError
				if !errors.As(err, &ce) || !errors.Is(err, audit.ErrChainBroken) {
					t.Fatalf("Verify = %v, want a ChainError\n%s", err, rep.Summary())
				}
				t.Log(rep.Summary())
				first := rep.Problems[0]
				if ce.First != first || first.Seq != tc.wantSeq || first.RequestID != tc.wantReq || !strings.Contains(first.Reason, tc.wantReason) {
					t.Errorf("first problem %v, want seq %d request %q reason ~%q\nall: %v", first, tc.wantSeq, tc.wantReq, tc.wantReason, rep.Problems)
				}
				if rep.Intact() || !strings.Contains(rep.Summary(), "BROKEN") {
					t.Errorf("summary: %s", rep.Summary())
				}
			})
		}
	})
}

// TestVerifyTruncationLimit documents what the chain cannot prove: records
// after the last checkpoint, cut off together with the head row, leave a
// shorter chain that verifies. Report.Unprotected says how many were at risk.
func TestVerifyTruncationLimit(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.Open(t, driver)
		opts := testOptions(t)
		opts.CheckpointEvery = 10
		c := newChain(t, st, opts)
		recs := appendN(t, c, 25)
		exec(t, st, `DELETE FROM audit_records WHERE seq > $1`, 22)
		exec(t, st, `UPDATE audit_chain_head SET seq = $1, hash = $2`, 22, recs[21].Hash)
		rep, err := audit.Verify(ctx, st, c.VerifyKey())
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if rep.Records != 22 || rep.Unprotected != 2 || rep.LastCheckpoint == nil || rep.LastCheckpoint.Seq != 20 {
			t.Errorf("report %+v", rep)
		}
	})
}

func TestVerifyWithWrongKey(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		st := storetest.Open(t, driver)
		opts := testOptions(t)
		opts.CheckpointEvery = 5
		c := newChain(t, st, opts)
		appendN(t, c, 5)
		other := testOptions(t).SigningKey.Public().(ed25519.PublicKey)
		rep, err := audit.Verify(context.Background(), st, other)
		if !errors.Is(err, audit.ErrChainBroken) || rep.Problems[0].Seq != 5 || !strings.Contains(rep.Problems[0].Reason, audit.KeyID(other)) {
			t.Errorf("Verify = %v, problems %v", err, rep.Problems)
		}
		if _, err := audit.Verify(context.Background(), st, nil); err == nil || errors.Is(err, audit.ErrChainBroken) {
			t.Errorf("Verify without key = %v, want a usage error", err)
		}
	})
}

func TestCheckpointOnDemand(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.Open(t, driver)
		c := newChain(t, st, testOptions(t))
		empty, err := c.Checkpoint(ctx)
		if err != nil || empty.Seq != 0 || empty.Hash != audit.GenesisHash {
			t.Fatalf("checkpoint of empty chain: %+v, %v", empty, err)
		}
		recs := appendN(t, c, 3)
		cp, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Seq != 3 || cp.Hash != recs[2].Hash || cp.KeyID != audit.KeyID(c.VerifyKey()) {
			t.Errorf("checkpoint %+v", cp)
		}
		again, err := c.Checkpoint(ctx)
		if err != nil || again != cp {
			t.Errorf("second checkpoint %+v, %v; want the first back", again, err)
		}
		rep, err := audit.Verify(ctx, st, c.VerifyKey())
		if err != nil || rep.Checkpoints != 2 || rep.Unprotected != 0 {
			t.Errorf("verify: %v, %+v", err, rep)
		}
	})
}

func TestNewRefusesAnotherSigningKey(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	c := newChain(t, st, testOptions(t))
	if _, err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := audit.New(ctx, st, testOptions(t)); err == nil || !strings.Contains(err.Error(), "key rotation") {
		t.Errorf("New with another key = %v", err)
	}
}

func TestAccessorHMAC(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.Open(t, driver)
		opts := testOptions(t)
		c := newChain(t, st, opts)
		const accessor = "hvs-ACCESSOR-9f3k2LmQ"
		if c.HashAccessor(accessor) != c.HashAccessor(accessor) {
			t.Error("HMAC not stable")
		}
		other := testOptions(t)
		c2, err := audit.New(ctx, storetest.Open(t, store.DriverSQLite), other)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if c.HashAccessor(accessor) == c2.HashAccessor(accessor) {
			t.Error("HMAC the same under different keys")
		}
		if c.HashAccessor(accessor) == c.HashAccessor(accessor+"x") {
			t.Error("HMAC the same for different accessors")
		}
		r := sampleRecord(1)
		r.TokenAccessor = accessor
		got, err := c.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if got.TokenAccessorHMAC != c.HashAccessor(accessor) || strings.Contains(fmt.Sprintf("%+v", got), accessor) {
			t.Errorf("returned record carries %q / %q", got.TokenAccessorHMAC, got.TokenAccessor)
		}
		if _, err := c.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"audit_records", "audit_checkpoints", "audit_chain_head", "schema_migrations"} {
			assertTableLacks(t, st, table, accessor)
		}
		if st.Driver == store.DriverSQLite {
			// Also the raw bytes on disk, WAL included.
			files, _ := filepath.Glob(st.Path + "*")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte(accessor)) {
					t.Errorf("%s contains the raw accessor", f)
				}
			}
		}

		bad := sampleRecord(2)
		bad.TokenAccessorHMAC = accessor
		if _, err := c.Append(ctx, bad); err == nil {
			t.Error("Append accepted a caller-set TokenAccessorHMAC")
		}
	})
}

func assertTableLacks(t *testing.T, st *store.Store, table, secret string) {
	t.Helper()
	rows, err := st.DB.Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			var s string
			if b, ok := v.([]byte); ok {
				s = string(b)
			} else {
				s = fmt.Sprint(v)
			}
			if strings.Contains(s, secret) {
				t.Errorf("%s.%s holds the raw accessor", table, cols[i])
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 && table != "audit_chain_head" {
		t.Errorf("%s is empty; the scan proves nothing", table)
	}
}

func TestAppendValidates(t *testing.T) {
	st := storetest.Open(t, store.DriverSQLite)
	c := newChain(t, st, testOptions(t))
	for name, mut := range map[string]func(*audit.Record){
		"no request id": func(r *audit.Record) { r.RequestID = "" },
		"bad decision":  func(r *audit.Record) { r.Decision = "maybe" },
		"time in 1601":  func(r *audit.Record) { r.Time = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		r := sampleRecord(1)
		mut(&r)
		if _, err := c.Append(context.Background(), r); err == nil {
			t.Errorf("%s: Append succeeded", name)
		}
	}
	if _, err := audit.New(context.Background(), st, audit.Options{SigningKey: testOptions(t).SigningKey}); err == nil {
		t.Error("New without an HMAC key succeeded")
	}
	if _, err := audit.New(context.Background(), st, audit.Options{HMACKey: make([]byte, 32)}); err == nil {
		t.Error("New without a signing key succeeded")
	}
}

// TestAppendFailsClosed: when the store is gone or broken, Append returns
// an error — the gateway's cue to answer 503 and do nothing.
func TestAppendFailsClosed(t *testing.T) {
	forDrivers(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		t.Run("closed store", func(t *testing.T) {
			st := storetest.Open(t, driver)
			c := newChain(t, st, testOptions(t))
			appendN(t, c, 2)
			st.Close()
			if r, err := c.Append(ctx, sampleRecord(3)); err == nil {
				t.Fatalf("Append on a closed store succeeded: %+v", r)
			}
			if _, err := c.Checkpoint(ctx); err == nil {
				t.Error("Checkpoint on a closed store succeeded")
			}
			if _, err := audit.New(ctx, st, testOptions(t)); err == nil {
				t.Error("New on a closed store succeeded")
			}
		})
		t.Run("table dropped", func(t *testing.T) {
			st := storetest.Open(t, driver)
			c := newChain(t, st, testOptions(t))
			exec(t, st, `DROP TABLE audit_records`)
			if _, err := c.Append(ctx, sampleRecord(1)); err == nil {
				t.Fatal("Append without its table succeeded")
			}
			var seq int64
			if err := st.DB.QueryRow(`SELECT seq FROM audit_chain_head`).Scan(&seq); err != nil || seq != 0 {
				t.Errorf("head moved to %d (%v) by a failed append", seq, err)
			}
		})
		t.Run("head row missing", func(t *testing.T) {
			st := storetest.Open(t, driver)
			c := newChain(t, st, testOptions(t))
			exec(t, st, `DELETE FROM audit_chain_head`)
			if _, err := c.Append(ctx, sampleRecord(1)); err == nil || !strings.Contains(err.Error(), "head row is missing") {
				t.Fatalf("Append = %v", err)
			}
			if _, err := audit.New(ctx, st, testOptions(t)); err == nil {
				t.Error("New without a head row succeeded")
			}
		})
		t.Run("after Close", func(t *testing.T) {
			st := storetest.Open(t, driver)
			c := newChain(t, st, testOptions(t))
			c.Close()
			if _, err := c.Append(ctx, sampleRecord(1)); !errors.Is(err, audit.ErrClosed) {
				t.Fatalf("Append after Close = %v", err)
			}
		})
		t.Run("cancelled context", func(t *testing.T) {
			st := storetest.Open(t, driver)
			c := newChain(t, st, testOptions(t))
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := c.Append(cctx, sampleRecord(1)); !errors.Is(err, context.Canceled) {
				t.Fatalf("Append = %v", err)
			}
		})
	})
}

// BenchmarkAppend measures durable appends from concurrent callers (1, 8
// and 64 goroutines), reporting ns/op (inverse throughput) and per-append
// latency percentiles.
func BenchmarkAppend(b *testing.B) {
	for _, driver := range storetest.Drivers {
		for _, conc := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", driver, conc), func(b *testing.B) {
				st := storetest.Open(b, driver)
				c := newChain(b, st, testOptions(b))
				ctx := context.Background()
				var next atomic.Int64
				lat := make([][]time.Duration, conc)
				var wg sync.WaitGroup
				b.ResetTimer()
				for g := range conc {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							t0 := time.Now()
							if _, err := c.Append(ctx, sampleRecord(int(i))); err != nil {
								b.Error(err)
								return
							}
							lat[g] = append(lat[g], time.Since(t0))
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				var all []time.Duration
				for _, l := range lat {
					all = append(all, l...)
				}
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
				}
			})
		}
	}
}

// Every string a record carries is safe to print: control characters and
// text-reordering marks are stored as visible escapes, on both stores, and
// the escaped record still verifies.
func TestRecordStringsAreSafeToPrint(t *testing.T) {
	hostile := "a\x1b[31mred\r\nseq=99 decision=allow\u202egnp.exe\u2028\x7f\u0085\u200b"
	want := `a\x1b[31mred\x0d\x0aseq=99 decision=allow\u202egnp.exe\u2028\x7f\x85\u200b`
	forDrivers(t, func(t *testing.T, driver string) {
		{
			opts := testOptions(t)
			c := newChain(t, storetest.Open(t, driver), opts)
			ctx := context.Background()
			r := sampleRecord(1)
			r.UserAgent, r.TargetID, r.Outcome, r.Bundle, r.OwnerName = hostile, hostile, hostile, hostile, hostile
			r.Violations = []api.Violation{{Rule: hostile, Message: hostile, Path: hostile, ControlIDs: []string{hostile}}}
			r.ControlIDs = []string{hostile}
			if _, err := c.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
			recs, _, err := c.Query(ctx, audit.Filter{RequestID: r.RequestID})
			if err != nil || len(recs) != 1 {
				t.Fatalf("query: %v, %d records", err, len(recs))
			}
			got := recs[0]
			for name, v := range map[string]string{"user_agent": got.UserAgent, "target_id": got.TargetID, "outcome": got.Outcome,
				"bundle": got.Bundle, "owner_name": got.OwnerName, "violation rule": got.Violations[0].Rule,
				"violation message": got.Violations[0].Message, "violation path": got.Violations[0].Path,
				"violation control id": got.Violations[0].ControlIDs[0], "control id": got.ControlIDs[0]} {
				if v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			if rep, err := audit.Verify(ctx, c.Store(), c.VerifyKey()); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		}
	})
}
