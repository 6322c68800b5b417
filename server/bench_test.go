package server_test

import (
	"net/http"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// BenchmarkIdentity measures boundary ① end to end: every request is
// verified against the real Vault (token lookup + entity read). Compare
// with BenchmarkHealth (no Vault token lookup) in the same run.
func BenchmarkIdentity(b *testing.B) {
	gw := env.StartGateway(b)
	tok := env.Caller(b, vaultsetup.CallerSpec{Entity: "bench", Bundles: []string{"fedramp_sbx_default"}})
	benchGet(b, gw.URL+"/v1/identity", tok)
}

func BenchmarkHealth(b *testing.B) {
	gw := env.StartGateway(b)
	benchGet(b, gw.URL+"/v1/sys/health", "")
}

func benchGet(b *testing.B, url, token string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if token != "" {
				req.Header.Set(api.HeaderVaultToken, token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
