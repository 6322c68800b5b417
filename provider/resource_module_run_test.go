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

	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
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
// inputs (update in place), imported, destroyed; removing every input is
// an update without them (refused at plan: the module requires one); a version the operator's
// catalog does not approve is refused at plan, before any policy, as an
// invalid request at /version.
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
				ExpectError: wrapped(`Invalid Request.*POST /v1/decisions.*/request/version: module platform/maintenance-window has no approved version "9.9.9"; approved: 1.0.0, 1.1.0`)},
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
			// Every input removed: the update sends inputs {}, which the
			// gateway keeps apart from "not sent" — a run without service,
			// which the module requires, so it is refused at plan.
			{Config: providerConfig(gw.URL, tok) + moduleRunConfig("1.0.0", ""), PlanOnly: true,
				ExpectError: wrapped(`Invalid Request.*/request/inputs/service: required`)},
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

// Secret inputs are write-only: they reach the run (the gateway's keyed
// fingerprint of the value proves it, and follows a rotation) and are in
// no plan or state; no output is derived from them, and the fingerprint is
// not a bare hash.
func TestAccModuleRun_secretInputsWriteOnly(t *testing.T) {
	var dataDir string
	gw := env.StartGateway(t, func(c *server.Config) { dataDir = c.DataDir })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-modules-secret", Bundles: []string{sbxBundle}})
	key, err := audit.LoadHMACKey(audit.DefaultKeyPaths(dataDir).HMAC) // the gateway keys fingerprints with it
	if err != nil {
		t.Fatal(err)
	}
	const secret, rotated = "first-rotation-secret-4419", "second-rotation-secret-8830"
	cfg := func(version int) string {
		return providerConfig(gw.URL, tok) + fmt.Sprintf(`
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
  secret_inputs_version = %d
}
`, version)
	}
	const name = "sas_module_run.test"
	step := func(version int, value string) resource.TestStep {
		return resource.TestStep{
			Config:           cfg(version),
			ConfigVariables:  config.Variables{"initial_secret": config.StringVariable(value)},
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{planHoldsNo(value)}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(name, tfjsonpath.New("secret_inputs"), knownvalue.Null()),
				statecheck.ExpectKnownValue(name, tfjsonpath.New("secret_input_fingerprints"), knownvalue.MapExact(map[string]knownvalue.Check{
					"initial_secret": knownvalue.StringExact(modulerun.SecretInputFingerprint(key, "initial_secret", value))})),
				statecheck.ExpectKnownValue(name, tfjsonpath.New("sensitive_outputs"), knownvalue.MapSizeExact(0)),
				statecheck.ExpectKnownValue(name, tfjsonpath.New("outputs").AtMapKey("rotated_at"), knownvalue.NotNull()),
			},
			Check: resource.ComposeTestCheckFunc(checkStateHoldsNo(value), checkStateHoldsNo(sha256Hex(value))),
		}
	}
	// The rotation: a new value and secret_inputs_version run the module
	// again in place; the fingerprint follows the value.
	rotate := step(2, rotated)
	rotate.ConfigPlanChecks.PreApply = append(rotate.ConfigPlanChecks.PreApply, plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_11_0)},
		Steps:                    []resource.TestStep{step(1, secret), rotate},
	})
}
