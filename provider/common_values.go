package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

// objectAsOptions reads nested objects strictly: every attribute known.
var objectAsOptions = basetypes.ObjectAsOptions{}

// from builds a framework value and collects its diagnostics.
func from(_ context.Context, diags *diag.Diagnostics, build func() (attr.Value, diag.Diagnostics)) attr.Value {
	v, d := build()
	diags.Append(d...)
	return v
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// clientFrom is every data source's and resource's Configure: nil provider
// data means the provider is not configured yet (validation).
func clientFrom(providerData any, diags *diag.Diagnostics) *gatewayclient.Client {
	if providerData == nil {
		return nil
	}
	data, ok := providerData.(*ProviderData)
	if !ok {
		diags.AddError("Unexpected Provider Data",
			fmt.Sprintf("Expected *provider.ProviderData, got %T. This is a bug in the provider; please report it.", providerData))
		return nil
	}
	return data.Client
}

// stringAttr is a string an operation result or resource attributes hold.
func stringAttr(attrs map[string]any, key string) string {
	s, _ := attrs[key].(string)
	return s
}
