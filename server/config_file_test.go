package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/server"
)

func TestLoadConfigExample(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../examples/gateway/sas-server.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sas-server.hcl")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/etc/sas/vault-secret-id", secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SAS_MAX_CALLER_TTL", "4h") // env overrides the file
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr != "0.0.0.0:8443" || cfg.TLSCertFile == "" || cfg.ReadTimeout != 30*time.Second || cfg.IdleTimeout != 2*time.Minute {
		t.Errorf("listen block: %+v", cfg)
	}
	if cfg.MaxCallerTTL != 4*time.Hour {
		t.Errorf("max caller TTL = %s; SAS_MAX_CALLER_TTL should override the file", cfg.MaxCallerTTL)
	}
	if cfg.VaultLogin.SecretID != "s3cret" || cfg.VaultLogin.RoleID == "" {
		t.Errorf("approle not loaded")
	}
	if cfg.RateLimit != 20 || cfg.RateBurst != 40 || cfg.UnauthenticatedRate != 5 || cfg.UnauthenticatedBurst != 30 ||
		cfg.MetricsAddr != "127.0.0.1:9464" || cfg.BundleReloadInterval != 30*time.Second || !cfg.LogJSON {
		t.Errorf("rate/policy/log: %+v", cfg)
	}
}

func TestLoadConfigErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ body, want string }{
		"bad duration":    {"vault {\n  address = \"http://v\"\n  max_caller_ttl = \"forever\"\n}\n", "bad.hcl:3"},
		"unknown setting": {"listen {\n  adress = \"x\"\n}\n", "bad.hcl:2"},
		"syntax":          {"listen {\n  address = \n}\n", "bad.hcl:2"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.hcl")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := server.LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to name %s", err, tc.want)
			}
		})
	}
}

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8200": true, "localhost:1": true, "[::1]:8200": true, "0.0.0.0:8200": false, "10.0.0.5:443": false} {
		cfg := server.Config{ListenAddr: addr, VaultAddr: "http://v", DataDir: "d", BundleDir: "b"}
		cfg.VaultLogin.RoleID, cfg.VaultLogin.SecretID = "r", "s"
		err := cfg.Validate()
		if ok != (err == nil) {
			t.Errorf("%s: %v", addr, err)
		}
		if !ok && !strings.Contains(err.Error(), "tls_cert_file") {
			t.Errorf("%s: error does not say what to do: %v", addr, err)
		}
	}
}

// Metrics name every bundle: like the API, they are plain HTTP on loopback only.
func TestMetricsListenerOnLoopbackWithoutTLS(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:9464": true, "[::1]:0": true, "0.0.0.0:9464": false, "bogus": false} {
		cfg := server.Config{ListenAddr: "127.0.0.1:8200", MetricsAddr: addr, VaultAddr: "http://v", DataDir: "d", BundleDir: "b"}
		cfg.VaultLogin.RoleID, cfg.VaultLogin.SecretID = "r", "s"
		if err := cfg.Validate(); ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "metrics address")) {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
