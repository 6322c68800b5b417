package policy

import (
	"context"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// BenchmarkEvaluate measures one decision under fedramp_sbx_default from
// many goroutines, as the gateway makes them.
func BenchmarkEvaluate(b *testing.B) {
	e := load(b, Options{Dir: examplesDir})
	inputs := map[string]Input{
		"ip_reservation": ipInput("fedramp_sbx_default", "sbx", map[string]any{
			"network": "10.10.0.0/25", "hostname": "web-01", "dns_zone": "sbx.example.internal",
			"aliases": []any{"www.sbx.example.internal"},
		}),
		"calm_app_typed": {Environment: "sbx", Kind: api.KindCalmApp, Action: api.ActionCreate, Caller: sbxCaller("fedramp_sbx_default"),
			Request: api.CalmAppRequest{Name: "demo", Project: "sas-sbx", Blueprint: "linux-vm-sandbox", Network: "sbx-app", Size: api.MachineSize{VCPUs: 2, MemoryGiB: 4, DiskGiB: 50}}},
		"denied_prod": ipInput("fedramp_sbx_default", "prod", sbxIPRequest()),
	}
	for name, in := range inputs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := e.Evaluate(ctx, "fedramp_sbx_default", in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
