package testenv

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
)

// StartInfoblox starts the Infoblox WAPI simulator seeded with the example
// bundles' networks, and stores its credentials in this Vault at
// sas/<env>/infoblox (as an operator would); it stops when the test ends.
func (e *Env) StartInfoblox(t testing.TB, configure ...func(*devstack.InfobloxOptions)) *siminfoblox.Server {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	o := devstack.InfobloxOptions{StateDir: t.TempDir(), BundleDir: filepath.Join(root, "examples", "bundles")}
	for _, f := range configure {
		f(&o)
	}
	sim, err := devstack.StartInfoblox(context.Background(), e.admin, o)
	if err != nil {
		t.Fatalf("testenv: start infoblox simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}
