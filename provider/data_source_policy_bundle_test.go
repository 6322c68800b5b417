package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

func TestAccPolicyBundleAndCatalogDataSources(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "reader", Bundles: []string{"fedramp_sbx_default"}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig(gw.URL, tok) + `
data "sas_policy_bundle" "this" {}
data "sas_catalog" "here" {}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.sas_policy_bundle.this", tfjsonpath.New("name"), knownvalue.StringExact("fedramp_sbx_default")),
				statecheck.ExpectKnownValue("data.sas_policy_bundle.this", tfjsonpath.New("revision"), knownvalue.NotNull()),
				statecheck.ExpectKnownValue("data.sas_policy_bundle.this", tfjsonpath.New("environments"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("sbx")})),
				statecheck.ExpectKnownValue("data.sas_policy_bundle.this", tfjsonpath.New("networks").AtMapKey("sbx-app"), knownvalue.StringExact("10.10.0.0/24")),
				statecheck.ExpectKnownValue("data.sas_policy_bundle.this", tfjsonpath.New("limits").AtMapKey("max_vcpus"), knownvalue.Int64Exact(2)),
				statecheck.ExpectKnownValue("data.sas_catalog.here", tfjsonpath.New("environment"), knownvalue.StringExact("sbx")),
				statecheck.ExpectKnownValue("data.sas_catalog.here", tfjsonpath.New("networks").AtMapKey("sbx-data"), knownvalue.StringExact("10.10.1.0/24")),
				statecheck.ExpectKnownValue("data.sas_catalog.here", tfjsonpath.New("dns_zones"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("sbx.example.internal")})),
				statecheck.ExpectKnownValue("data.sas_catalog.here", tfjsonpath.New("change_ticket_required"), knownvalue.Bool(false)),
			},
		}},
	})
}

// A bundle the token is not bound to is refused with the reason.
func TestAccPolicyBundleDataSource_notBound(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "reader", Bundles: []string{"fedramp_sbx_default"}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      providerConfig(gw.URL, tok) + fmt.Sprintf("data \"sas_policy_bundle\" \"prod\" {\n  name = %q\n}\n", "fedramp_prod_restricted"),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)Bundle Not Bound to This Token.*sas-bundle-fedramp_prod_restricted`),
		}},
	})
}
