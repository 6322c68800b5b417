package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	vaultapi "github.com/hashicorp/vault/api"
)

// A CI job or an HCP Terraform run has no Vault token: it has a workload
// identity (a JWT) or an AppRole. The login blocks exchange one for an
// ephemeral Vault token when the provider is configured; the token lives in
// the provider process only — never in state, plan or logs.

// jwtLoginModel is the auth_login_jwt block.
type jwtLoginModel struct {
	Role    types.String `tfsdk:"role"`
	Mount   types.String `tfsdk:"mount"`
	JWT     types.String `tfsdk:"jwt"`
	JWTFile types.String `tfsdk:"jwt_file"`
}

// appRoleLoginModel is the auth_login_approle block.
type appRoleLoginModel struct {
	RoleID       types.String `tfsdk:"role_id"`
	SecretID     types.String `tfsdk:"secret_id"`
	SecretIDFile types.String `tfsdk:"secret_id_file"`
	Mount        types.String `tfsdk:"mount"`
}

// envWorkloadIdentity is where HCP Terraform puts a run's workload identity
// token (with TFC_WORKLOAD_IDENTITY_AUDIENCE set in the workspace).
const envWorkloadIdentity = "TFC_WORKLOAD_IDENTITY_TOKEN"

func loginBlocks() map[string]schema.Block {
	return map[string]schema.Block{
		"auth_login_jwt": schema.SingleNestedBlock{
			MarkdownDescription: "Log in to Vault with a JWT — HCP Terraform's workload identity, or a GitHub Actions / GitLab OIDC " +
				"token — and use the ephemeral token Vault returns. The JWT defaults to `" + envWorkloadIdentity + "`. Conflicts with " +
				"`token`, `token_file` and `auth_login_approle`.",
			Attributes: map[string]schema.Attribute{
				"role":     schema.StringAttribute{Optional: true, MarkdownDescription: "Vault JWT auth role to log in with (required in the block)."},
				"mount":    schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the JWT auth mount. Defaults to `jwt`."},
				"jwt":      schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "The JWT itself. Conflicts with `jwt_file`."},
				"jwt_file": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of a file holding the JWT (a CI runner's OIDC token file)."},
			},
		},
		"auth_login_approle": schema.SingleNestedBlock{
			MarkdownDescription: "Log in to Vault with an AppRole (CI pipelines) and use the ephemeral token Vault returns. " +
				"Conflicts with `token`, `token_file` and `auth_login_jwt`.",
			Attributes: map[string]schema.Attribute{
				"role_id":        schema.StringAttribute{Optional: true, MarkdownDescription: "The AppRole's role id (required in the block)."},
				"secret_id":      schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "The secret id. Conflicts with `secret_id_file`."},
				"secret_id_file": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of a file holding the secret id (response-wrapped delivery writes one)."},
				"mount":          schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the AppRole auth mount. Defaults to `approle`."},
			},
		},
	}
}

// credentialSource is one way of getting the caller's token.
type credentialSource struct {
	attr  string // the attribute or block that set it
	fetch func(ctx context.Context) (string, error)
}

// errLogin marks a refusal by Vault (its reason follows) rather than a setting error.
var errLogin = errors.New("vault refused the login")

// credentialSources lists the sources set in the provider block. More than
// one is a conflict: which one would win is exactly what must not be a guess.
func (cfg SasProviderModel) credentialSources(vaultAddr string) ([]credentialSource, error) {
	var out []credentialSource
	if s := cfg.Token.ValueString(); s != "" {
		out = append(out, credentialSource{"token", func(context.Context) (string, error) { return strings.TrimSpace(s), nil }})
	}
	if f := cfg.TokenFile.ValueString(); f != "" {
		out = append(out, credentialSource{"token_file", func(context.Context) (string, error) { return readSecretFile("token_file", f) }})
	}
	if j := cfg.LoginJWT; j != nil {
		role, mount := j.Role.ValueString(), firstNonEmpty(j.Mount.ValueString(), "jwt")
		if role == "" {
			return nil, fmt.Errorf("auth_login_jwt needs `role`: the Vault JWT role to log in with")
		}
		if j.JWT.ValueString() != "" && j.JWTFile.ValueString() != "" {
			return nil, fmt.Errorf("auth_login_jwt: `jwt` and `jwt_file` are both set; set only one")
		}
		out = append(out, credentialSource{"auth_login_jwt", func(ctx context.Context) (string, error) {
			jwt := j.JWT.ValueString()
			if f := j.JWTFile.ValueString(); f != "" {
				var err error
				if jwt, err = readSecretFile("auth_login_jwt.jwt_file", f); err != nil {
					return "", err
				}
			}
			if jwt == "" {
				jwt = strings.TrimSpace(os.Getenv(envWorkloadIdentity))
			}
			if jwt == "" {
				return "", fmt.Errorf("auth_login_jwt has no JWT: set `jwt` or `jwt_file`, or run where %s is set (HCP Terraform "+
					"with TFC_WORKLOAD_IDENTITY_AUDIENCE on the workspace)", envWorkloadIdentity)
			}
			return vaultLogin(ctx, vaultAddr, mount, map[string]any{"role": role, "jwt": jwt})
		}})
	}
	if a := cfg.LoginAppRole; a != nil {
		roleID, mount := a.RoleID.ValueString(), firstNonEmpty(a.Mount.ValueString(), "approle")
		if roleID == "" {
			return nil, fmt.Errorf("auth_login_approle needs `role_id`")
		}
		if a.SecretID.ValueString() != "" && a.SecretIDFile.ValueString() != "" {
			return nil, fmt.Errorf("auth_login_approle: `secret_id` and `secret_id_file` are both set; set only one")
		}
		out = append(out, credentialSource{"auth_login_approle", func(ctx context.Context) (string, error) {
			secret := a.SecretID.ValueString()
			if f := a.SecretIDFile.ValueString(); f != "" {
				var err error
				if secret, err = readSecretFile("auth_login_approle.secret_id_file", f); err != nil {
					return "", err
				}
			}
			data := map[string]any{"role_id": roleID}
			if secret != "" {
				data["secret_id"] = secret
			}
			return vaultLogin(ctx, vaultAddr, mount, data)
		}})
	}
	if len(out) > 1 {
		names := make([]string, len(out))
		for i, s := range out {
			names[i] = "`" + s.attr + "`"
		}
		all := "both"
		if len(names) > 2 {
			all = "all"
		}
		return out, fmt.Errorf("%s and %s are %s set; set exactly one way to get the Vault token",
			strings.Join(names[:len(names)-1], ", "), names[len(names)-1], all)
	}
	return out, nil
}

// resolveToken returns the caller's Vault token and the setting it came
// from. Precedence: the one of token, token_file, auth_login_jwt,
// auth_login_approle that is set (two are a conflict), else VAULT_TOKEN,
// else ~/.vault-token.
func resolveToken(ctx context.Context, cfg SasProviderModel, vaultAddr string) (token, source string, err error) {
	sources, err := cfg.credentialSources(vaultAddr)
	if err != nil {
		attr := "token"
		if len(sources) > 0 {
			attr = sources[len(sources)-1].attr
		} else if cfg.LoginJWT != nil {
			attr = "auth_login_jwt"
		} else if cfg.LoginAppRole != nil {
			attr = "auth_login_approle"
		}
		return "", attr, err
	}
	if len(sources) == 1 {
		tok, err := sources[0].fetch(ctx)
		return tok, sources[0].attr, err
	}
	if v := os.Getenv("VAULT_TOKEN"); v != "" {
		return strings.TrimSpace(v), "token", nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		if b, err := os.ReadFile(filepath.Join(home, ".vault-token")); err == nil {
			return strings.TrimSpace(string(b)), "token", nil
		}
	}
	return "", "token", nil
}

func readSecretFile(attr, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", attr, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", attr, file)
	}
	return s, nil
}

// vaultLogin exchanges credentials at auth/<mount>/login for a token. A
// refusal carries Vault's own reason (wrong audience, expired, unknown
// role…); the credentials never appear in the error.
func vaultLogin(ctx context.Context, addr, mount string, data map[string]any) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("a login block needs Vault's address: set `vault_address` or VAULT_ADDR")
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = addr
	if err := cfg.ReadEnvironment(); err != nil {
		return "", fmt.Errorf("vault client: %v", err)
	}
	cfg.Address = addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return "", fmt.Errorf("vault client: %v", err)
	}
	c.ClearToken()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(mount, "/")+"/login", data)
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return "", fmt.Errorf("%w at auth/%s/login (%d): %s", errLogin, mount, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	if err != nil {
		return "", fmt.Errorf("log in at %s/v1/auth/%s/login: %v", addr, mount, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return "", fmt.Errorf("%w at auth/%s/login: the answer holds no token", errLogin, mount)
	}
	return sec.Auth.ClientToken, nil
}
