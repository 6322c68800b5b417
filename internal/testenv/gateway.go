package testenv

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// Gateway is a gateway serving on a loopback httptest server.
type Gateway struct {
	URL     string
	Gateway *server.Gateway
}

// StartGateway starts a gateway against this Vault, logged in with the
// gateway AppRole, with its store in a per-test directory; it stops when
// the test ends. configure may adjust the config before start.
func (e *Env) StartGateway(t testing.TB, configure ...func(*server.Config)) *Gateway {
	t.Helper()
	tw := &testWriter{t: t}
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cfg := server.Config{
		ListenAddr:        "127.0.0.1:0",
		VaultAddr:         e.VaultAddr,
		VaultLogin:        e.GatewayLogin,
		DataDir:           t.TempDir(),
		BundleDir:         filepath.Join(root, "examples", "bundles"),
		GenerateAuditKeys: true,
		Logger:            hclog.New(&hclog.LoggerOptions{Name: "gateway", Level: hclog.Warn, Output: tw}),
		// Module runs: the shipped catalog, run by the Terraform and the
		// provider mirror `make tools` built.
		ModuleCatalogDir: filepath.Join(root, "examples", "modules"),
		TerraformPath:    filepath.Join(root, "bin", "terraform"),
		ModulePluginDir:  filepath.Join(root, "bin", "plugins"),
		ModuleWorkDir:    filepath.Join(t.TempDir(), "runs"),
	}
	for _, f := range configure {
		f(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("testenv: start gateway: %v", err)
	}
	if err := gw.Start(ctx); err != nil {
		cancel()
		_ = gw.Close()
		t.Fatalf("testenv: start gateway: %v", err)
	}
	ts := httptest.NewServer(gw.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = gw.Close()
		cancel()
		tw.done.Store(true)
	})
	return &Gateway{URL: ts.URL, Gateway: gw}
}

// testWriter sends gateway logs to the test's log, shown only on failure,
// and drops what arrives after the test ended (t.Log would panic).
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
