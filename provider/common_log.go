package provider

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

// gatewayLog sends the gateway client's request events to tflog in the
// context of the RPC that made the request, with the token masked there.
//
// Why per call: tflog's masking rewrites the field map of the context it
// logs with. A context kept from ConfigureProvider is shared by every
// concurrent RPC, and masking into it crashed the provider with
// "concurrent map writes" at ordinary parallelism. MaskAllFieldValuesStrings
// copies the logger options into a fresh context, so each call masks its own.
func gatewayLog(token string) gatewayclient.LogFunc {
	return func(ctx context.Context, level hclog.Level, msg string, fields map[string]any) {
		ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, "token")
		if token != "" {
			ctx = tflog.MaskAllFieldValuesStrings(ctx, token)
		}
		switch level {
		case hclog.Error:
			tflog.Error(ctx, msg, fields)
		case hclog.Warn:
			tflog.Warn(ctx, msg, fields)
		case hclog.Info:
			tflog.Info(ctx, msg, fields)
		default:
			tflog.Debug(ctx, msg, fields)
		}
	}
}
