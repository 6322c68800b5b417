package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// BenchmarkCalmLaunches20 launches 20 Calm apps at once, first straight
// against the simulator with the gateway's own Calm client (polling as the
// executor does), then through the gateway (policy, audit, orchestrator, a
// sub-token per step, checkpoints), and reports both wall times and their
// ratio: the gateway's overhead per launch. Run with -benchtime=1x.
func BenchmarkCalmLaunches20(b *testing.B) {
	const n = 20
	for i := 0; i < b.N; i++ {
		env.StartInfoblox(b) // a network-mode app's address is held in Infoblox first
		sim := env.StartCalm(b, func(o *devstack.CalmOptions) { o.LaunchTime, o.ProvisionTime = time.Second, time.Second })
		gw := env.StartGateway(b, unlimited)
		owner := fmt.Sprintf("calm-bench-%d", i)
		tok := env.Caller(b, vaultsetup.CallerSpec{Entity: owner, Bundles: []string{sbx}})
		kv, err := env.Admin().KVv2(vaultsetup.KVMount).Get(b.Context(), "sbx/calm")
		if err != nil {
			b.Fatal(err)
		}
		c, err := calm.New(calm.Config{BaseURL: kv.Data["url"].(string), Username: kv.Data["username"].(string), Password: kv.Data["password"].(string)})
		if err != nil {
			b.Fatal(err)
		}

		direct := timeAll(b, n, func(k int) error { return launchDirect(b.Context(), c, fmt.Sprintf("direct-%02d", k)) })
		viaGateway := timeAll(b, n, func(k int) error {
			a := do(b, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
				body: fmt.Sprintf(`{"name":"gw-%02d","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`, k)})
			if a.status != http.StatusAccepted {
				return fmt.Errorf("launch %d: %d %s", k, a.status, a.body)
			}
			var id string
			if _, after, ok := strings.Cut(string(a.body), `"id":"`); ok {
				id, _, _ = strings.Cut(after, `"`)
			}
			for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				op, err := gw.Gateway.OperationFor(id)
				if err != nil {
					return err
				}
				switch op.State {
				case api.OperationSucceeded:
					return nil
				case api.OperationFailed, api.OperationCancelled:
					return fmt.Errorf("operation %s %s: %s", id, op.State, op.Error)
				}
			}
			return fmt.Errorf("operation %s not done after 5m", id)
		})
		b.StopTimer()
		running := 0
		for _, a := range sim.Apps() {
			if a.State == "running" {
				running++
			}
		}
		minted, revoked := subTokenCounts(b, gw, owner)
		if running != 2*n || minted != revoked || minted < n {
			b.Fatalf("%d apps running (want %d); sub-tokens minted %d, revoked %d", running, 2*n, minted, revoked)
		}
		b.ReportMetric(direct.Seconds(), "direct_s")
		b.ReportMetric(viaGateway.Seconds(), "gateway_s")
		b.ReportMetric(viaGateway.Seconds()/direct.Seconds(), "gateway/direct")
		b.ReportMetric((viaGateway-direct).Seconds()*1000/n, "overhead_ms/launch")
		b.ReportMetric(float64(minted), "subtokens_minted")
		b.ReportMetric(float64(revoked), "subtokens_revoked")
		b.StartTimer()
	}
}

// timeAll runs f for 0..n-1 at once and returns how long all took.
func timeAll(b *testing.B, n int, f func(int) error) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	start := time.Now()
	errs := make([]error, n)
	for k := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[k] = f(k) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// launchDirect is what the executor does for one app, without the gateway:
// find the blueprint, launch, follow the launch, then the app, every second.
func launchDirect(ctx context.Context, c *calm.Client, name string) error {
	bp, err := c.BlueprintByName(ctx, "sas-sbx", "linux-vm-sandbox")
	if err != nil {
		return err
	}
	id, err := c.SimpleLaunch(ctx, bp.UUID, calm.LaunchSpec{AppName: name, ProfileName: api.DefaultCalmProfile, Variables: []calm.Variable{
		{Name: "VCPUS", Value: "1"}, {Name: "MEMORY_GIB", Value: "2"}, {Name: "DISK_GIB", Value: "20"}, {Name: "NETWORK", Value: "10.10.0.0/24"}}})
	if err != nil {
		return err
	}
	for {
		time.Sleep(time.Second)
		st, err := c.PendingLaunch(ctx, bp.UUID, id)
		if err != nil {
			return err
		}
		if st.Failed() {
			return fmt.Errorf("launch %s failed: %s", id, st.Message)
		}
		if !st.Succeeded() {
			continue
		}
		for {
			app, err := c.App(ctx, st.AppUUID)
			if err != nil {
				return err
			}
			if app.State == "running" {
				return nil
			}
			time.Sleep(time.Second)
		}
	}
}
