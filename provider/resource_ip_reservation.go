package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var (
	_ resource.Resource                = &IPReservationResource{}
	_ resource.ResourceWithConfigure   = &IPReservationResource{}
	_ resource.ResourceWithImportState = &IPReservationResource{}
	_ resource.ResourceWithModifyPlan  = &IPReservationResource{}
)

// Default timeouts; a `timeouts` block overrides them.
const (
	ipReservationCreateTimeout = 10 * time.Minute
	ipReservationUpdateTimeout = 10 * time.Minute
	ipReservationDeleteTimeout = 10 * time.Minute
)

// NewIPReservationResource returns the sas_ip_reservation resource.
func NewIPReservationResource() resource.Resource { return &IPReservationResource{} }

// IPReservationResource is an Infoblox host record (address and DNS name)
// made through the sas gateway.
type IPReservationResource struct {
	client *gatewayclient.Client
}

// IPReservationResourceModel is sas_ip_reservation's state.
type IPReservationResourceModel struct {
	ID           types.String   `tfsdk:"id"`
	Network      types.String   `tfsdk:"network"`
	Hostname     types.String   `tfsdk:"hostname"`
	DNSZone      types.String   `tfsdk:"dns_zone"`
	DNSView      types.String   `tfsdk:"dns_view"`
	MAC          types.String   `tfsdk:"mac"`
	Aliases      types.List     `tfsdk:"aliases"`
	Comment      types.String   `tfsdk:"comment"`
	ChangeTicket types.String   `tfsdk:"change_ticket"`
	IPAddress    types.String   `tfsdk:"ip_address"`
	FQDN         types.String   `tfsdk:"fqdn"`
	Ref          types.String   `tfsdk:"ref"`
	Tags         types.Map      `tfsdk:"tags"`
	OperationID  types.String   `tfsdk:"operation_id"`
	Timeouts     timeouts.Value `tfsdk:"timeouts"`
}

func (r *IPReservationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ip_reservation"
}

func (r *IPReservationResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keep := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "An IP reservation: an Infoblox host record holding the next free address of `network` and the DNS name " +
			"`hostname.dns_zone`, made through the sas gateway under your policy bundle and tagged with who asked for it. " +
			"A reservation deleted outside sas is planned for re-creation; import one by its id.\n\n" +
			"Creates happen exactly once: if an apply was interrupted (Terraform, the provider or the gateway killed) after the " +
			"gateway made the reservation but before it reached your state, the next apply adopts that same reservation — same " +
			"`dns_view` and FQDN, same owner, bundle, environment and settings — instead of failing or making a second one. A name " +
			"taken by anyone else, or with other settings, is an error on `hostname` that says whose it is and how to import it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The reservation's id in sas (`ipr-…`).",
				PlanModifiers:       keep,
			},
			"network": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "network", "reservation"),
				PlanModifiers:       replace,
				Validators:          []validator.String{stringRule(api.KindIPReservation, "network")},
			},
			"hostname": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "hostname", "reservation"),
				PlanModifiers:       replace,
				Validators:          []validator.String{stringRule(api.KindIPReservation, "hostname")},
			},
			"dns_zone": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "dns_zone", "reservation"),
				PlanModifiers:       replace,
				Validators:          []validator.String{stringRule(api.KindIPReservation, "dns_zone")},
			},
			"dns_view": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("default"),
				MarkdownDescription: fieldDescription(api.KindIPReservation, "dns_view", "reservation"),
				PlanModifiers:       replace,
				Validators:          []validator.String{stringRule(api.KindIPReservation, "dns_view")},
			},
			"mac": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "mac", ""),
				Validators:          []validator.String{stringRule(api.KindIPReservation, "mac")},
			},
			"aliases": schema.ListAttribute{
				Optional:            true,
				ElementType:         types.StringType,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "aliases", ""),
				Validators:          []validator.List{listRule(api.KindIPReservation, "aliases")},
			},
			"comment": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "comment", ""),
				Validators:          []validator.String{stringRule(api.KindIPReservation, "comment")},
			},
			"change_ticket": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: fieldDescription(api.KindIPReservation, "change_ticket", "") +
					" Sent with every create, update and delete; changing it alone changes nothing downstream.",
				Validators: []validator.String{stringRule(api.KindIPReservation, "change_ticket")},
			},
			"ip_address": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The IPv4 address Infoblox assigned.",
				PlanModifiers:       keep,
			},
			"fqdn": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The host's DNS name, `hostname.dns_zone`.",
				PlanModifiers:       keep,
			},
			"ref": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The Infoblox object reference of the host record.",
				PlanModifiers:       keep,
			},
			"tags": schema.MapAttribute{
				Computed:    true,
				ElementType: types.StringType,
				MarkdownDescription: "What the gateway recorded on the host record: `owner` (your Vault entity), `request_id`, " +
					"`bundle` and `environment`.",
				PlanModifiers: []planmodifier.Map{mapplanmodifier.UseStateForUnknown()},
			},
			"operation_id": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The gateway operation that last changed the reservation (`GET /v1/operations/{id}`). " +
					"Written to state even when waiting for it failed, so a timed-out create is tainted, not orphaned.",
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *IPReservationResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*ProviderData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected Provider Data",
			fmt.Sprintf("Expected *provider.ProviderData, got %T. This is a bug in the provider; please report it.", req.ProviderData))
		return
	}
	r.client = data.Client
}

// Create posts the reservation with a fresh idempotency key, writes the
// operation id to state, then waits for the operation.
//
// If waiting fails after the gateway accepted the request (timeout, gateway
// gone), the state written so far — operation_id, and id when known — is
// returned with the error: Terraform records the resource as tainted, so
// nothing is orphaned. Read completes such a state from the operation, and
// Delete waits for it before deleting what it made.
func (r *IPReservationResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan IPReservationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, ipReservationCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	body := api.IPReservationRequest{
		Network: plan.Network.ValueString(), Hostname: plan.Hostname.ValueString(), DNSZone: plan.DNSZone.ValueString(),
		DNSView: plan.DNSView.ValueString(), MAC: plan.MAC.ValueString(), Comment: plan.Comment.ValueString(),
		ChangeTicket: plan.ChangeTicket.ValueString(),
	}
	resp.Diagnostics.Append(plan.Aliases.ElementsAs(ctx, &body.Aliases, false)...)
	m := mutation{client: r.client, kind: api.KindIPReservation, action: api.ActionCreate, body: body, timeout: timeout,
		attempted: fmt.Sprintf("create IP reservation %s.%s in %s (POST /v1/ip-reservations)", body.Hostname, body.DNSZone, body.Network)}
	// An adopted reservation (this configuration made it before a crash
	// lost it from state) comes back as an operation already succeeded.
	op, ok := m.createAndWait(ctx, resp, path.Root("hostname"), plan.nullUnknowns, &plan)
	if !ok {
		return
	}
	plan.OperationID = types.StringValue(op.ID)
	resp.Diagnostics.Append(plan.applyAttributes(ctx, op.Result)...)
	plan.ID = types.StringValue(stringAttr(op.Result, "resource_id"))
	if op.Result["adopted"] == true {
		resp.Diagnostics.AddAttributeWarning(path.Root("hostname"), "Adopted Existing IP Reservation",
			fmt.Sprintf("%s.%s already existed as %s, made by you with the same settings, bundle and environment — typically by an "+
				"apply that was interrupted before it could save it to state — so Terraform now manages that reservation instead "+
				"of making a second one. If another resource block or workspace also manages %s, remove it from one of them "+
				"(`terraform state rm`), or destroying either would delete it for both.", body.Hostname, body.DNSZone, plan.ID.ValueString(), plan.ID.ValueString()))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *IPReservationResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state IPReservationResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if state.ID.IsNull() || state.ID.ValueString() == "" {
		// A create that was accepted but not waited for to the end.
		if !r.resolvePending(ctx, &state, &resp.Diagnostics) {
			if !resp.Diagnostics.HasError() {
				resp.State.RemoveResource(ctx)
			}
			return
		}
		if state.ID.IsNull() { // still running: keep the tainted state as it is
			resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
			return
		}
	}
	res, err := r.client.Resource(ctx, api.KindIPReservation, state.ID.ValueString())
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		tflog.Warn(ctx, "ip reservation gone; removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic(fmt.Sprintf("read IP reservation %s (GET /v1/ip-reservations/%s)", state.ID.ValueString(), state.ID.ValueString()), err))
		return
	}
	var spec api.IPReservationRequest
	if err := json.Unmarshal(res.Spec, &spec); err != nil {
		resp.Diagnostics.AddError("Unreadable IP Reservation",
			fmt.Sprintf("The gateway's record of %s has a spec the provider cannot read: %v. This is a bug; please report it.", res.ID, err))
		return
	}
	state.ID = types.StringValue(res.ID)
	// The gateway's spec is the create request with updates laid over it;
	// should a field be missing, keep what state knows, and on import fall
	// back to the name Infoblox holds.
	host, zone, _ := strings.Cut(stringAttr(res.Attributes, "fqdn"), ".")
	state.Network = specOrState(spec.Network, state.Network, "")
	state.Hostname = specOrState(spec.Hostname, state.Hostname, host)
	state.DNSZone = specOrState(spec.DNSZone, state.DNSZone, zone)
	state.DNSView = types.StringValue(firstNonEmpty(stringAttr(res.Attributes, "dns_view"), spec.DNSView, "default"))
	if res.OperationID != "" {
		state.OperationID = types.StringValue(res.OperationID)
	}
	resp.Diagnostics.Append(state.applyAttributes(ctx, res.Attributes)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// resolvePending completes a state whose create was accepted but not seen
// to the end. It returns false when nothing exists (the create failed), and
// leaves state.ID null while the operation is still running.
func (r *IPReservationResource) resolvePending(ctx context.Context, state *IPReservationResourceModel, diags *diag.Diagnostics) bool {
	id, exists := pendingCreate(ctx, r.client, state.OperationID.ValueString(), diags)
	if id != "" {
		state.ID = types.StringValue(id)
	}
	return exists
}

func (r *IPReservationResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state IPReservationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, ipReservationUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u := api.IPReservationUpdate{ChangeTicket: plan.ChangeTicket.ValueString()}
	if !plan.MAC.Equal(state.MAC) {
		u.MAC = plan.MAC.ValueStringPointer()
		if u.MAC == nil {
			u.MAC = new(string)
		}
	}
	if !plan.Comment.Equal(state.Comment) {
		u.Comment = plan.Comment.ValueStringPointer()
		if u.Comment == nil {
			u.Comment = new(string)
		}
	}
	if !plan.Aliases.Equal(state.Aliases) {
		aliases := []string{}
		resp.Diagnostics.Append(plan.Aliases.ElementsAs(ctx, &aliases, false)...)
		u.Aliases = &aliases
	}
	plan.ID = state.ID
	plan.OperationID = state.OperationID
	if u.MAC == nil && u.Comment == nil && u.Aliases == nil {
		// Only change_ticket or timeouts changed: nothing to send downstream.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	id := state.ID.ValueString()
	m := mutation{client: r.client, kind: api.KindIPReservation, action: api.ActionUpdate, id: id, body: u, timeout: timeout,
		attempted: fmt.Sprintf("update IP reservation %s (PATCH /v1/ip-reservations/%s)", id, id)}
	op, ok := m.updateAndWait(ctx, req.Private, resp.Private, &resp.Diagnostics)
	if !ok {
		return
	}
	plan.OperationID = types.StringValue(op.ID)
	resp.Diagnostics.Append(plan.applyAttributes(ctx, op.Result)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *IPReservationResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state IPReservationResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, ipReservationDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	m := mutation{client: r.client, kind: api.KindIPReservation, action: api.ActionDelete, id: state.ID.ValueString(), timeout: timeout}
	m.deleteAndWait(ctx, state.OperationID.ValueString(), state.ChangeTicket.ValueString(), req.Private, resp.Private, &resp.Diagnostics)
}

func (r *IPReservationResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// nullUnknowns makes the server-assigned values null, for the state written
// before the operation's outcome is known.
func (m *IPReservationResourceModel) nullUnknowns() {
	for _, s := range []*types.String{&m.ID, &m.IPAddress, &m.FQDN, &m.Ref, &m.OperationID} {
		if s.IsUnknown() {
			*s = types.StringNull()
		}
	}
	if m.Tags.IsUnknown() {
		m.Tags = types.MapNull(types.StringType)
	}
}

// applyAttributes copies what the downstream assigned (an operation result
// or a resource's attributes) into m. Optional inputs the server reports
// empty stay null when they were null, so an unset mac or comment never diffs.
func (m *IPReservationResourceModel) applyAttributes(ctx context.Context, attrs map[string]any) diag.Diagnostics {
	var diags diag.Diagnostics
	m.IPAddress = types.StringValue(stringAttr(attrs, "ip_address"))
	m.FQDN = types.StringValue(stringAttr(attrs, "fqdn"))
	m.Ref = types.StringValue(stringAttr(attrs, "ref"))
	if v := stringAttr(attrs, "dns_view"); v != "" {
		m.DNSView = types.StringValue(v)
	}
	m.MAC = optionalString(m.MAC, stringAttr(attrs, "mac"))
	m.Comment = optionalString(m.Comment, stringAttr(attrs, "comment"))

	var aliases []string
	if raw, ok := attrs["aliases"].([]any); ok {
		for _, a := range raw {
			if s, ok := a.(string); ok {
				aliases = append(aliases, s)
			}
		}
	}
	if len(aliases) == 0 && (m.Aliases.IsNull() || m.Aliases.IsUnknown()) {
		m.Aliases = types.ListNull(types.StringType)
	} else {
		v, d := types.ListValueFrom(ctx, types.StringType, nonNilStrings(aliases))
		diags.Append(d...)
		m.Aliases = v
	}

	tags := map[string]string{}
	if raw, ok := attrs["tags"].(map[string]any); ok {
		for _, k := range []string{"owner", "request_id", "bundle", "environment"} {
			if s, ok := raw[k].(string); ok {
				tags[k] = s
			}
		}
	}
	v, d := types.MapValueFrom(ctx, types.StringType, tags)
	diags.Append(d...)
	m.Tags = v
	return diags
}

// specOrState picks the recorded request's value, else the prior state's,
// else fallback (null when empty).
func specOrState(spec string, prior types.String, fallback string) types.String {
	switch {
	case spec != "":
		return types.StringValue(spec)
	case !prior.IsNull() && !prior.IsUnknown():
		return prior
	case fallback != "":
		return types.StringValue(fallback)
	}
	return types.StringNull()
}

func optionalString(prior types.String, got string) types.String {
	if got == "" && (prior.IsNull() || prior.IsUnknown()) {
		return types.StringNull()
	}
	return types.StringValue(got)
}

func nonNilStrings(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// ModifyPlan asks the gateway, at plan time, whether the bound policy
// bundle would allow the planned create or update, and reports each
// violation on the attribute it names. Values not known until apply skip
// the check (apply is still decided by the gateway).
func (r *IPReservationResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.client == nil || req.Plan.Raw.IsNull() {
		return // provider not configured yet, or a destroy
	}
	var plan IPReservationResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, v := range []attr.Value{plan.Network, plan.Hostname, plan.DNSZone, plan.DNSView, plan.MAC, plan.Comment, plan.ChangeTicket, plan.Aliases} {
		if v.IsUnknown() {
			return
		}
	}
	var aliases []string
	resp.Diagnostics.Append(plan.Aliases.ElementsAs(ctx, &aliases, false)...)
	if req.State.Raw.IsNull() {
		body := api.IPReservationRequest{
			Network: plan.Network.ValueString(), Hostname: plan.Hostname.ValueString(), DNSZone: plan.DNSZone.ValueString(),
			DNSView: plan.DNSView.ValueString(), MAC: plan.MAC.ValueString(), Comment: plan.Comment.ValueString(),
			Aliases: aliases, ChangeTicket: plan.ChangeTicket.ValueString(),
		}
		checkPolicyAtPlan(ctx, r.client, api.KindIPReservation, api.ActionCreate, "", body, &resp.Diagnostics)
		return
	}
	var state IPReservationResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.ID.ValueString() == "" {
		return
	}
	if plan.MAC.Equal(state.MAC) && plan.Comment.Equal(state.Comment) && plan.Aliases.Equal(state.Aliases) {
		// Nothing the gateway would be asked to change: no new operation
		// either, so operation_id keeps its value (an import, or a change of
		// change_ticket or timeouts alone, plans no update of it).
		if plan.OperationID.IsUnknown() {
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("operation_id"), state.OperationID)...)
		}
		return
	}
	body := map[string]any{"comment": plan.Comment.ValueString(), "mac": plan.MAC.ValueString(), "aliases": nonNil(aliases)}
	if t := plan.ChangeTicket.ValueString(); t != "" {
		body["change_ticket"] = t
	}
	checkPolicyAtPlan(ctx, r.client, api.KindIPReservation, api.ActionUpdate, state.ID.ValueString(), body, &resp.Diagnostics)
}
