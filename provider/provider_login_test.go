package provider

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func loginConfig(gwURL, vaultAddr, block string) string {
	return `
provider "sas" {
  address       = "` + gwURL + `"
  vault_address = "` + vaultAddr + `"
  policy_bundle = "fedramp_sbx_default"
  environment   = "sbx"
` + block + `
}
` + identityConfig
}

// A CI job's OIDC token (here signed by a local issuer Vault trusts) is
// exchanged for an ephemeral Vault token the gateway admits: an entity
// through the JWT alias, an explicit max TTL, the bundle's policy. The JWT
// and the token appear nowhere in state. A JWT for another audience, an
// expired one, or an unknown role is refused with Vault's own reason.
func TestAccLogin_jwt(t *testing.T) {
	gw := env.StartGateway(t)
	iss := env.JWTIssuer(t)
	env.JWTRole(t, "ci-sbx", "sub", map[string]any{"repository": "acme/infra"}, "fedramp_sbx_default")
	good := iss.Sign(t, map[string]any{"sub": "repo:acme/infra:ref:refs/heads/main", "repository": "acme/infra"}, 10*time.Minute)
	block := func(role, jwt string) string {
		return "  auth_login_jwt {\n    role = \"" + role + "\"\n    jwt  = \"" + jwt + "\"\n  }\n"
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: loginConfig(gw.URL, env.VaultAddr, block("ci-sbx", good)),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("entity_id"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f-]{36}$`))),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("bundles"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("fedramp_sbx_default")})),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("token_type"), knownvalue.StringExact("service")),
			},
			Check: checkStateHoldsNo(good),
		}},
	})
	refused := map[string]struct {
		config string
		want   *regexp.Regexp
	}{
		"wrong audience": {block("ci-sbx", iss.Sign(t, map[string]any{"sub": "x", "repository": "acme/infra", "aud": "someone-else"}, 10*time.Minute)),
			wrapped(`Vault Login Refused.*auth/jwt/login \(400\).*audience`)},
		"expired":       {block("ci-sbx", iss.Sign(t, map[string]any{"sub": "x", "repository": "acme/infra"}, -time.Minute)), wrapped(`Vault Login Refused.*expired`)},
		"unbound claim": {block("ci-sbx", iss.Sign(t, map[string]any{"sub": "x", "repository": "evil/fork"}, 10*time.Minute)), wrapped(`Vault Login Refused.*claim "repository" does not match`)},
		"unknown role":  {block("no-such-role", good), wrapped(`Vault Login Refused.*role "no-such-role" could not be found`)},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: loginConfig(gw.URL, env.VaultAddr, tc.config), PlanOnly: true, ExpectError: tc.want}},
			})
		})
	}
}

// A pipeline's AppRole, with the secret id read from a file, the way
// response-wrapped delivery leaves it.
func TestAccLogin_appRole(t *testing.T) {
	gw := env.StartGateway(t)
	roleID, secretID := env.AppRole(t, "ci-pipeline", "fedramp_sbx_default")
	file := t.TempDir() + "/secret-id"
	writeFile(t, file, secretID+"\n")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: loginConfig(gw.URL, env.VaultAddr, "  auth_login_approle {\n    role_id        = \""+roleID+"\"\n    secret_id_file = \""+file+"\"\n  }\n"),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("entity_id"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f-]{36}$`))),
			},
			Check: resource.ComposeTestCheckFunc(checkStateHoldsNo(secretID), checkStateHoldsNo(roleID)),
		}},
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      loginConfig(gw.URL, env.VaultAddr, "  auth_login_approle {\n    role_id   = \""+roleID+"\"\n    secret_id = \"not-the-secret\"\n  }\n"),
			PlanOnly:    true,
			ExpectError: wrapped(`Vault Login Refused.*auth/approle/login \([0-9]+\): invalid secret id`),
		}},
	})
}

// Exactly one source of the token: two are an error on the attribute, not a guess.
func TestAccLogin_conflictingSources(t *testing.T) {
	gw := env.StartGateway(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: strings.Replace(loginConfig(gw.URL, env.VaultAddr, "  auth_login_jwt {\n    role = \"ci-sbx\"\n    jwt  = \"x.y.z\"\n  }\n"),
				`environment   = "sbx"`, `environment   = "sbx"`+"\n  token = \"hvs.abc\"", 1),
			ExpectError: wrapped("Invalid Token Setting.*`token` and `auth_login_jwt` are both set; set exactly one way to get the Vault token"),
		}},
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// HCP Terraform gives a run's plan and apply phases different workload
// tokens (different sub claims). With the workspace's role (user claim: the
// workspace id) both are one Vault entity, so the plan reads what the apply
// made; another workspace's token sees nothing of it and cannot touch it.
func TestAccLogin_hcpWorkspacePhasesAreOneOwner(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	iss := env.JWTIssuer(t)
	env.WorkspaceRole(t, "tfc-network", "acme", "infra", "network", "fedramp_sbx_default")
	env.WorkspaceRole(t, "tfc-other", "acme", "infra", "other", "fedramp_sbx_default")
	apply := iss.WorkspaceToken(t, "acme", "infra", "network", "ws-NETWORK1", "apply")
	plan := iss.WorkspaceToken(t, "acme", "infra", "network", "ws-NETWORK1", "plan")
	other := iss.WorkspaceToken(t, "acme", "infra", "other", "ws-OTHER22", "apply")

	// Vault itself maps both phases to one entity, and the other workspace to another.
	entity := func(role, jwt string) string {
		s, err := env.Admin().Logical().Write("auth/jwt/login", map[string]any{"role": role, "jwt": jwt})
		if err != nil {
			t.Fatal(err)
		}
		return s.Auth.EntityID
	}
	if a, p, o := entity("tfc-network", apply), entity("tfc-network", plan), entity("tfc-other", other); a != p || a == o || a == "" {
		t.Fatalf("entities: apply %s, plan %s, other workspace %s", a, p, o)
	}
	// Another workspace's token fails its own role's bound claims for this workspace.
	if _, err := env.Admin().Logical().Write("auth/jwt/login", map[string]any{"role": "tfc-network", "jwt": other}); err == nil {
		t.Fatal("the other workspace's token logged in with this workspace's role")
	}

	config := func(role, jwt string) string {
		return loginConfig(gw.URL, env.VaultAddr, "  auth_login_jwt {\n    role = \""+role+"\"\n    jwt  = \""+jwt+"\"\n  }\n") +
			ipReservationConfig("ws-01", "made by the apply phase")
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{
			{Config: config("tfc-network", apply)},                                         // the apply phase makes it
			{Config: config("tfc-network", plan), PlanOnly: true},                          // the plan phase sees it as it is: no changes
			{Config: config("tfc-other", other), PlanOnly: true, ExpectNonEmptyPlan: true}, // invisible to another workspace
			{Config: config("tfc-network", apply), Check: func(*terraform.State) error { // still there, still the workspace's
				if n := len(sim.Hosts()); n != 1 {
					return fmt.Errorf("%d hosts after another workspace's plan", n)
				}
				return nil
			}},
		},
	})
}
