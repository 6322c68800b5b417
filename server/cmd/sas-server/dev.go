package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

const (
	devBundle      = "fedramp_sbx_default"
	devEnvironment = "sbx"
	devEntity      = "demo-user"
)

// dev runs the local stack like `vault server -dev`: a real Vault dev
// server configured by the same code as the test environment, then the
// gateway on loopback with its embedded store under -data-dir. Everything
// it started stops on SIGINT/SIGTERM.
func dev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8400", "gateway listen address (loopback)")
	metricsListen := fs.String("metrics-listen", "127.0.0.1:0", "Prometheus metrics listen address (loopback; port 0 picks one, written to the env file)")
	dataDir := fs.String("data-dir", ".sas-dev", "directory for the gateway's database and the dev Vault's files")
	envFile := fs.String("env-file", "", "write SAS_ADDR, VAULT_ADDR, VAULT_TOKEN, … as KEY=VALUE lines to this file (mode 0600)")
	vaultBin := fs.String("vault-dev-bin", "", "path to the vault-dev binary (default: next to sas-server, then ./bin/vault-dev)")
	tokenTTL := fs.Duration("token-ttl", 2*time.Hour, "TTL of the demo caller token written to the env file")
	logLevel := fs.String("log-level", "info", "log level")
	bundleDir := fs.String("bundle-dir", "", "policy bundles (default: examples/bundles of this repository)")
	calmLaunchTime := fs.Duration("calm-launch-time", 2*time.Second, "how long a simulated Calm launch runs before its app exists")
	calmProvisionTime := fs.Duration("calm-provision-time", 5*time.Second, "how long a simulated Calm app provisions (real ones: 10-30 min)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(*logLevel, os.Getenv("SAS_LOG_FORMAT") == "json")

	bin, err := findVaultDev(*vaultBin)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	vs, creds, err := devvault.StartConfigured(ctx, bin, filepath.Join(abs, "vault"), vaultsetup.DefaultOptions())
	if err != nil {
		return err
	}
	defer vs.Stop()
	logger.Info("vault dev server configured", "addr", vs.Addr)

	admin, err := vs.AdminClient()
	if err != nil {
		return err
	}
	callerToken, err := vaultsetup.MintCallerToken(ctx, admin, vaultsetup.CallerSpec{
		Entity: devEntity, Bundles: []string{devBundle}, TTL: *tokenTTL,
	})
	if err != nil {
		return err
	}

	if *bundleDir == "" {
		root, err := devvault.RepoRoot()
		if err != nil {
			return fmt.Errorf("no -bundle-dir given and not inside the sas repository: %w", err)
		}
		*bundleDir = filepath.Join(root, "examples", "bundles")
	}
	ib, err := devstack.StartInfoblox(ctx, admin, devstack.InfobloxOptions{
		StateDir: filepath.Join(abs, "infoblox"), BundleDir: *bundleDir, Logger: logger.Named("infoblox-sim"), TLS: true,
	})
	if err != nil {
		return err
	}
	defer ib.Close()
	logger.Info("infoblox simulator up; its credentials are in Vault at sas/<env>/infoblox", "url", ib.URL())
	calmDir := filepath.Join(abs, "calm")
	calm, err := devstack.StartCalm(ctx, admin, devstack.CalmOptions{
		StateDir: calmDir, BundleDir: *bundleDir, Logger: logger.Named("calm-sim"), TLS: true,
		LaunchTime: *calmLaunchTime, ProvisionTime: *calmProvisionTime,
	})
	if err != nil {
		return err
	}
	defer calm.Close()
	logger.Info("calm simulator up; its credentials are in Vault at sas/<env>/calm", "url", calm.URL())

	cfg := server.Config{
		ListenAddr:        *listen,
		MetricsAddr:       *metricsListen,
		VaultAddr:         vs.Addr,
		VaultLogin:        vault.AppRoleLogin{RoleID: creds.RoleID, SecretID: creds.SecretID},
		DataDir:           filepath.Join(abs, "gateway"),
		BundleDir:         *bundleDir,
		GenerateAuditKeys: true, // dev only: keys in <data-dir>/gateway/keys
		Logger:            logger,
	}
	// Module runs: the shipped catalog, with the Terraform and the provider
	// mirror `make tools` built, when this runs inside the repository.
	if root, err := devvault.RepoRoot(); err == nil {
		tf, plugins := filepath.Join(root, "bin", "terraform"), filepath.Join(root, "bin", "plugins")
		if _, err := os.Stat(tf); err == nil {
			if _, err := os.Stat(plugins); err == nil {
				cfg.ModuleCatalogDir, cfg.TerraformPath, cfg.ModulePluginDir = filepath.Join(root, "examples", "modules"), tf, plugins
			}
		}
	}
	return runGateway(ctx, cfg, func(at listening) error {
		addr := at.API
		env := map[string]string{
			"SAS_ADDR":                 addr,
			"SAS_DEV_METRICS_URL":      at.Metrics + "/metrics",
			"VAULT_ADDR":               vs.Addr,
			"VAULT_TOKEN":              callerToken,
			"SAS_POLICY_BUNDLE":        devBundle,
			"SAS_ENVIRONMENT":          devEnvironment,
			"SAS_DEV_VAULT_ROOT_TOKEN": vs.RootToken(),
			"SAS_DATA_DIR":             abs,
			"SAS_DEV_INFOBLOX_URL":     ib.URL(),
			"SAS_DEV_INFOBLOX_CA":      devstack.CAFile(filepath.Join(abs, "infoblox")),
			"SAS_DEV_CALM_URL":         calm.URL(),
			"SAS_DEV_CALM_CA":          devstack.CAFile(calmDir),
		}
		if *envFile != "" {
			if err := writeEnvFile(*envFile, env); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "\nsas dev stack is up (Ctrl-C stops it)\n  gateway: %s\n  metrics: %s/metrics\n  vault:   %s\n  caller:  entity %q, bundle %q, environment %q\n", addr, at.Metrics, vs.Addr, devEntity, devBundle, devEnvironment)
		if *envFile != "" {
			fmt.Fprintf(os.Stderr, "  env:     %s (holds tokens; do not share)\n\n", *envFile)
		}
		return nil
	})
}

func findVaultDev(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vault-dev")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := devvault.FindRepoTool("vault-dev"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("vault-dev binary not found next to sas-server or in ./bin; run `make tools` or pass -vault-dev-bin")
}

// writeEnvFile writes KEY=VALUE lines atomically with mode 0600: the file
// holds tokens.
func writeEnvFile(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
