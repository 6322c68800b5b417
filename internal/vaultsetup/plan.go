// Package vaultsetup configures a Vault server the way sas needs it in
// production. The same Plan drives the test environment, `sas-server dev`
// and the operator guide (docs/gateway/vault-setup.md is rendered from it and
// a test keeps the two identical), so what is tested is what is documented.
package vaultsetup

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Names of what sas configures in Vault. Operators see these in their Vault;
// changing one is a migration.
const (
	// KVMount is the KV v2 mount holding downstream credentials at
	// <KVMount>/<env>/<system> (systems: infoblox, calm, terraform).
	KVMount = "sas"
	// RequestSecretsMount is the retired KV v2 "drop box" where earlier
	// releases left requests' secret values (<env>/<request id>), readable
	// by every sub-token of the environment. The plan disables it (which
	// destroys what it still holds); secret values now travel only in
	// single-use response-wrapping tokens (internal/secrets).
	RequestSecretsMount = "sas-request-secrets"
	// GatewayPolicy is the gateway's own policy, bound to its AppRole.
	GatewayPolicy = "sas-gateway"
	// GatewayAppRole is the AppRole the gateway logs in with.
	GatewayAppRole = "sas-gateway"
	// AuditorPolicy lets a caller read the gateway's audit trail.
	AuditorPolicy = "sas-auditor"
	// CallerRole is the token role that mints ephemeral caller tokens
	// carrying a Vault entity (used by operators for break-glass and by the
	// local stack; people normally log in through OIDC/JWT instead).
	CallerRole = "sas-caller"
	// BundlePolicyPrefix + bundle name is the policy that binds a token to a bundle.
	BundlePolicyPrefix = "sas-bundle-"
	// ExecPrefix + environment names both the sub-token policy and the token role.
	ExecPrefix = "sas-exec-"
)

// Downstream systems whose credentials live in KV under <env>/<system>.
var DownstreamSystems = []string{"calm", "infoblox", "terraform"}

// Options say which bundles and environments exist.
type Options struct {
	Bundles      []string
	Environments []string
	// CallerMaxTTL caps caller tokens minted through CallerRole; the gateway
	// refuses anything longer anyway.
	CallerMaxTTL time.Duration
	// SubTokenMaxTTL caps per-operation sub-tokens (explicit_max_ttl).
	SubTokenMaxTTL time.Duration
	// AuditFilePath, when set, enables Vault's file audit device there.
	AuditFilePath string
}

// DefaultOptions are the bundles shipped in examples/ and their environments.
func DefaultOptions() Options {
	return Options{
		Bundles:        []string{"fedramp_dev_default", "fedramp_prod_restricted", "fedramp_sbx_default"},
		Environments:   []string{"dev", "prod", "sbx"},
		CallerMaxTTL:   8 * time.Hour,
		SubTokenMaxTTL: 30 * time.Minute,
	}
}

// Step is one write (or, with Delete, one delete) to Vault, with the CLI
// command an operator would type.
type Step struct {
	Why    string
	Path   string
	Data   map[string]any
	Delete bool
	CLI    string
}

// Plan returns the steps that configure Vault for sas, in order.
func Plan(o Options) []Step {
	bundles := sorted(o.Bundles)
	envs := sorted(o.Environments)
	var steps []Step

	steps = append(steps, Step{
		Why:  "KV v2 mount for downstream credentials (sas/<env>/<system>)",
		Path: "sys/mounts/" + KVMount,
		Data: map[string]any{"type": "kv", "options": map[string]string{"version": "2"}},
		CLI:  fmt.Sprintf("vault secrets enable -path=%s -version=2 kv", KVMount),
	})
	steps = append(steps, Step{
		Why: "retire the KV drop box of earlier releases (" + RequestSecretsMount + ", readable by every sub-token of its environment): " +
			"disabling it destroys what it still holds; requests' secret values now travel only in single-use response-wrapping tokens",
		Path:   "sys/mounts/" + RequestSecretsMount,
		Delete: true,
		CLI:    "vault secrets disable " + RequestSecretsMount,
	})
	if o.AuditFilePath != "" {
		steps = append(steps, Step{
			Why:  "Vault's own audit device (HMACs every token and secret)",
			Path: "sys/audit/file",
			Data: map[string]any{"type": "file", "options": map[string]string{"file_path": o.AuditFilePath}},
			CLI:  fmt.Sprintf("vault audit enable file file_path=%s", o.AuditFilePath),
		})
	}
	for _, m := range []struct{ method, why string }{
		{"approle", "AppRole auth: the gateway and CI jobs log in with it"},
		{"jwt", "JWT auth: HCP Terraform runs and CI OIDC tokens log in with it (configure its issuer for your site)"},
	} {
		steps = append(steps, Step{
			Why:  m.why,
			Path: "sys/auth/" + m.method,
			Data: map[string]any{"type": m.method},
			CLI:  "vault auth enable " + m.method,
		})
	}

	for _, b := range bundles {
		steps = append(steps, policyStep(BundlePolicyPrefix+b,
			"binds a token to policy bundle "+b+"; it grants nothing in Vault itself", bundlePolicy(b)))
	}
	steps = append(steps, policyStep(AuditorPolicy, "lets a token read the gateway's audit trail", auditorPolicy))
	for _, env := range envs {
		steps = append(steps, policyStep(ExecPrefix+env,
			"what a sub-token for environment "+env+" may read: that environment's downstream credentials, nothing else (no request's secret values)", execPolicy(env)))
	}
	steps = append(steps, policyStep(GatewayPolicy, "the gateway: verify callers, mint and revoke sub-tokens, wrap requests' secret values for their executor; no access to downstream secrets", gatewayPolicy))

	for _, env := range envs {
		name := ExecPrefix + env
		data := map[string]any{
			"allowed_policies":        []string{name},
			"orphan":                  true,
			"renewable":               false,
			"token_type":              "service",
			"token_explicit_max_ttl":  int(o.SubTokenMaxTTL.Seconds()),
			"token_no_default_policy": true,
		}
		steps = append(steps, Step{
			Why:  "token role for per-operation sub-tokens in " + env + ": orphan, short, only " + name,
			Path: "auth/token/roles/" + name,
			Data: data,
			CLI:  cliWrite("auth/token/roles/"+name, data),
		})
	}

	callerPolicies := append([]string{AuditorPolicy}, prefixed(BundlePolicyPrefix, bundles)...)
	callerRole := map[string]any{
		"allowed_policies":       callerPolicies,
		"disallowed_policies":    []string{"root", GatewayPolicy},
		"allowed_entity_aliases": []string{"*"},
		"orphan":                 false,
		"renewable":              true,
		"token_type":             "service",
		"token_explicit_max_ttl": int(o.CallerMaxTTL.Seconds()),
	}
	steps = append(steps, Step{
		Why:  "token role for ephemeral caller tokens bound to a Vault entity",
		Path: "auth/token/roles/" + CallerRole,
		Data: callerRole,
		CLI:  cliWrite("auth/token/roles/"+CallerRole, callerRole),
	})

	appRole := map[string]any{
		"token_policies":     []string{GatewayPolicy},
		"token_type":         "service",
		"token_ttl":          3600,
		"token_max_ttl":      4 * 3600,
		"secret_id_num_uses": 0,
		"secret_id_ttl":      0,
	}
	steps = append(steps, Step{
		Why:  "the gateway's own AppRole (its token renews hourly, re-logs in after 4h)",
		Path: "auth/approle/role/" + GatewayAppRole,
		Data: appRole,
		CLI:  cliWrite("auth/approle/role/"+GatewayAppRole, appRole),
	})
	return steps
}

func policyStep(name, why, hcl string) Step {
	return Step{
		Why:  "policy " + name + ": " + why,
		Path: "sys/policies/acl/" + name,
		Data: map[string]any{"policy": hcl},
		CLI:  fmt.Sprintf("vault policy write %s - <<'EOF'\n%sEOF", name, hcl),
	}
}

func bundlePolicy(bundle string) string {
	return fmt.Sprintf(`# Marker policy: holding it lets a token use sas policy bundle %q.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
`, bundle)
}

const auditorPolicy = `# Marker policy: holding it lets a token query GET /v1/audit on the gateway.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
`

func execPolicy(env string) string {
	return fmt.Sprintf(`# Sub-tokens for environment %[1]q read that environment's downstream
# credentials, nothing else. Module runs hand this token to Terraform, so it
# must reach no request's secret values: those travel only in single-use
# wrapping tokens the gateway keeps sealed.
path "%[2]s/data/%[1]s/*" {
  capabilities = ["read"]
}
`, env, KVMount)
}

const gatewayPolicy = `# Verify caller tokens and resolve their entity.
path "auth/token/lookup" {
  capabilities = ["update"]
}
path "identity/entity/id/*" {
  capabilities = ["read"]
}
# A token role's explicit max TTL bounds its tokens' renewals, but Vault
# shows it only on the role: read it to admit or refuse such tokens.
path "auth/token/roles/*" {
  capabilities = ["read"]
}
# Mint per-operation sub-tokens, and revoke them by accessor.
path "auth/token/create/sas-exec-*" {
  capabilities = ["update"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
# Keep its own token alive.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
# Wrap a request's secret values in a single-use response-wrapping token
# for its executor (unwrapping needs no policy: the wrapping token itself
# is presented), and look such a token up. Wrapping tokens are revoked by
# accessor (auth/token/revoke-accessor, above) when an operation ends.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
# Deliberately absent: sas/data/* — the gateway never reads downstream secrets itself.
`

// cliWrite renders a `vault write` command with stable argument order.
func cliWrite(path string, data map[string]any) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("vault write " + path)
	for _, k := range keys {
		var v string
		switch x := data[k].(type) {
		case []string:
			v = strings.Join(x, ",")
		default:
			v = fmt.Sprint(x)
		}
		fmt.Fprintf(&b, " \\\n    %s=%q", k, v)
	}
	return b.String()
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// JWTRoleData is a JWT auth role whose tokens the gateway admits: service
// tokens with an explicit max TTL (never periodic, never use-limited), an
// entity per value of userClaim (so ownership follows that claim), the
// bundles' policies, audience and boundClaims required.
func JWTRoleData(userClaim, audience string, boundClaims map[string]any, bundles []string, maxTTL time.Duration) map[string]any {
	data := map[string]any{
		"role_type":              "jwt",
		"user_claim":             userClaim,
		"bound_audiences":        []string{audience},
		"token_policies":         prefixed(BundlePolicyPrefix, bundles),
		"token_type":             "service",
		"token_ttl":              int((maxTTL / 2).Seconds()),
		"token_explicit_max_ttl": int(maxTTL.Seconds()),
	}
	if len(boundClaims) > 0 {
		data["bound_claims"] = boundClaims
	}
	return data
}

// AppRoleData is an AppRole for a CI pipeline whose tokens the gateway admits.
func AppRoleData(bundles []string, maxTTL time.Duration) map[string]any {
	return map[string]any{
		"token_policies":         prefixed(BundlePolicyPrefix, bundles),
		"token_type":             "service",
		"token_ttl":              int((maxTTL / 2).Seconds()),
		"token_explicit_max_ttl": int(maxTTL.Seconds()),
		"secret_id_ttl":          int((24 * time.Hour).Seconds()),
	}
}

// HCPAudience is the audience HCP Terraform's workload identity tokens
// carry for Vault by default (TFC_WORKLOAD_IDENTITY_AUDIENCE).
const HCPAudience = "vault.workload.identity"

// WorkspaceRoleData is the JWT role an operator creates for one HCP
// Terraform workspace. Its user claim is the workspace, not the run phase:
// plan and apply get tokens with different subjects
// (…:run_phase:plan / …:run_phase:apply) but the same terraform_workspace_id,
// so both act as one Vault entity — what a plan reads, the apply may
// change, and no other workspace may. Organization, project and workspace
// are bound claims.
func WorkspaceRoleData(audience, organization, project, workspace string, bundles []string) map[string]any {
	return JWTRoleData("terraform_workspace_id", audience, map[string]any{
		"terraform_organization_name": organization,
		"terraform_project_name":      project,
		"terraform_workspace_name":    workspace,
	}, bundles, time.Hour)
}
