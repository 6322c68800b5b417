package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// The gateway's overhead over Vault itself, measured side by side in one
// run: BenchmarkVaultLookupSelf is the raw rate of the call every gateway
// request depends on; BenchmarkDecisions is POST /v1/decisions end to end
// (token lookup in Vault, strict decode, OPA evaluation, SQLite audit
// append with fsync). Both at 1, 10 and 50 concurrent clients, reporting
// p50/p99 latency. Compare req/s of the same concurrency.

var concurrencies = []int{1, 10, 50}

func BenchmarkVaultLookupSelf(b *testing.B) {
	tok := env.Caller(b, vaultsetup.CallerSpec{Entity: "bench", Bundles: []string{sbx}})
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
			client, err := vault.NewClient(env.VaultAddr)
			if err != nil {
				b.Fatal(err)
			}
			client.SetToken(tok)
			measure(b, c, func() error {
				_, err := client.Auth().Token().LookupSelf()
				return err
			})
		})
	}
}

func BenchmarkDecisions(b *testing.B) { benchDecisions(b) }

// BenchmarkDecisionsTokenCache is the same with token_cache_ttl = 2s.
func BenchmarkDecisionsTokenCache(b *testing.B) {
	benchDecisions(b, func(c *server.Config) { c.TokenCacheTTL = 2 * time.Second })
}

// unlimited lifts the per-identity rate limit: a benchmark measures the
// gateway's capacity, not its limit.
func unlimited(c *server.Config) { c.RateLimit, c.RateBurst = 1e9, 1e9 }

func benchDecisions(b *testing.B, configure ...func(*server.Config)) {
	gw := env.StartGateway(b, append([]func(*server.Config){unlimited}, configure...)...)
	tok := env.Caller(b, vaultsetup.CallerSpec{Entity: "bench", Bundles: []string{sbx}})
	body := []byte(`{"kind":"ip_reservation","action":"create","request":{"network":"sbx-app","hostname":"web-01","dns_zone":"sbx.example.internal"}}`)
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			measure(b, c, func() error {
				req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/decisions", bytes.NewReader(body))
				req.Header.Set(api.HeaderVaultToken, tok)
				req.Header.Set(api.HeaderPolicyBundle, sbx)
				req.Header.Set(api.HeaderEnvironment, "sbx")
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}

// measure runs op b.N times across c goroutines and reports req/s, p50, p99.
func measure(b *testing.B, c int, op func() error) {
	b.Helper()
	lat := make([]time.Duration, b.N)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, c)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
