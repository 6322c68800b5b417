package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

// checkPolicyAtPlan asks the gateway for a dry-run decision on the request
// the plan would send, and turns each violation into an error on the
// attribute it names — so a denial shows up at `terraform plan`, on the
// offending line, instead of halfway through apply.
//
// request is the body the apply will send, encoded exactly as it will be.
func checkPolicyAtPlan(ctx context.Context, client *gatewayclient.Client, kind, action, targetID string, request any, diags *diag.Diagnostics) {
	body, err := json.Marshal(request)
	if err != nil {
		diags.AddError("Cannot Check Policy", fmt.Sprintf("encode the planned %s %s: %v", action, kind, err))
		return
	}
	d, err := client.Decide(ctx, api.DecisionRequest{Kind: kind, Action: action, TargetID: targetID, Request: body})
	if err != nil {
		diags.Append(gatewayDiagnostic(fmt.Sprintf("check the planned %s %s against the policy bundle (POST /v1/decisions)", action, kind), err))
		return
	}
	if d.Allow {
		return
	}
	for _, v := range d.Violations {
		summary := "Denied by Policy Bundle " + d.Bundle
		detail := fmt.Sprintf("%s\n\nRule: %s", v.Message, v.Rule)
		if len(v.ControlIDs) > 0 {
			detail += "\nControls: " + strings.Join(v.ControlIDs, ", ")
		}
		detail += fmt.Sprintf("\nBundle: %s (revision %s)\nDecision: %s\n\nChange the value, or use a bundle and environment that allow it (see data source sas_catalog).",
			d.Bundle, d.Revision, d.DecisionID)
		if p, ok := attributePath(v.Path); ok {
			diags.AddAttributeError(p, summary, detail)
		} else {
			diags.AddError(summary, detail)
		}
	}
}

// attributePath maps a JSON pointer into the request body (e.g. "/aliases/1")
// to the Terraform attribute path with the same name.
func attributePath(pointer string) (path.Path, bool) {
	if pointer == "" || pointer == "/" {
		return path.Empty(), false
	}
	parts := strings.Split(strings.TrimPrefix(pointer, "/"), "/")
	p := path.Root(unescapePointer(parts[0]))
	for _, part := range parts[1:] {
		if i, err := strconv.Atoi(part); err == nil {
			p = p.AtListIndex(i)
		} else {
			p = p.AtName(unescapePointer(part))
		}
	}
	return p, true
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}
