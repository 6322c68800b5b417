package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/sas-platform/terraform-provider-sas/internal/policyset"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// policySetCheck evaluates a generated OPA policy set (examples/policy-sets)
// on the real plan Terraform made — the JSON HCP Terraform gives OPA — and
// expects it to deny with a message containing deny, or allow ("").
type policySetCheck struct {
	bundle, deny string
}

func (c policySetCheck) CheckPlan(ctx context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	src, err := os.ReadFile(filepath.Join("..", "examples", "policy-sets", c.bundle, "opa", "sas.rego"))
	if err != nil {
		resp.Error = err
		return
	}
	planJSON, err := json.Marshal(req.Plan)
	if err != nil {
		resp.Error = err
		return
	}
	deny, err := policyset.DenyOPA(ctx, string(src), planJSON)
	switch {
	case err != nil:
		resp.Error = err
	case c.deny == "" && len(deny) > 0:
		resp.Error = fmt.Errorf("policy set %s denies a plan the gateway allowed: %q", c.bundle, deny)
	case c.deny != "" && !strings.Contains(strings.Join(deny, "\n"), c.deny):
		resp.Error = fmt.Errorf("policy set %s: deny = %q, want a message containing %q", c.bundle, deny, c.deny)
	}
}

// A plan of sas_ip_reservation made by Terraform 1.5.7 (and allowed by the
// gateway's sbx bundle at plan time) is allowed by the generated sbx policy
// set and denied by the prod set, for the reason the prod bundle would give.
func TestAccPolicySetsOnRealPlans(t *testing.T) {
	env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-policy-sets", Bundles: []string{"fedramp_sbx_default"}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:             providerConfig(gw.URL, tok) + ipReservationConfig("plan-01", "checked by the policy sets"),
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
			ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
				policySetCheck{bundle: "fedramp_sbx_default"},
				policySetCheck{bundle: "fedramp_dev_default"}, // dev allows sbx too
				policySetCheck{bundle: "fedramp_prod_restricted", deny: `allows environments ["prod"]; the sas provider is configured for "sbx"`},
			}},
		}},
	})
}
