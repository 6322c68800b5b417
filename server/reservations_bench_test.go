package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// benchBundles copies the example bundles and gives the sandbox bundle
// three /22 networks, room for 1,000 reservations.
func benchBundles(b *testing.B) (dir string, nets []string) {
	b.Helper()
	root, _ := devvault.RepoRoot()
	dir = b.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "bundles"))); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, sbx, "data.json")
	raw, _ := os.ReadFile(path)
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		b.Fatal(err)
	}
	networks := d["sas"].(map[string]any)["bundle"].(map[string]any)["networks"].(map[string]any)
	for i, cidr := range []string{"10.40.0.0/22", "10.40.4.0/22", "10.40.8.0/22"} {
		networks[fmt.Sprintf("bench-%d", i)] = map[string]any{"cidr": cidr, "environments": []string{"sbx"}, "description": "benchmark"}
		nets = append(nets, fmt.Sprintf("bench-%d", i))
	}
	out, _ := json.Marshal(d)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir, nets
}

// BenchmarkReservations1000 submits 1,000 IP reservations at once through
// the gateway (policy, audit, orchestrator, a sub-token each, the Infoblox
// simulator) and waits for all of them. Run with -benchtime=1x.
func BenchmarkReservations1000(b *testing.B) {
	const n = 1000
	bundles, nets := benchBundles(b)
	for i := 0; i < b.N; i++ {
		sim := env.StartInfoblox(b, func(o *devstack.InfobloxOptions) { o.BundleDir = bundles })
		gw := env.StartGateway(b, unlimited, func(c *server.Config) { c.BundleDir = bundles; c.WorkersPerKind = 16 })
		tok := env.Caller(b, vaultsetup.CallerSpec{Entity: fmt.Sprintf("bench-%d", i), Bundles: []string{sbx}})
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
		type sub struct {
			id    string
			start time.Time
		}
		subs := make([]sub, n)
		var wg sync.WaitGroup
		start := time.Now()
		for k := 0; k < n; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				body := fmt.Sprintf(`{"network":%q,"hostname":"bench-%04d","dns_zone":"sbx.example.internal"}`, nets[k%len(nets)], k)
				req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/ip-reservations", strings.NewReader(body))
				req.Header.Set(api.HeaderVaultToken, tok)
				req.Header.Set(api.HeaderPolicyBundle, sbx)
				req.Header.Set(api.HeaderEnvironment, "sbx")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				var op api.Operation
				_ = json.NewDecoder(resp.Body).Decode(&op)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("create %d: status %d", k, resp.StatusCode)
				}
				subs[k] = sub{op.ID, t0}
			}(k)
		}
		wg.Wait()
		accepted := time.Since(start)
		// Completion time per reservation comes from the operation record.
		lat := make([]time.Duration, 0, n)
		deadline := time.Now().Add(10 * time.Minute)
		for _, s := range subs {
			for {
				op, err := gw.Gateway.OperationFor(s.id)
				if err != nil {
					b.Fatal(err)
				}
				if op.State == api.OperationSucceeded {
					lat = append(lat, op.UpdatedAt.Sub(s.start))
					break
				}
				if op.State == api.OperationFailed || time.Now().After(deadline) {
					b.Fatalf("operation %s: %s %s", s.id, op.State, op.Error)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		total := time.Since(start)
		b.StopTimer()
		ips := map[string]bool{}
		for _, h := range sim.Hosts() {
			for _, ip := range h.IPv4Addrs {
				if ips[ip] {
					b.Fatalf("duplicate IP %s", ip)
				}
				ips[ip] = true
			}
		}
		if len(ips) != n {
			b.Fatalf("%d addresses allocated, want %d", len(ips), n)
		}
		minted, revoked := subTokenCounts(b, gw, fmt.Sprintf("bench-%d", i))
		if minted != revoked || minted < n {
			b.Fatalf("sub-tokens minted %d, revoked %d", minted, revoked)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(n)/total.Seconds(), "reservations/s")
		b.ReportMetric(accepted.Seconds(), "accept_all_s")
		b.ReportMetric(float64(lat[n/2].Milliseconds()), "p50_ms")
		b.ReportMetric(float64(lat[n*99/100].Milliseconds()), "p99_ms")
		b.ReportMetric(0, "duplicate_ips")
		b.ReportMetric(float64(minted), "subtokens_minted")
		b.ReportMetric(float64(revoked), "subtokens_revoked")
		b.StartTimer()
	}
}

// subTokenCounts counts the sub-tokens the trail says were minted and
// revoked for owner's operations.
func subTokenCounts(b *testing.B, gw *testenv.Gateway, owner string) (minted, revoked int) {
	b.Helper()
	for after := int64(0); ; {
		recs, _, err := gw.Gateway.AuditChain().Query(b.Context(), audit.Filter{Owner: owner, After: after, Limit: audit.MaxQueryLimit})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			switch {
			case strings.HasPrefix(r.Outcome, "sub-token minted"):
				minted++
			case strings.HasPrefix(r.Outcome, "sub-token revoked"):
				revoked++
			}
			after = r.Seq
		}
		if len(recs) < audit.MaxQueryLimit {
			return minted, revoked
		}
	}
}
