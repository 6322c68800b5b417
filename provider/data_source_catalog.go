package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var _ datasource.DataSourceWithConfigure = &CatalogDataSource{}

// NewCatalogDataSource returns the sas_catalog data source.
func NewCatalogDataSource() datasource.DataSource { return &CatalogDataSource{} }

// CatalogDataSource lists what this identity may provision with the
// provider's bundle in its environment.
type CatalogDataSource struct {
	client *gatewayclient.Client
}

// CatalogDataSourceModel is sas_catalog's state.
type CatalogDataSourceModel struct {
	ID                   types.String `tfsdk:"id"`
	Bundle               types.String `tfsdk:"bundle"`
	Revision             types.String `tfsdk:"revision"`
	Environment          types.String `tfsdk:"environment"`
	Networks             types.Map    `tfsdk:"networks"`
	DNSZones             types.List   `tfsdk:"dns_zones"`
	Blueprints           types.List   `tfsdk:"blueprints"`
	Modules              types.Map    `tfsdk:"modules"`
	Actions              types.Map    `tfsdk:"actions"`
	Limits               types.Map    `tfsdk:"limits"`
	ChangeTicketRequired types.Bool   `tfsdk:"change_ticket_required"`
}

func (d *CatalogDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_catalog"
}

func (d *CatalogDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "What you may provision here: the networks, DNS zones, blueprints, modules, actions and limits " +
			"that the provider's `policy_bundle` allows in its `environment`, as the gateway computes them for your identity.",
		Attributes: map[string]schema.Attribute{
			"id":                     schema.StringAttribute{Computed: true, MarkdownDescription: "`<bundle>/<environment>`."},
			"bundle":                 schema.StringAttribute{Computed: true, MarkdownDescription: "The policy bundle."},
			"revision":               schema.StringAttribute{Computed: true, MarkdownDescription: "The bundle revision the gateway evaluated."},
			"environment":            schema.StringAttribute{Computed: true, MarkdownDescription: "The environment."},
			"networks":               schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Network name → CIDR."},
			"dns_zones":              schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "DNS zones you may use."},
			"blueprints":             schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Calm blueprints you may launch."},
			"modules":                schema.MapAttribute{Computed: true, ElementType: types.ListType{ElemType: types.StringType}, MarkdownDescription: "Catalog module → allowed versions."},
			"actions":                schema.MapAttribute{Computed: true, ElementType: types.ListType{ElemType: types.StringType}, MarkdownDescription: "Kind → allowed actions."},
			"limits":                 schema.MapAttribute{Computed: true, ElementType: types.Int64Type, MarkdownDescription: "Size limits (max_vcpus, max_memory_gib, max_disk_gib, max_aliases)."},
			"change_ticket_required": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether mutations need a `change_ticket`."},
		},
	}
}

func (d *CatalogDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *CatalogDataSource) Read(ctx context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	cat, err := d.client.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic("read the catalog (GET /v1/catalog)", err))
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, catalogModel(ctx, cat, &resp.Diagnostics))...)
}

func catalogModel(ctx context.Context, c *api.Catalog, diags *diag.Diagnostics) CatalogDataSourceModel {
	nets := map[string]string{}
	for _, n := range c.Networks {
		nets[n.Name] = n.CIDR
	}
	var blueprints []string
	for _, b := range c.Blueprints {
		blueprints = append(blueprints, b.Name)
	}
	modules := map[string][]string{}
	for _, m := range c.Modules {
		modules[m.Name] = m.Versions
	}
	limits := map[string]int64{}
	for k, v := range c.Limits {
		limits[k] = int64(v)
	}
	m := CatalogDataSourceModel{
		ID: types.StringValue(c.Bundle + "/" + c.Environment), Bundle: types.StringValue(c.Bundle),
		Revision: types.StringValue(c.Revision), Environment: types.StringValue(c.Environment),
		ChangeTicketRequired: types.BoolValue(c.ChangeTicketRequired),
	}
	m.Networks = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, nets) }).(types.Map)
	m.DNSZones = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.ListValueFrom(ctx, types.StringType, nonNil(c.DNSZones))
	}).(types.List)
	m.Blueprints = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.ListValueFrom(ctx, types.StringType, nonNil(blueprints))
	}).(types.List)
	m.Modules = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.MapValueFrom(ctx, types.ListType{ElemType: types.StringType}, modules)
	}).(types.Map)
	m.Actions = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.MapValueFrom(ctx, types.ListType{ElemType: types.StringType}, c.Actions)
	}).(types.Map)
	m.Limits = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.Int64Type, limits) }).(types.Map)
	return m
}
