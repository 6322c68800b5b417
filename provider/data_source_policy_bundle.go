package provider

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var _ datasource.DataSourceWithConfigure = &PolicyBundleDataSource{}

// NewPolicyBundleDataSource returns the sas_policy_bundle data source.
func NewPolicyBundleDataSource() datasource.DataSource { return &PolicyBundleDataSource{} }

// PolicyBundleDataSource shows a policy bundle's rules.
type PolicyBundleDataSource struct {
	client        *gatewayclient.Client
	defaultBundle string
}

// PolicyBundleDataSourceModel is sas_policy_bundle's state.
type PolicyBundleDataSourceModel struct {
	Name                 types.String `tfsdk:"name"`
	ID                   types.String `tfsdk:"id"`
	Revision             types.String `tfsdk:"revision"`
	Description          types.String `tfsdk:"description"`
	Signed               types.Bool   `tfsdk:"signed"`
	Environments         types.List   `tfsdk:"environments"`
	Networks             types.Map    `tfsdk:"networks"`
	DNSZones             types.List   `tfsdk:"dns_zones"`
	Blueprints           types.Map    `tfsdk:"blueprints"`
	Modules              types.Map    `tfsdk:"modules"`
	Limits               types.Map    `tfsdk:"limits"`
	RequiresChangeTicket types.Bool   `tfsdk:"requires_change_ticket"`
	DataJSON             types.String `tfsdk:"data_json"`
}

func (d *PolicyBundleDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_policy_bundle"
}

func (d *PolicyBundleDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A policy bundle's declared rules — environments, networks, DNS zones, blueprints, modules and limits — " +
			"and the revision the gateway enforces. Your token must be bound to the bundle (Vault policy `sas-bundle-<name>`).",
		Attributes: map[string]schema.Attribute{
			"name":                   schema.StringAttribute{Optional: true, Computed: true, MarkdownDescription: "Bundle name. Defaults to the provider's `policy_bundle`."},
			"id":                     schema.StringAttribute{Computed: true, MarkdownDescription: "`<name>@<revision>`."},
			"revision":               schema.StringAttribute{Computed: true, MarkdownDescription: "The bundle's revision (from its `.manifest`); every decision records it."},
			"description":            schema.StringAttribute{Computed: true, MarkdownDescription: "What the bundle is for."},
			"signed":                 schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the gateway verified the bundle's signature."},
			"environments":           schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Environments the bundle may be used in."},
			"networks":               schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Network name → CIDR."},
			"dns_zones":              schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "DNS zones the bundle allows."},
			"blueprints":             schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Calm blueprint → level (sandbox, dev, prod)."},
			"modules":                schema.MapAttribute{Computed: true, ElementType: types.ListType{ElemType: types.StringType}, MarkdownDescription: "Catalog module → allowed versions."},
			"limits":                 schema.MapAttribute{Computed: true, ElementType: types.Int64Type, MarkdownDescription: "Size limits."},
			"requires_change_ticket": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether create, update and delete need a `change_ticket`."},
			"data_json":              schema.StringAttribute{Computed: true, MarkdownDescription: "The bundle's whole declaration (`data.sas.bundle`) as JSON."},
		},
	}
}

func (d *PolicyBundleDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
	if data, ok := req.ProviderData.(*ProviderData); ok {
		d.defaultBundle = data.PolicyBundle
	}
}

// bundleData is the part of data.sas.bundle this data source flattens.
type bundleData struct {
	Environments []string `json:"environments"`
	Networks     map[string]struct {
		CIDR string `json:"cidr"`
	} `json:"networks"`
	DNSZones   map[string]any `json:"dns_zones"`
	Blueprints map[string]struct {
		Level string `json:"level"`
	} `json:"blueprints"`
	Modules map[string]struct {
		Versions []string `json:"versions"`
	} `json:"modules"`
	Limits               map[string]int64 `json:"limits"`
	RequiresChangeTicket bool             `json:"requires_change_ticket"`
}

func (d *PolicyBundleDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m PolicyBundleDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Name.ValueString()
	if name == "" {
		name = d.defaultBundle
	}
	if name == "" {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Missing Bundle Name",
			"Set `name`, or the provider's `policy_bundle` (or SAS_POLICY_BUNDLE).")
		return
	}
	b, err := d.client.Bundle(ctx, name)
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic("read policy bundle "+name+" (GET /v1/bundles/"+name+")", err))
		return
	}
	raw, err := json.Marshal(b.Data)
	if err != nil {
		resp.Diagnostics.AddError("Unreadable Bundle Data", err.Error())
		return
	}
	var bd bundleData
	if err := json.Unmarshal(raw, &bd); err != nil {
		resp.Diagnostics.AddError("Unreadable Bundle Data", "The gateway's declaration of bundle "+name+" could not be read: "+err.Error())
		return
	}
	nets := map[string]string{}
	for k, v := range bd.Networks {
		nets[k] = v.CIDR
	}
	zones := make([]string, 0, len(bd.DNSZones))
	for z := range bd.DNSZones {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	bps := map[string]string{}
	for k, v := range bd.Blueprints {
		bps[k] = v.Level
	}
	mods := map[string][]string{}
	for k, v := range bd.Modules {
		mods[k] = nonNil(v.Versions)
	}
	diags := &resp.Diagnostics
	out := PolicyBundleDataSourceModel{
		Name: types.StringValue(b.Name), ID: types.StringValue(b.Name + "@" + b.Revision), Revision: types.StringValue(b.Revision),
		Description: types.StringValue(b.Description), Signed: types.BoolValue(b.Signed),
		RequiresChangeTicket: types.BoolValue(bd.RequiresChangeTicket), DataJSON: types.StringValue(string(raw)),
	}
	out.Environments = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.ListValueFrom(ctx, types.StringType, nonNil(bd.Environments))
	}).(types.List)
	out.Networks = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, nets) }).(types.Map)
	out.DNSZones = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.ListValueFrom(ctx, types.StringType, zones) }).(types.List)
	out.Blueprints = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, bps) }).(types.Map)
	out.Modules = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.MapValueFrom(ctx, types.ListType{ElemType: types.StringType}, mods)
	}).(types.Map)
	out.Limits = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.Int64Type, bd.Limits) }).(types.Map)
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}
