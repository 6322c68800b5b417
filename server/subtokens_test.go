package server_test

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// Vault stops answering while operations hold sub-tokens: their own
// revocations fail, and once Vault is back the sweep revokes every one —
// long before their TTL — so no sub-token outlives the outage, and the
// audit chain tells the failure and the sweep's revocation apart.
func TestSubTokensAreRevokedAfterAVaultOutage(t *testing.T) {
	env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 700 * time.Millisecond })
	gw := env.StartGateway(t, func(c *server.Config) {
		c.OperationTimeout = 2 * time.Minute // the TTL: far beyond this test, so expiry cannot pass for revocation
		c.RevokeTimeout = 2 * time.Second
		c.SweepInterval = 500 * time.Millisecond
	})
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "outage", Bundles: []string{sbx}})
	const n = 6
	var ops []string
	for i := 0; i < n; i++ {
		ops = append(ops, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
			body: reservationBody(fmt.Sprintf("outage-%d", i), "")})).ID)
	}
	// Pause Vault once every operation holds its sub-token.
	waitAudit(t, gw, "sub-token minted", n, 30*time.Second)
	vault := env.VaultProcess()
	if err := vault.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = vault.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	// Proof the outage hit mid-flight: revocations failed while Vault was away.
	waitAudit(t, gw, "sub-token revocation failed", 1, 40*time.Second)
	time.Sleep(3 * time.Second) // keep Vault away a little longer, as a real outage would be
	failed := countAudit(t, gw, "sub-token revocation failed")
	resume()

	for _, id := range ops {
		if op := waitOperation(t, gw, tok, id); op.State != api.OperationSucceeded {
			t.Fatalf("operation %s after the outage: %+v", id, op)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for pendingSubTokens(t, gw) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := pendingSubTokens(t, gw); left > 0 {
		t.Fatalf("%d sub-tokens still on the ledger 30s after Vault came back", left)
	}
	if live := liveSubTokens(t, ops); len(live) > 0 {
		t.Fatalf("sub-tokens still alive in Vault after the outage: %v", live)
	}
	swept := countAudit(t, gw, "sub-token revoked by the sweep")
	if swept < failed {
		t.Fatalf("%d revocations failed during the outage, but the sweep audited only %d", failed, swept)
	}
	if expired := countAudit(t, gw, "sub-token expired"); expired > 0 {
		t.Fatalf("%d sub-tokens were left to expire instead of being revoked", expired)
	}
	t.Logf("%d revocations failed while Vault was stopped; the sweep revoked %d once it was back; 0 live", failed, swept)
}

// countAudit counts the chain's records whose outcome starts with prefix.
func countAudit(t *testing.T, gw *testenv.Gateway, prefix string) int {
	t.Helper()
	var n int
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT count(*) FROM audit_records WHERE outcome LIKE $1`, prefix+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitAudit waits (reading the store, not the API: Vault may be away)
// until at least n records' outcomes start with prefix.
func waitAudit(t *testing.T, gw *testenv.Gateway, prefix string, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := countAudit(t, gw, prefix)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit records %q after %s, want %d", got, prefix, within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pendingSubTokens(t *testing.T, gw *testenv.Gateway) int {
	t.Helper()
	var n int
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT count(*) FROM subtokens`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// liveSubTokens lists the live sub-tokens of these operations.
func liveSubTokens(t *testing.T, ops []string) []string {
	t.Helper()
	return env.LiveSubTokens(t, func(meta map[string]any) bool { return slices.Contains(ops, fmt.Sprint(meta["operation_id"])) })
}
