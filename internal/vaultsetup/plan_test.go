package vaultsetup

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/gateway/vault-setup.md from the plan")

const guidePath = "../../docs/gateway/vault-setup.md"

const guideHeader = `# Configuring Vault for sas

<!-- Generated from internal/vaultsetup (make docs). Do not edit by hand: the
     test environment and ` + "`sas-server dev`" + ` apply exactly these steps, and a
     test fails when this page and the code differ. -->

sas needs Vault to hold three kinds of identity (see the architecture):

| identity | gets it from | may |
|---|---|---|
| caller token | your users' login (OIDC/JWT, AppRole for CI) | carry ` + "`sas-bundle-<name>`" + ` policies; call the gateway |
| gateway token | the ` + "`sas-gateway`" + ` AppRole | look up caller tokens; mint and revoke sub-tokens through ` + "`sas-exec-<env>`" + ` roles; wrap requests' secret values in single-use response-wrapping tokens and revoke those |
| sub-token | the gateway, per operation | read ` + "`sas/<env>/<system>`" + ` credentials, nothing else (no request's secret values) |

Run these as a Vault administrator. Every step is idempotent.

`

var guideFooter = `## Hand the gateway its AppRole

` + "```sh" + `
vault read -field=role_id auth/approle/role/sas-gateway/role-id          # -> SAS_VAULT_ROLE_ID
vault write -f -field=secret_id auth/approle/role/sas-gateway/secret-id  # -> the file named by SAS_VAULT_SECRET_ID_FILE
` + "```" + `

## Store downstream credentials

` + "```sh" + `
vault kv put sas/sbx/infoblox username=... password=...
vault kv put sas/sbx/calm username=... password=...
` + "```" + `

Neither the gateway's token nor any caller token can read them: only the
per-operation sub-tokens minted through ` + "`sas-exec-<env>`" + ` can.

## HCP Terraform workspaces

One JWT role per workspace (` + "`vault write auth/jwt/config oidc_discovery_url=https://app.terraform.io bound_issuer=https://app.terraform.io`" + `
once). The user claim is the workspace id, so a run's plan and apply phases
(different ` + "`sub`" + ` claims) are one Vault entity, and one owner in sas:

` + "```sh" + `
vault write auth/jwt/role/tfc-acme-infra-network - <<'JSON'
` + jsonIndent(WorkspaceRoleData(HCPAudience, "acme", "infra", "network", []string{"fedramp_sbx_default"})) + `
JSON
` + "```" + `

In the workspace, set ` + "`TFC_WORKLOAD_IDENTITY_AUDIENCE=" + HCPAudience + "`" + ` and give the
provider ` + "`auth_login_jwt { role = \"tfc-acme-infra-network\" }`" + `: it reads the
run's token from ` + "`TFC_WORKLOAD_IDENTITY_TOKEN`" + `.

## Caller tokens the gateway admits

Whatever auth method your users and pipelines log in with (OIDC, JWT, AppRole,
a token role), configure its roles so their tokens are what the gateway admits
(docs/gateway/security.md): ` + "`token_type=service`" + ` (not batch), no ` + "`token_period`" + `,
` + "`token_explicit_max_ttl`" + ` at most the gateway's ` + "`max_caller_ttl`" + ` (8h by default), no
` + "`token_num_uses`" + `, tokens that carry an entity (auth methods create one per alias;
token roles need ` + "`allowed_entity_aliases`" + `), and ` + "`token_bound_cidrs`" + ` only with the
addresses the callers really connect to the gateway from.
`

func jsonIndent(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func guide() string {
	return guideHeader + Markdown(Plan(DefaultOptions())) + guideFooter
}

// The operator guide is the plan the tests apply, rendered.
func TestOperatorGuide(t *testing.T) {
	want := guide()
	if *update {
		if err := os.WriteFile(guidePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatalf("%v (run `make docs`)", err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the plan in internal/vaultsetup; run `make docs`", guidePath)
	}
}

func TestPlanBindsEveryBundleAndEnvironment(t *testing.T) {
	o := DefaultOptions()
	paths := map[string]Step{}
	for _, s := range Plan(o) {
		paths[s.Path] = s
	}
	for _, b := range o.Bundles {
		if _, ok := paths["sys/policies/acl/sas-bundle-"+b]; !ok {
			t.Errorf("no policy for bundle %s", b)
		}
	}
	for _, env := range o.Environments {
		role, ok := paths["auth/token/roles/sas-exec-"+env]
		if !ok {
			t.Fatalf("no token role for %s", env)
		}
		if role.Data["orphan"] != true || role.Data["token_explicit_max_ttl"] != int(o.SubTokenMaxTTL.Seconds()) {
			t.Errorf("sub-token role for %s: %v", env, role.Data)
		}
		p := paths["sys/policies/acl/sas-exec-"+env].Data["policy"].(string)
		if !strings.Contains(p, `"sas/data/`+env+`/*"`) {
			t.Errorf("exec policy for %s does not scope to its environment:\n%s", env, p)
		}
		// Module runs hand this token to Terraform: it must reach no
		// request's secrets, and nothing but its credentials.
		if strings.Count(p, "path ") != 1 || strings.Contains(p, RequestSecretsMount) || strings.Contains(p, "sys/wrapping") {
			t.Errorf("exec policy for %s grants more than its credentials:\n%s", env, p)
		}
	}
	gp := paths["sys/policies/acl/sas-gateway"].Data["policy"].(string)
	if strings.Contains(gp, `path "sas/`) || strings.Contains(gp, `path "`+RequestSecretsMount) {
		t.Error("the gateway policy must not reach the downstream credentials nor a KV drop box")
	}
	if !strings.Contains(gp, `path "sys/wrapping/wrap"`) {
		t.Error("the gateway policy does not let it wrap requests' secret values")
	}
	retire, ok := paths["sys/mounts/"+RequestSecretsMount]
	if !ok || !retire.Delete {
		t.Errorf("the plan does not retire the drop box %s: %+v", RequestSecretsMount, retire)
	}
}
