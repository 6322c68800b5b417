package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
)

// StartCalm starts the Calm v3 simulator seeded with the projects and
// blueprints of the example bundles' catalogs (short simulated durations),
// and stores its credentials in this Vault at sas/<env>/calm, as an
// operator would; it stops when the test ends.
func (e *Env) StartCalm(t testing.TB, configure ...func(*devstack.CalmOptions)) *simcalm.Server {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	o := devstack.CalmOptions{
		StateDir: t.TempDir(), BundleDir: filepath.Join(root, "examples", "bundles"),
		LaunchTime: 300 * time.Millisecond, ProvisionTime: 500 * time.Millisecond,
		DeleteTime: 300 * time.Millisecond, ActionTime: 300 * time.Millisecond,
	}
	for _, f := range configure {
		f(&o)
	}
	sim, err := devstack.StartCalm(context.Background(), e.admin, o)
	if err != nil {
		t.Fatalf("testenv: start calm simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}
