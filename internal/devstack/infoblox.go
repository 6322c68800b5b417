// Package devstack starts the downstream simulators of the local stack
// (`sas-server dev`) and the test environment, seeded from the policy
// bundles, with their credentials stored where production keeps them:
// Vault KV at sas/<env>/<system>, readable only by sub-tokens.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/sim/simtls"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// InfobloxUser is the simulator's WAPI user; its password is random per start.
const InfobloxUser = "sas-dev"

// InfobloxOptions tune the simulator (for tests and demos).
type InfobloxOptions struct {
	StateDir  string // the grid's state file lives here
	BundleDir string // networks are seeded from every bundle's declaration
	FailRate  float64
	Latency   time.Duration
	Logger    hclog.Logger
	// ExtraNetworks are seeded too (e.g. large ranges for benchmarks).
	ExtraNetworks []string
	// TLS serves HTTPS with a fresh self-signed CA, as a grid master does;
	// the CA is written to <StateDir>/ca.pem and stored beside the
	// credentials (ca_cert) so the gateway trusts exactly it.
	TLS bool
}

// CAFile is where StartInfoblox and StartCalm write their simulator's CA
// under TLS.
func CAFile(stateDir string) string { return filepath.Join(stateDir, "ca.pem") }

// firstHost is a network's first usable address: where sites put the
// router, which Calm's subnets (and the simulator) reserve as the gateway.
func firstHost(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return ""
	}
	return p.Masked().Addr().Next().String()
}

// randomPassword is a simulator's password for one start.
func randomPassword() (string, error) {
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(pw[:]), nil
}

// serveTLS makes the simulator's certificate and writes its CA to stateDir.
func serveTLS(stateDir string) (*simtls.Bundle, error) {
	b, err := simtls.SelfSigned()
	if err != nil {
		return nil, err
	}
	return b, b.WriteCA(CAFile(stateDir))
}

// StartInfoblox starts the WAPI simulator on loopback, seeded with every
// network the bundles declare, and writes its URL and credentials to
// sas/<env>/infoblox in Vault for each environment.
func StartInfoblox(ctx context.Context, admin *vaultapi.Client, o InfobloxOptions) (*siminfoblox.Server, error) {
	eval, err := policy.Load(ctx, policy.Options{Dir: o.BundleDir})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var nets []siminfoblox.SeedNetwork
	envs := map[string]bool{}
	for _, b := range eval.Bundles() {
		for _, e := range b.Spec.Environments {
			envs[e] = true
		}
		names := make([]string, 0, len(b.Spec.Networks))
		for name := range b.Spec.Networks {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			n := b.Spec.Networks[name]
			if !seen[n.CIDR] {
				seen[n.CIDR] = true
				nets = append(nets, siminfoblox.SeedNetwork{Network: n.CIDR, Comment: name + ": " + n.Description, Gateway: firstHost(n.CIDR)})
			}
		}
	}
	for _, cidr := range o.ExtraNetworks {
		if !seen[cidr] {
			seen[cidr] = true
			nets = append(nets, siminfoblox.SeedNetwork{Network: cidr, Comment: "extra"})
		}
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	secret := map[string]any{"username": InfobloxUser, "password": password}
	var tlsConfig *tls.Config
	if o.TLS {
		b, err := serveTLS(o.StateDir)
		if err != nil {
			return nil, err
		}
		tlsConfig, secret["ca_cert"] = b.ServerConfig, string(b.CAPEM)
	}
	sim, err := siminfoblox.New(siminfoblox.Options{
		TLSConfig: tlsConfig,
		StatePath: filepath.Join(o.StateDir, "infoblox-grid.json"),
		Users:     map[string]string{InfobloxUser: password},
		Networks:  nets,
		FailRate:  o.FailRate,
		Latency:   o.Latency,
		Logger:    o.Logger,
	})
	if err != nil {
		return nil, err
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	secret["url"] = url
	for env := range envs {
		if _, err := admin.KVv2(vaultsetup.KVMount).Put(ctx, env+"/infoblox", secret); err != nil {
			_ = sim.Close()
			return nil, fmt.Errorf("store infoblox credentials at %s/%s/infoblox: %w", vaultsetup.KVMount, env, err)
		}
	}
	return sim, nil
}
