package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var _ datasource.DataSourceWithConfigure = &IdentityDataSource{}

// NewIdentityDataSource returns the sas_identity data source.
func NewIdentityDataSource() datasource.DataSource { return &IdentityDataSource{} }

// IdentityDataSource tells who the gateway believes the caller is.
type IdentityDataSource struct {
	client *gatewayclient.Client
}

// IdentityDataSourceModel is sas_identity's state.
type IdentityDataSourceModel struct {
	ID          types.String `tfsdk:"id"`
	Owner       types.String `tfsdk:"owner"`
	EntityID    types.String `tfsdk:"entity_id"`
	EntityName  types.String `tfsdk:"entity_name"`
	DisplayName types.String `tfsdk:"display_name"`
	Policies    types.List   `tfsdk:"policies"`
	Bundles     types.List   `tfsdk:"bundles"`
	TokenType   types.String `tfsdk:"token_type"`
	TokenExpiry types.String `tfsdk:"token_expire_time"`
	TokenTTL    types.Int64  `tfsdk:"token_ttl_seconds"`
}

func (d *IdentityDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_identity"
}

func (d *IdentityDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Who the sas gateway believes you are: the Vault entity behind your token, the policy bundles " +
			"it is bound to and when it expires. The owner shown here is the owner recorded in every audit record and tag.",
		Attributes: map[string]schema.Attribute{
			"id":                schema.StringAttribute{Computed: true, MarkdownDescription: "The Vault entity id, or the owner when the token has no entity."},
			"owner":             schema.StringAttribute{Computed: true, MarkdownDescription: "Owner recorded for your requests: the Vault entity's name, else the token's display name."},
			"entity_id":         schema.StringAttribute{Computed: true, MarkdownDescription: "Vault entity id of the token."},
			"entity_name":       schema.StringAttribute{Computed: true, MarkdownDescription: "Vault entity name of the token."},
			"display_name":      schema.StringAttribute{Computed: true, MarkdownDescription: "The token's display name in Vault."},
			"policies":          schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Vault policies of the token (token and identity policies)."},
			"bundles":           schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Policy bundles the token may use (from its `sas-bundle-<name>` policies)."},
			"token_type":        schema.StringAttribute{Computed: true, MarkdownDescription: "`service` or `batch`."},
			"token_expire_time": schema.StringAttribute{Computed: true, MarkdownDescription: "When the token expires (RFC 3339)."},
			"token_ttl_seconds": schema.Int64Attribute{Computed: true, MarkdownDescription: "Seconds the token had left when read."},
		},
	}
}

func (d *IdentityDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *IdentityDataSource) Read(ctx context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	id, err := d.client.Identity(ctx)
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic("read your identity (GET /v1/identity)", err))
		return
	}
	policies, diags := types.ListValueFrom(ctx, types.StringType, id.Policies)
	resp.Diagnostics.Append(diags...)
	bundles, diags := types.ListValueFrom(ctx, types.StringType, id.Bundles)
	resp.Diagnostics.Append(diags...)
	m := IdentityDataSourceModel{
		ID:          types.StringValue(firstNonEmpty(id.EntityID, id.Owner)),
		Owner:       types.StringValue(id.Owner),
		EntityID:    types.StringValue(id.EntityID),
		EntityName:  types.StringValue(id.EntityName),
		DisplayName: types.StringValue(id.DisplayName),
		Policies:    policies,
		Bundles:     bundles,
		TokenType:   types.StringValue(id.Token.Type),
		TokenExpiry: types.StringValue(id.Token.ExpireTime.Format(time.RFC3339)),
		TokenTTL:    types.Int64Value(id.Token.TTLSeconds),
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
