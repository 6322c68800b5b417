// Package server is the sas gateway: the first trust boundary between
// callers (people, CI jobs, AI agents using the sas Terraform provider) and
// the systems that provision infrastructure. router.go reads in the order of
// the threat model's boundaries.
package server

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Version is the gateway's version, set at link time.
var Version = "dev"

// Config is everything the gateway needs to start.
type Config struct {
	// ListenAddr is where the HTTP API listens.
	ListenAddr string
	// VaultAddr is the Vault the gateway verifies callers against.
	VaultAddr string
	// VaultLogin is the gateway's own AppRole.
	VaultLogin vault.AppRoleLogin
	// MaxCallerTTL refuses caller tokens with more remaining TTL than this.
	MaxCallerTTL time.Duration
	// DataDir holds the embedded database.
	DataDir string
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	Logger       hclog.Logger
}

// Validate fills defaults and reports every missing setting at once.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:8200"
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.ListenAddr, err))
	}
	if c.VaultAddr == "" {
		errs = append(errs, errors.New("vault address is required (SAS_VAULT_ADDR)"))
	}
	if c.VaultLogin.RoleID == "" || c.VaultLogin.SecretID == "" {
		errs = append(errs, errors.New("the gateway's Vault AppRole role_id and secret_id are required (SAS_VAULT_ROLE_ID, SAS_VAULT_SECRET_ID_FILE)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required (SAS_DATA_DIR)"))
	}
	if c.MaxCallerTTL == 0 {
		c.MaxCallerTTL = caller.DefaultMaxTTL
	}
	if c.MaxCallerTTL < 0 {
		errs = append(errs, fmt.Errorf("max caller TTL %s must be positive", c.MaxCallerTTL))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return errors.Join(errs...)
}
