package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

const identityConfig = `
data "sas_identity" "me" {}
`

// The whole path: Terraform 1.5.7 → provider → gateway → real Vault, which
// vouches for the token and names its entity.
func TestAccIdentityDataSource(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-user", Bundles: []string{"fedramp_sbx_default"}})

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig(gw.URL, tok) + identityConfig,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("owner"), knownvalue.StringExact("acc-user")),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("entity_name"), knownvalue.StringExact("acc-user")),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("entity_id"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f-]{36}$`))),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("bundles"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("fedramp_sbx_default")})),
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("token_type"), knownvalue.StringExact("service")),
			},
			Check: checkStateHoldsNo(tok),
		}},
	})
}

// token_file is how HCP Terraform's dynamic credentials hand over a token.
func TestAccIdentityDataSource_tokenFile(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "hcp-run", Bundles: []string{"fedramp_dev_default"}})
	file := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
provider "sas" {
  address    = "` + gw.URL + `"
  token_file = "` + file + `"
}
` + identityConfig,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.sas_identity.me", tfjsonpath.New("owner"), knownvalue.StringExact("hcp-run")),
			},
		}},
	})
}

// Static credentials fail at plan, with the reason and what to do.
func TestAccIdentityDataSource_refusedTokens(t *testing.T) {
	gw := env.StartGateway(t)
	sbx := "fedramp_sbx_default"
	cases := map[string]struct {
		token string
		want  *regexp.Regexp
	}{
		"root":    {env.RootToken(), wrapped(`Root Token Refused.*this is a Vault root token; static credentials are refused.*Log in to Vault again`)},
		"768h":    {env.OverlongToken(t, sbx), wrapped(`Token Lifetime Above Ceiling.*767h59m\d+s left, above this gateway's ceiling of 8h0m0s`)},
		"expired": {env.ExpiredToken(t, sbx), wrapped(`Vault Token Not Valid.*expired, was revoked or never existed`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      providerConfig(gw.URL, tc.token) + identityConfig,
					PlanOnly:    true,
					ExpectError: tc.want,
				}},
			})
		})
	}
}

func TestAccProvider_missingSettings(t *testing.T) {
	t.Setenv("SAS_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.vault-token
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `provider "sas" {}` + identityConfig,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Missing Gateway Address.*SAS_ADDR`),
			},
			{
				Config: `provider "sas" {
  address    = "http://127.0.0.1:1"
  token      = "hvs.x"
  token_file = "/nonexistent"
}` + identityConfig,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile("`token` and `token_file` are both set"),
			},
		},
	})
}
