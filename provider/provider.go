// Package provider is the sas Terraform provider. It talks only to the sas
// gateway; the gateway alone reaches Vault KV, Calm, Infoblox and Terraform.
package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var _ provider.Provider = &SasProvider{}

// SasProvider is the sas provider.
type SasProvider struct {
	version string
}

// SasProviderModel is the provider block.
type SasProviderModel struct {
	Address      types.String `tfsdk:"address"`
	Token        types.String `tfsdk:"token"`
	TokenFile    types.String `tfsdk:"token_file"`
	PolicyBundle types.String `tfsdk:"policy_bundle"`
	Environment  types.String `tfsdk:"environment"`
	CACertFile   types.String `tfsdk:"ca_cert_file"`
	VaultAddress types.String `tfsdk:"vault_address"`

	LoginJWT     *jwtLoginModel     `tfsdk:"auth_login_jwt"`
	LoginAppRole *appRoleLoginModel `tfsdk:"auth_login_approle"`
}

// ProviderData is what resources and data sources receive in Configure.
type ProviderData struct {
	Client       *gatewayclient.Client
	PolicyBundle string
	Environment  string
}

// New returns a provider factory for version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &SasProvider{version: version} }
}

func (p *SasProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sas"
	resp.Version = p.version
}

func (p *SasProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The sas provider provisions infrastructure through the sas gateway, which verifies your " +
			"ephemeral Vault token, evaluates the policy bundle bound to it, audits the request, and only then " +
			"reaches Infoblox, Nutanix Calm or Terraform with a short-lived Vault sub-token.",
		Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{
				MarkdownDescription: "URL of the sas gateway, e.g. `https://sas.example.com`. Defaults to `SAS_ADDR`.",
				Optional:            true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "Ephemeral Vault token the gateway verifies. Defaults to `VAULT_TOKEN`, then `~/.vault-token`. " +
					"Root tokens, tokens that never expire and tokens with more remaining TTL than the gateway's ceiling are refused. " +
					"Never stored in state.",
				Optional:  true,
				Sensitive: true,
			},
			"token_file": schema.StringAttribute{
				MarkdownDescription: "Path of a file holding the Vault token. With HCP Terraform's Vault dynamic credentials, set it to " +
					"`var.tfc_vault_dynamic_credentials.default.token_filename`. Conflicts with `token`.",
				Optional: true,
			},
			"policy_bundle": schema.StringAttribute{
				MarkdownDescription: "Policy bundle requests are made under (your token must carry policy `sas-bundle-<name>`). " +
					"Defaults to `SAS_POLICY_BUNDLE`.",
				Optional: true,
			},
			"environment": schema.StringAttribute{
				MarkdownDescription: "Environment requests target (`sbx`, `dev` or `prod`); the bundle decides which it allows. " +
					"Defaults to `SAS_ENVIRONMENT`.",
				Optional: true,
			},
			"ca_cert_file": schema.StringAttribute{
				MarkdownDescription: "PEM file of the CA that signed the gateway's TLS certificate, when it is not in the system pool.",
				Optional:            true,
			},
			"vault_address": schema.StringAttribute{
				MarkdownDescription: "Vault's address, for the login blocks only (the provider never calls Vault otherwise). " +
					"Defaults to `VAULT_ADDR`; `VAULT_CACERT` and the other Vault client variables apply.",
				Optional: true,
			},
		},
		Blocks: loginBlocks(),
	}
}

func (p *SasProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg SasProviderModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, a := range []struct {
		name string
		v    types.String
	}{{"address", cfg.Address}, {"token", cfg.Token}, {"token_file", cfg.TokenFile}, {"policy_bundle", cfg.PolicyBundle}, {"environment", cfg.Environment}, {"ca_cert_file", cfg.CACertFile}} {
		if a.v.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(a.name), "Unknown Provider Setting",
				fmt.Sprintf("The provider cannot be configured because %q is not known until apply. Set it to a literal, a variable or its environment variable.", a.name))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	address := firstNonEmpty(cfg.Address.ValueString(), os.Getenv("SAS_ADDR"))
	if address == "" {
		resp.Diagnostics.AddAttributeError(path.Root("address"), "Missing Gateway Address",
			"The provider needs the sas gateway's URL. Set `address` in the provider block or the SAS_ADDR environment variable "+
				"(`sas-server dev --env-file` writes it for the local stack).")
	}
	token, source, err := resolveToken(ctx, cfg, firstNonEmpty(cfg.VaultAddress.ValueString(), os.Getenv("VAULT_ADDR")))
	switch {
	case errors.Is(err, errLogin):
		resp.Diagnostics.AddAttributeError(path.Root(source), "Vault Login Refused", err.Error()+
			"\n\nCheck the role's bound audience, claims and issuer (JWT), or the role id and secret id (AppRole), with your Vault operator.")
	case err != nil:
		resp.Diagnostics.AddAttributeError(path.Root(source), "Invalid Token Setting", err.Error())
	case token == "":
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Missing Vault Token",
			"The gateway only accepts an ephemeral Vault token. Set `token` or `token_file` in the provider block, log in with an "+
				"`auth_login_jwt` or `auth_login_approle` block, or set VAULT_TOKEN, or log in with `vault login` (which writes ~/.vault-token).")
	}
	if resp.Diagnostics.HasError() {
		return
	}

	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, "token")
	ctx = tflog.MaskAllFieldValuesStrings(ctx, token)
	client, err := gatewayclient.New(gatewayclient.Config{
		Address:      address,
		Token:        token,
		PolicyBundle: firstNonEmpty(cfg.PolicyBundle.ValueString(), os.Getenv("SAS_POLICY_BUNDLE")),
		Environment:  firstNonEmpty(cfg.Environment.ValueString(), os.Getenv("SAS_ENVIRONMENT")),
		CACertFile:   cfg.CACertFile.ValueString(),
		UserAgent:    "terraform-provider-sas/" + p.version,
		Log:          gatewayLog(token),
	})
	if err != nil {
		attr := "address"
		if strings.Contains(err.Error(), "CA certificate") {
			attr = "ca_cert_file"
		}
		resp.Diagnostics.AddAttributeError(path.Root(attr), "Invalid Provider Configuration", err.Error())
		return
	}
	tflog.Debug(ctx, "configured sas provider", map[string]any{"address": address, "token_source": source})
	data := &ProviderData{
		Client:       client,
		PolicyBundle: firstNonEmpty(cfg.PolicyBundle.ValueString(), os.Getenv("SAS_POLICY_BUNDLE")),
		Environment:  firstNonEmpty(cfg.Environment.ValueString(), os.Getenv("SAS_ENVIRONMENT")),
	}
	resp.DataSourceData = data
	resp.ResourceData = data
}

func (p *SasProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewIPReservationResource,
		NewCalmAppResource,
		NewModuleRunResource,
	}
}

func (p *SasProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewCatalogDataSource,
		NewIdentityDataSource,
		NewPolicyBundleDataSource,
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
