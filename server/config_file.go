package server

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/zclconf/go-cty/cty"
)

// fileConfig is the gateway's HCL configuration file (see
// examples/gateway/sas-server.hcl). Durations are strings such as "30s";
// they are kept as expressions so errors can point at file:line.
type fileConfig struct {
	Listen    *listenBlock    `hcl:"listen,block"`
	Vault     *vaultBlock     `hcl:"vault,block"`
	Storage   *storageBlock   `hcl:"storage,block"`
	Policy    *policyBlock    `hcl:"policy,block"`
	Audit     *auditBlock     `hcl:"audit,block"`
	RateLimit *rateLimitBlock `hcl:"rate_limit,block"`
	Orch      *orchBlock      `hcl:"orchestrator,block"`
	Modules   *modulesBlock   `hcl:"modules,block"`
	Log       *logBlock       `hcl:"log,block"`
}

type listenBlock struct {
	Address      string         `hcl:"address,optional"`
	TLSCertFile  string         `hcl:"tls_cert_file,optional"`
	TLSKeyFile   string         `hcl:"tls_key_file,optional"`
	ReadTimeout  hcl.Expression `hcl:"read_timeout,optional"`
	WriteTimeout hcl.Expression `hcl:"write_timeout,optional"`
	IdleTimeout  hcl.Expression `hcl:"idle_timeout,optional"`
	MaxBodyBytes int64          `hcl:"max_body_bytes,optional"`
	MetricsAddr  string         `hcl:"metrics_address,optional"`
}

type vaultBlock struct {
	Address       string         `hcl:"address"`
	CACertFile    string         `hcl:"ca_cert_file,optional"`
	MaxCallerTTL  hcl.Expression `hcl:"max_caller_ttl,optional"`
	TokenCacheTTL hcl.Expression `hcl:"token_cache_ttl,optional"`
	AppRole       *appRoleBlock  `hcl:"approle,block"`
}

type appRoleBlock struct {
	Mount        string `hcl:"mount,optional"`
	RoleID       string `hcl:"role_id"`
	SecretIDFile string `hcl:"secret_id_file"`
}

type storageBlock struct {
	DataDir         string `hcl:"data_dir,optional"`
	PostgresDSNFile string `hcl:"postgres_dsn_file,optional"`
}

type policyBlock struct {
	BundleDir            string         `hcl:"bundle_dir"`
	VerificationKeyFiles []string       `hcl:"verification_key_files,optional"`
	ReloadInterval       hcl.Expression `hcl:"reload_interval,optional"`
}

type auditBlock struct {
	HMACKeyFile     string `hcl:"hmac_key_file,optional"`
	SigningKeyFile  string `hcl:"signing_key_file,optional"`
	CheckpointEvery int    `hcl:"checkpoint_every,optional"`
}

type rateLimitBlock struct {
	RequestsPerSecond    float64 `hcl:"requests_per_second,optional"`
	Burst                int     `hcl:"burst,optional"`
	UnauthenticatedRate  float64 `hcl:"unauthenticated_per_second,optional"`
	UnauthenticatedBurst int     `hcl:"unauthenticated_burst,optional"`
}

type orchBlock struct {
	WorkersPerKind   int            `hcl:"workers_per_kind,optional"`
	OperationTimeout hcl.Expression `hcl:"operation_timeout,optional"`
	RescueAfter      hcl.Expression `hcl:"rescue_after,optional"`
	SweepInterval    hcl.Expression `hcl:"sweep_interval,optional"`
	RevokeTimeout    hcl.Expression `hcl:"revoke_timeout,optional"`
}

type modulesBlock struct {
	CatalogDir string `hcl:"catalog_dir"`
	Terraform  string `hcl:"terraform"`
	PluginDir  string `hcl:"plugin_dir"`
	WorkDir    string `hcl:"work_dir,optional"`
}

type logBlock struct {
	Level  string `hcl:"level,optional"`
	Format string `hcl:"format,optional"`
}

// envOverrides are applied after the file: an operator can run the same
// file everywhere and change one setting per host.
var envOverrides = []struct {
	name  string
	apply func(*Config, string) error
}{
	{"SAS_LISTEN_ADDR", func(c *Config, v string) error { c.ListenAddr = v; return nil }},
	{"SAS_VAULT_ADDR", func(c *Config, v string) error { c.VaultAddr = v; return nil }},
	{"SAS_VAULT_ROLE_ID", func(c *Config, v string) error { c.VaultLogin.RoleID = v; return nil }},
	{"SAS_VAULT_SECRET_ID_FILE", func(c *Config, v string) error { c.VaultSecretIDFile = v; return nil }},
	{"SAS_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"SAS_POSTGRES_DSN_FILE", func(c *Config, v string) error { c.PostgresDSNFile = v; return nil }},
	{"SAS_BUNDLE_DIR", func(c *Config, v string) error { c.BundleDir = v; return nil }},
	{"SAS_MAX_CALLER_TTL", func(c *Config, v string) (err error) { c.MaxCallerTTL, err = time.ParseDuration(v); return err }},
	{"SAS_MODULE_WORK_DIR", func(c *Config, v string) error { c.ModuleWorkDir = v; return nil }},
	{"SAS_METRICS_ADDR", func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{"SAS_LOG_LEVEL", func(c *Config, v string) error { c.LogLevel = v; return nil }},
	{"SAS_MODULE_CATALOG_DIR", func(c *Config, v string) error { c.ModuleCatalogDir = v; return nil }},
	{"SAS_TERRAFORM_PATH", func(c *Config, v string) error { c.TerraformPath = v; return nil }},
	{"SAS_MODULE_PLUGIN_DIR", func(c *Config, v string) error { c.ModulePluginDir = v; return nil }},
}

// LoadConfig reads an HCL configuration file (if path is not empty), then
// applies SAS_* environment overrides. Errors name file:line.
func LoadConfig(path string) (Config, error) {
	var cfg Config
	if path != "" {
		var fc fileConfig
		if err := hclsimple.DecodeFile(path, nil, &fc); err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := fc.apply(&cfg); err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
	}
	for _, o := range envOverrides {
		if v, ok := os.LookupEnv(o.name); ok && v != "" {
			if err := o.apply(&cfg, v); err != nil {
				return cfg, fmt.Errorf("config: %s=%q: %w", o.name, v, err)
			}
		}
	}
	if cfg.VaultSecretIDFile != "" && cfg.VaultLogin.SecretID == "" {
		b, err := os.ReadFile(cfg.VaultSecretIDFile)
		if err != nil {
			return cfg, fmt.Errorf("config: vault secret_id file: %w", err)
		}
		cfg.VaultLogin.SecretID = strings.TrimSpace(string(b))
	}
	return cfg, nil
}

func (fc *fileConfig) apply(c *Config) error {
	var diags hcl.Diagnostics
	if l := fc.Listen; l != nil {
		c.ListenAddr, c.TLSCertFile, c.TLSKeyFile, c.MaxBodyBytes, c.MetricsAddr = l.Address, l.TLSCertFile, l.TLSKeyFile, l.MaxBodyBytes, l.MetricsAddr
		diags = append(diags, duration(l.ReadTimeout, &c.ReadTimeout)...)
		diags = append(diags, duration(l.WriteTimeout, &c.WriteTimeout)...)
		diags = append(diags, duration(l.IdleTimeout, &c.IdleTimeout)...)
	}
	if v := fc.Vault; v != nil {
		c.VaultAddr, c.VaultCACertFile = v.Address, v.CACertFile
		diags = append(diags, duration(v.MaxCallerTTL, &c.MaxCallerTTL)...)
		diags = append(diags, duration(v.TokenCacheTTL, &c.TokenCacheTTL)...)
		if v.AppRole != nil {
			c.VaultLogin.Mount, c.VaultLogin.RoleID, c.VaultSecretIDFile = v.AppRole.Mount, v.AppRole.RoleID, v.AppRole.SecretIDFile
		}
	}
	if s := fc.Storage; s != nil {
		c.DataDir, c.PostgresDSNFile = s.DataDir, s.PostgresDSNFile
	}
	if p := fc.Policy; p != nil {
		c.BundleDir, c.BundleVerificationKeyFiles = p.BundleDir, p.VerificationKeyFiles
		diags = append(diags, duration(p.ReloadInterval, &c.BundleReloadInterval)...)
	}
	if a := fc.Audit; a != nil {
		c.AuditHMACKeyFile, c.AuditSigningKeyFile, c.AuditCheckpointEvery = a.HMACKeyFile, a.SigningKeyFile, a.CheckpointEvery
	}
	if r := fc.RateLimit; r != nil {
		c.RateLimit, c.RateBurst = r.RequestsPerSecond, r.Burst
		c.UnauthenticatedRate, c.UnauthenticatedBurst = r.UnauthenticatedRate, r.UnauthenticatedBurst
	}
	if o := fc.Orch; o != nil {
		c.WorkersPerKind = o.WorkersPerKind
		diags = append(diags, duration(o.OperationTimeout, &c.OperationTimeout)...)
		diags = append(diags, duration(o.RescueAfter, &c.OperationRescueAfter)...)
		diags = append(diags, duration(o.SweepInterval, &c.SweepInterval)...)
		diags = append(diags, duration(o.RevokeTimeout, &c.RevokeTimeout)...)
	}
	if m := fc.Modules; m != nil {
		c.ModuleCatalogDir, c.TerraformPath, c.ModulePluginDir, c.ModuleWorkDir = m.CatalogDir, m.Terraform, m.PluginDir, m.WorkDir
	}
	if l := fc.Log; l != nil {
		c.LogLevel, c.LogJSON = l.Level, l.Format == "json"
	}
	if diags.HasErrors() {
		return diags
	}
	return nil
}

// duration decodes an optional duration attribute, with file:line on error.
func duration(expr hcl.Expression, out *time.Duration) hcl.Diagnostics {
	if expr == nil {
		return nil
	}
	var s string
	v, diags := expr.Value(nil)
	if diags.HasErrors() || v.IsNull() {
		return diags
	}
	if v.Type() != cty.String {
		r := expr.Range()
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid duration", Detail: "A duration is a string such as \"30s\" or \"8h\".", Subject: &r}}
	}
	if diags := gohcl.DecodeExpression(expr, nil, &s); diags.HasErrors() {
		return diags
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r := expr.Range()
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail: fmt.Sprintf("%q is not a positive duration such as \"30s\" or \"8h\".", s), Subject: &r}}
	}
	*out = d
	return nil
}
