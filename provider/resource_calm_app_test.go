package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// calmAppConfig is one sandbox app; extra goes inside the resource block.
func calmAppConfig(name, extra string) string {
	return fmt.Sprintf(`
resource "sas_calm_app" "test" {
  name      = %[1]q
  project   = "sas-sbx"
  blueprint = "linux-vm-sandbox"
  network   = "sbx-app"
  size = {
    vcpus      = 1
    memory_gib = 2
    disk_gib   = 20
  }
%[2]s
}
`, name, extra)
}

// checkCalmHoldsNoApps is CheckDestroy: it asks Calm, not sas.
func checkCalmHoldsNoApps(sim *simcalm.Server) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for _, a := range sim.Apps() {
			if a.State != "deleted" {
				return fmt.Errorf("Calm still holds app %s (%s) in state %s", a.Name, a.UUID, a.State)
			}
		}
		return nil
	}
}

func liveCalmApps(sim *simcalm.Server) []simcalm.AppSnapshot {
	var out []simcalm.AppSnapshot
	for _, a := range sim.Apps() {
		if a.State != "deleted" {
			out = append(out, a)
		}
	}
	return out
}

// Launch → running → stopped → running → import → deleted outside sas →
// re-created → destroyed, on every CLI; CheckDestroy asks Calm.
func TestAccCalmApp_lifecycle(t *testing.T) {
	env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-calm", Bundles: []string{sbxBundle}})
	const name = "sas_calm_app.test"
	cfg := func(power string) string {
		return providerConfig(gw.URL, tok) + calmAppConfig("acc-app", `  variables = { OWNER_EMAIL = "acc@example.org" }
  power_state = "`+power+`"`)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkCalmHoldsNoApps(sim),
		Steps: []resource.TestStep{
			{
				Config: cfg("running"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^calm-`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("state"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("profile"), knownvalue.StringExact("Default")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("addresses"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringRegexp(regexp.MustCompile(`^10\.10\.0\.\d+$`))})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("vms").AtSliceIndex(0).AtMapKey("power_state"), knownvalue.StringExact("ON")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapPartial(map[string]knownvalue.Check{
						"owner": knownvalue.StringExact("acc-calm"), "bundle": knownvalue.StringExact(sbxBundle)})),
				},
				Check: func(*terraform.State) error {
					if apps := liveCalmApps(sim); len(apps) != 1 || apps[0].Variables["OWNER_EMAIL"] != "acc@example.org" {
						return fmt.Errorf("Calm holds %+v", apps)
					}
					return nil
				},
			},
			{
				Config: cfg("stopped"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate)}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("state"), knownvalue.StringExact("stopped")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("vms").AtSliceIndex(0).AtMapKey("power_state"), knownvalue.StringExact("OFF")),
				},
			},
			{
				Config:            cfg("running"),
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(name, tfjsonpath.New("state"), knownvalue.StringExact("running"))},
			},
			{ResourceName: name, ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"operation_id"}},
			{
				// Deleted in Prism behind sas's back: the next plan re-creates it.
				PreConfig: func() {
					apps := liveCalmApps(sim)
					if len(apps) != 1 {
						t.Fatalf("want one app, Calm holds %+v", apps)
					}
					if err := sim.DeleteAppOutOfBand(apps[0].UUID); err != nil {
						t.Fatal(err)
					}
				},
				Config:             cfg("running"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{Config: cfg("running"), Check: func(*terraform.State) error {
				if n := len(liveCalmApps(sim)); n != 1 {
					return fmt.Errorf("after re-creating, Calm holds %d live apps", n)
				}
				return nil
			}},
		},
	})
}

// Secret runtime variables are write-only: they reach Calm and are in no
// plan, no state, no provider log; on a CLI without write-only attributes
// the configuration is refused with the framework's clear error.
func TestAccCalmApp_secretVariablesWriteOnly(t *testing.T) {
	env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-calm-secret", Bundles: []string{sbxBundle}})
	const secret = "tr0ub4dor-and-3-write-only"
	logFile := filepath.Join(t.TempDir(), "tf.log")
	t.Setenv("TF_ACC_LOG", "TRACE")
	t.Setenv("TF_ACC_LOG_PATH", logFile)
	// As users pass secrets: an ephemeral variable, never saved in a plan.
	cfg := providerConfig(gw.URL, tok) + `
variable "admin_password" {
  type      = string
  sensitive = true
  ephemeral = true
}
` + calmAppConfig("acc-secret", `  secret_variables = { ADMIN_PASSWORD = var.admin_password }
  secret_variables_version = 1`)
	sum := sha256.Sum256([]byte(secret))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_11_0)}, // write-only attributes
		CheckDestroy:             checkCalmHoldsNoApps(sim),
		Steps: []resource.TestStep{{
			Config:          cfg,
			ConfigVariables: config.Variables{"admin_password": config.StringVariable(secret)},
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				planHoldsNo(secret), plancheck.ExpectKnownValue("sas_calm_app.test", tfjsonpath.New("secret_variables"), knownvalue.Null())}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("sas_calm_app.test", tfjsonpath.New("secret_variables"), knownvalue.Null())},
			Check: resource.ComposeTestCheckFunc(checkStateHoldsNo(secret), func(*terraform.State) error {
				apps := liveCalmApps(sim)
				if len(apps) != 1 || !strings.HasSuffix(apps[0].SecretHashes["ADMIN_PASSWORD"], hex.EncodeToString(sum[:])) {
					return fmt.Errorf("the secret did not reach Calm: %+v", apps)
				}
				if b, err := os.ReadFile(logFile); err != nil || len(b) == 0 || strings.Contains(string(b), secret) {
					return fmt.Errorf("Terraform's trace log (%d bytes, %v) holds the secret or is empty", len(b), err)
				}
				return nil
			}),
		}},
	})
}

func TestAccCalmApp_secretVariablesNeedWriteOnlyCLI(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-calm-old", Bundles: []string{sbxBundle}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipAbove(tfversion.Version1_10_0)}, // CLIs without write-only
		Steps: []resource.TestStep{{
			Config:      providerConfig(gw.URL, tok) + calmAppConfig("acc-old", `  secret_variables = { ADMIN_PASSWORD = "x" }`),
			ExpectError: wrapped(`(?i)write-only`),
		}},
	})
}

// A prod blueprint under the sandbox bundle fails at plan, on `blueprint`;
// a launch Calm fails is an apply error with Calm's message, and leaves
// nothing in Calm or in state.
func TestAccCalmApp_deniedAtPlanAndFailedLaunch(t *testing.T) {
	env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-calm-deny", Bundles: []string{sbxBundle}})
	prod := strings.Replace(calmAppConfig("acc-prod", ""), `"linux-vm-sandbox"`, `"linux-vm-prod"`, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkCalmHoldsNoApps(sim),
		Steps: []resource.TestStep{
			{Config: providerConfig(gw.URL, tok) + prod, PlanOnly: true,
				ExpectError: wrapped(`Denied by Policy Bundle fedramp_sbx_default.*blueprint = "linux-vm-prod".*sandbox-level blueprints.*Rule: blueprint_not_allowed`)},
			{
				PreConfig:   func() { sim.FailNextLaunches(1, "cluster sbx-01 has no capacity left") },
				Config:      providerConfig(gw.URL, tok) + calmAppConfig("acc-fails", ""),
				ExpectError: wrapped(`Calm App Operation Failed.*no capacity left`),
			},
		},
	})
	if n := len(liveCalmApps(sim)); n != 0 {
		t.Fatalf("Calm holds %d apps after a failed launch", n)
	}
}

// planHoldsNo fails if the plan's JSON anywhere contains s.
func planHoldsNo(s string) plancheck.PlanCheck { return planText{not: s} }

type planText struct{ not string }

func (c planText) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if strings.Contains(fmt.Sprintf("%v %v", rc.Change.After, rc.Change.Before), c.not) {
			resp.Error = fmt.Errorf("the plan for %s holds the secret", rc.Address)
		}
	}
	if strings.Contains(fmt.Sprintf("%v", req.Plan.Config), c.not) || strings.Contains(fmt.Sprintf("%v", req.Plan.Variables), c.not) {
		resp.Error = fmt.Errorf("the plan's configuration holds the secret")
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
