// Package server is the sas gateway: the first trust boundary between
// callers (people, CI jobs, AI agents using the sas Terraform provider) and
// the systems that provision infrastructure. router.go reads in the order of
// the threat model's boundaries.
package server

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Version is the gateway's version, set at link time.
var Version = "dev"

// Config is everything the gateway needs to start. LoadConfig fills it
// from an HCL file and SAS_* environment variables.
type Config struct {
	// ListenAddr is where the HTTP API listens. Without TLS it must be a
	// loopback address: tokens never cross a network in clear.
	ListenAddr   string
	TLSCertFile  string
	TLSKeyFile   string
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxBodyBytes bounds request bodies (413 above).
	MaxBodyBytes int64

	// VaultAddr is the Vault the gateway verifies callers against.
	VaultAddr       string
	VaultCACertFile string
	// VaultLogin is the gateway's own AppRole.
	VaultLogin        vault.AppRoleLogin
	VaultSecretIDFile string
	// MaxCallerTTL refuses caller tokens with more remaining TTL than this.
	MaxCallerTTL time.Duration
	// TokenCacheTTL, when set (≤ 5s), reuses a positive token lookup for that
	// long; see verifyCaller for the trade-off. Default 0: every request asks Vault.
	TokenCacheTTL time.Duration

	// DataDir holds the embedded database (and dev keys).
	DataDir string
	// PostgresDSNFile, when set, names a file holding a PostgreSQL DSN;
	// the gateway then keeps everything there instead of SQLite.
	PostgresDSNFile string

	// BundleDir holds the policy bundles (directories or .tar.gz).
	BundleDir                  string
	BundleVerificationKeyFiles []string
	BundleReloadInterval       time.Duration

	AuditHMACKeyFile     string
	AuditSigningKeyFile  string
	AuditCheckpointEvery int
	// GenerateAuditKeys creates missing audit keys in the data dir (dev and
	// tests only; production keys are provisioned by the operator).
	GenerateAuditKeys bool

	// WorkersPerKind bounds concurrent operations per kind (default 8).
	WorkersPerKind int
	// OperationTimeout bounds one attempt and its sub-token (default 2m).
	OperationTimeout time.Duration
	// OperationRescueAfter: an attempt running this long is presumed
	// abandoned by a dead replica and retried (default timeout + 1m).
	OperationRescueAfter time.Duration
	// SweepInterval is how often unfinished operations are re-enqueued and
	// sub-tokens whose revocation failed are revoked again (default 30s).
	SweepInterval time.Duration
	// RevokeTimeout bounds an operation's own revocation of its sub-token
	// before the sweep takes it over (default 30s).
	RevokeTimeout time.Duration

	// RateLimit is requests per second per caller identity (default
	// DefaultRateLimit), RateBurst its burst.
	RateLimit float64
	RateBurst int
	// UnauthenticatedRate bounds refusals at the token boundary per client
	// address per second (default DefaultUnauthenticatedRate); once spent,
	// the address's requests are refused before Vault is asked.
	UnauthenticatedRate  float64
	UnauthenticatedBurst int
	// FloodWindow is how long one address's refusals by that limit are
	// counted before one summary record is written (default 1m).
	FloodWindow time.Duration

	// MetricsAddr, when set, is where sas-server serves Prometheus metrics,
	// on a listener of their own (they name bundles and routes, so they are
	// not on the API). Plain HTTP only on loopback, like the API.
	// ModuleCatalogDir is the operator's catalog of approved modules
	// (catalog.json); empty: module runs are decided by policy, then 501.
	// TerraformPath is the CLI that runs them, ModulePluginDir the provider
	// mirror init installs from (no network), ModuleWorkDir where private
	// working directories go (default: a fresh directory under the system's
	// temporary directory, outside DataDir, removed at shutdown).
	ModuleCatalogDir string
	TerraformPath    string
	ModulePluginDir  string
	ModuleWorkDir    string

	MetricsAddr string

	LogLevel string
	LogJSON  bool
	Logger   hclog.Logger
}

// Validate fills defaults and reports every missing setting at once.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:8200"
	}
	if host, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.ListenAddr, err))
	} else if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS needs both tls_cert_file and tls_key_file"))
	} else if c.TLSCertFile == "" && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("listen address %q is not loopback: configure tls_cert_file and tls_key_file, "+
			"plain HTTP is only allowed on 127.0.0.1/::1/localhost", c.ListenAddr))
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.RateLimit < 0 || c.RateBurst < 0 || c.UnauthenticatedRate < 0 || c.UnauthenticatedBurst < 0 {
		errs = append(errs, errors.New("rate_limit values must not be negative"))
	}
	if c.RateLimit == 0 {
		c.RateLimit, c.RateBurst = DefaultRateLimit, max(c.RateBurst, DefaultRateBurst)
	}
	if c.RateBurst == 0 {
		c.RateBurst = int(2*c.RateLimit) + 1
	}
	if c.UnauthenticatedRate == 0 {
		c.UnauthenticatedRate, c.UnauthenticatedBurst = DefaultUnauthenticatedRate, max(c.UnauthenticatedBurst, DefaultUnauthenticatedBurst)
	}
	if c.UnauthenticatedBurst == 0 {
		c.UnauthenticatedBurst = int(2*c.UnauthenticatedRate) + 1
	}
	if c.FloodWindow <= 0 {
		c.FloodWindow = DefaultFloodWindow
	}
	if c.MetricsAddr != "" {
		if host, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics address %q: %w", c.MetricsAddr, err))
		} else if c.TLSCertFile == "" && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("metrics address %q is not loopback: without TLS, metrics are served on loopback only", c.MetricsAddr))
		}
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
	if c.BundleDir == "" {
		errs = append(errs, errors.New("policy bundle dir is required (policy.bundle_dir or SAS_BUNDLE_DIR)"))
	}
	if c.MaxCallerTTL == 0 {
		c.MaxCallerTTL = caller.DefaultMaxTTL
	}
	if c.MaxCallerTTL < 0 {
		errs = append(errs, fmt.Errorf("max caller TTL %s must be positive", c.MaxCallerTTL))
	}
	if c.TokenCacheTTL < 0 || c.TokenCacheTTL > MaxTokenCacheTTL {
		errs = append(errs, fmt.Errorf("token cache TTL %s must be between 0 and %s", c.TokenCacheTTL, MaxTokenCacheTTL))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.BundleReloadInterval == 0 {
		c.BundleReloadInterval = 30 * time.Second
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadBundleKey reads a PEM public key that may sign policy bundles. Its
// id is the file's base name without extension (the "kid" signers use);
// the algorithm follows from the key: RSA → RS256, ECDSA P-256/384/521 →
// ES256/384/512.
func loadBundleKey(path string) (policy.VerificationKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return policy.VerificationKey{}, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return policy.VerificationKey{}, fmt.Errorf("%s holds no PEM block", path)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return policy.VerificationKey{}, fmt.Errorf("%s: %w", path, err)
	}
	var alg string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		alg = "RS256"
	case *ecdsa.PublicKey:
		alg = map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}[k.Curve.Params().BitSize]
	}
	if alg == "" {
		return policy.VerificationKey{}, fmt.Errorf("%s: bundle keys are RSA or ECDSA (P-256/384/521), not %T", path, pub)
	}
	id := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return policy.VerificationKey{ID: id, Algorithm: alg, PublicKey: string(b)}, nil
}
