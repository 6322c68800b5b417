package devstack

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// CalmUser is the simulator's Prism user; its password is random per start.
const CalmUser = "sas-dev"

// CalmOptions tune the Calm simulator (for tests and demos).
type CalmOptions struct {
	StateDir  string // the simulator's state file (and CA under TLS) live here
	BundleDir string // sas/<env>/calm is written for every environment a bundle names
	// Seed is what Calm starts with; nil is simcalm.DefaultSeed(), whose
	// projects and blueprints match the example bundles' catalogs.
	Seed *simcalm.Seed
	// LaunchTime, ProvisionTime, DeleteTime and ActionTime are the
	// simulated durations (the simulator's defaults when zero).
	LaunchTime, ProvisionTime, DeleteTime, ActionTime time.Duration
	FailRate                                          float64
	Latency                                           time.Duration
	// TLS serves HTTPS with a fresh self-signed CA, as Prism Central does;
	// the CA goes to CAFile(StateDir) and beside the credentials (ca_cert).
	TLS    bool
	Logger hclog.Logger
	// Clock replaces the simulator's time (tests).
	Clock func() time.Time
}

// StartCalm starts the Calm v3 simulator on loopback and writes its URL and
// credentials to sas/<env>/calm in Vault for each environment the bundles
// name — the only place they are kept.
func StartCalm(ctx context.Context, admin *vaultapi.Client, o CalmOptions) (*simcalm.Server, error) {
	envs, err := bundleEnvironments(ctx, o.BundleDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	secret := map[string]any{"username": CalmUser, "password": password}
	var tlsConfig *tls.Config
	if o.TLS {
		b, err := serveTLS(o.StateDir)
		if err != nil {
			return nil, err
		}
		tlsConfig, secret["ca_cert"] = b.ServerConfig, string(b.CAPEM)
	}
	sim, err := simcalm.New(simcalm.Options{
		StatePath:     filepath.Join(o.StateDir, "calm.json"),
		Users:         map[string]string{CalmUser: password},
		Seed:          o.Seed,
		Clock:         o.Clock,
		LaunchTime:    o.LaunchTime,
		ProvisionTime: o.ProvisionTime,
		DeleteTime:    o.DeleteTime,
		ActionTime:    o.ActionTime,
		FailRate:      o.FailRate,
		Latency:       o.Latency,
		TLSConfig:     tlsConfig,
		Logger:        o.Logger,
	})
	if err != nil {
		return nil, err
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	secret["url"] = url
	for _, env := range envs {
		if _, err := admin.KVv2(vaultsetup.KVMount).Put(ctx, env+"/calm", secret); err != nil {
			_ = sim.Close()
			return nil, fmt.Errorf("store calm credentials at %s/%s/calm: %w", vaultsetup.KVMount, env, err)
		}
	}
	return sim, nil
}

// bundleEnvironments lists every environment the bundles in dir name.
func bundleEnvironments(ctx context.Context, dir string) ([]string, error) {
	eval, err := policy.Load(ctx, policy.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var envs []string
	for _, b := range eval.Bundles() {
		for _, e := range b.Spec.Environments {
			if !seen[e] {
				seen[e] = true
				envs = append(envs, e)
			}
		}
	}
	sort.Strings(envs)
	return envs, nil
}
