package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

func moduleRunConfig(version, inputs string) string {
	return fmt.Sprintf(`
resource "sas_module_run" "test" {
  name    = "acc-window"
  module  = "platform/maintenance-window"
  version = %q
  inputs  = { %s }
}
`, version, inputs)
}

// A catalog module through the provider: run, re-run with a new version and
// inputs (update in place), imported, destroyed; a version the bundle does
// not allow fails at plan on `version`.
func TestAccModuleRun_lifecycle(t *testing.T) {
	var dataDir string
	gw := env.StartGateway(t, func(c *server.Config) { dataDir = c.DataDir })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-modules", Bundles: []string{sbxBundle}})
	const name = "sas_module_run.test"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			entries, _ := os.ReadDir(dataDir + "/module-state")
			for _, e := range entries {
				if filepath.Ext(e.Name()) != ".tfstate" {
					continue // Terraform's own backups keep the state before the destroy
				}
				if b, _ := os.ReadFile(dataDir + "/module-state/" + e.Name()); regexp.MustCompile(`"resources": \[\s*\{`).Match(b) {
					return fmt.Errorf("module state %s still holds resources", e.Name())
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{Config: providerConfig(gw.URL, tok) + moduleRunConfig("9.9.9", `service = "web"`), PlanOnly: true,
				ExpectError: wrapped(`Denied by Policy.*version = "9.9.9".*Rule: module_version_not_allowed`)},
			{
				Config: providerConfig(gw.URL, tok) + moduleRunConfig("1.0.0", `service = "web", start_hour = "3"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^mr-`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("plan"), knownvalue.MapExact(map[string]knownvalue.Check{
						"add": knownvalue.Int64Exact(2), "change": knownvalue.Int64Exact(0), "destroy": knownvalue.Int64Exact(0)})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("outputs").AtMapKey("window"),
						knownvalue.StringExact(`{"ends":"05:00 UTC","service":"web","starts":"03:00 UTC"}`)),
				},
			},
			{
				Config: providerConfig(gw.URL, tok) + moduleRunConfig("1.1.0", `service = "web", start_hour = "3", weekday = "friday"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("plan").AtMapKey("change"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("outputs").AtMapKey("window"),
						knownvalue.StringExact(`{"ends":"05:00 UTC","service":"web","starts":"03:00 UTC","weekday":"friday"}`)),
				},
			},
			{ResourceName: name, ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"operation_id"}},
		},
	})
}

// Secret inputs are write-only: they reach the module (its fingerprint
// output proves it) and are in no plan or state.
func TestAccModuleRun_secretInputsWriteOnly(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-modules-secret", Bundles: []string{sbxBundle}})
	const secret = "first-rotation-secret-4419"
	cfg := providerConfig(gw.URL, tok) + `
variable "initial_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}
resource "sas_module_run" "test" {
  name    = "acc-rotation"
  module  = "platform/secret-rotation"
  version = "1.0.0"
  inputs  = { service = "billing", rotation_days = "30" }
  secret_inputs = { initial_secret = var.initial_secret }
  secret_inputs_version = 1
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{{
			Config:           cfg,
			ConfigVariables:  config.Variables{"initial_secret": config.StringVariable(secret)},
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{planHoldsNo(secret)}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("sas_module_run.test", tfjsonpath.New("secret_inputs"), knownvalue.Null()),
				statecheck.ExpectSensitiveValue("sas_module_run.test", tfjsonpath.New("sensitive_outputs")),
				statecheck.ExpectKnownValue("sas_module_run.test", tfjsonpath.New("sensitive_outputs").AtMapKey("secret_fingerprint"),
					knownvalue.StringExact(sha256Hex(secret))),
			},
			Check: checkStateHoldsNo(secret),
		}},
	})
}
