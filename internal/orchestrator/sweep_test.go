package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Two replicas sweep one ledger at once: every sub-token whose revocation
// failed is revoked exactly once, with exactly one audit record, and one
// whose TTL passed first is recorded as such — never as a revocation.
func TestSweepRevokesEachSubTokenOnceAcrossReplicas(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, driver, &scriptedExecutor{})
			replica, err := orchestrator.New(ctx, orchestrator.Config{Store: r.st, Book: r.book, Vault: r.sess, Audit: r.chain})
			if err != nil {
				t.Fatal(err)
			}
			w := operations.Work{Operation: api.Operation{ID: "op-sweep", Kind: api.KindIPReservation, Action: api.ActionCreate,
				Owner: "alice", Bundle: "fedramp_sbx_default", Environment: "sbx", RequestID: "req-sweep"}, OwnerEntityID: "e1"}
			mint := func(ttl time.Duration) vault.SubToken {
				sub, err := r.sess.MintSubToken(ctx, vault.SubTokenRequest{Environment: "sbx", TTL: ttl, OperationID: w.ID, RequestID: w.RequestID, Owner: w.Owner, Bundle: w.Bundle})
				if err != nil {
					t.Fatal(err)
				}
				if err := r.book.RecordSubToken(ctx, operations.SubTokenRecord{Accessor: sub.Accessor, OperationID: w.ID, Purpose: "operation", Work: w, ExpiresAt: sub.ExpireTime}); err != nil {
					t.Fatal(err)
				}
				return sub
			}
			const n = 6
			var failed []string
			for i := 0; i < n; i++ {
				sub := mint(2 * time.Minute)
				if _, err := r.book.SubTokenRevokeFailed(ctx, sub.Accessor, errors.New("vault: connection refused")); err != nil {
					t.Fatal(err)
				}
				failed = append(failed, sub.Accessor)
			}
			expired := mint(time.Second)
			for time.Now().Before(expired.ExpireTime.Add(time.Second)) {
				time.Sleep(100 * time.Millisecond) // let its TTL pass: the state under test
			}

			var wg sync.WaitGroup
			for _, o := range []*orchestrator.Orchestrator{r.orch, replica} {
				wg.Add(1)
				go func() { defer wg.Done(); o.Sweep(ctx) }()
			}
			wg.Wait()

			for _, acc := range failed {
				if alive, err := r.sess.SubTokenAlive(ctx, acc); err != nil || alive {
					t.Errorf("sub-token %s alive after the sweep (%v)", acc, err)
				}
			}
			left, err := r.book.SubTokensToSweep(ctx, time.Now().Add(time.Hour))
			if err != nil || len(left) != 0 {
				t.Fatalf("ledger after the sweep: %d rows (%v)", len(left), err)
			}
			recs, _, err := r.chain.Query(ctx, audit.Filter{RequestID: w.RequestID})
			if err != nil {
				t.Fatal(err)
			}
			perToken := map[string][]string{}
			for _, rec := range recs {
				perToken[rec.TokenAccessorHMAC] = append(perToken[rec.TokenAccessorHMAC], rec.Outcome)
			}
			for _, acc := range failed {
				got := perToken[r.chain.HashAccessor(acc)]
				if len(got) != 1 || got[0] != "sub-token revoked by the sweep after 1 failed attempt(s)" {
					t.Errorf("audit of a swept sub-token: %q, want one revocation by the sweep", got)
				}
			}
			if got := perToken[r.chain.HashAccessor(expired.Accessor)]; len(got) != 1 || !strings.HasPrefix(got[0], "sub-token revoked: its TTL passed at ") {
				t.Errorf("audit of an expired sub-token: %q, want one record saying its TTL passed", got)
			}
		})
	}
}
