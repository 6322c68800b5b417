package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
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
	_ resource.Resource                   = &CalmAppResource{}
	_ resource.ResourceWithConfigure      = &CalmAppResource{}
	_ resource.ResourceWithImportState    = &CalmAppResource{}
	_ resource.ResourceWithModifyPlan     = &CalmAppResource{}
	_ resource.ResourceWithValidateConfig = &CalmAppResource{}
)

// Default timeouts: a Calm launch commonly takes 10–30 minutes.
const (
	calmAppCreateTimeout = 45 * time.Minute
	calmAppUpdateTimeout = 15 * time.Minute
	calmAppDeleteTimeout = 30 * time.Minute
)

// NewCalmAppResource returns the sas_calm_app resource.
func NewCalmAppResource() resource.Resource { return &CalmAppResource{} }

// CalmAppResource is a Nutanix Calm application launched through the gateway.
type CalmAppResource struct {
	client *gatewayclient.Client
}

// CalmAppResourceModel is sas_calm_app's state. SecretVariables is
// write-only: Terraform never stores it, in state or in a plan.
type CalmAppResourceModel struct {
	ID                     types.String   `tfsdk:"id"`
	Name                   types.String   `tfsdk:"name"`
	Project                types.String   `tfsdk:"project"`
	Blueprint              types.String   `tfsdk:"blueprint"`
	Profile                types.String   `tfsdk:"profile"`
	Network                types.String   `tfsdk:"network"`
	IPReservation          types.String   `tfsdk:"ip_reservation"`
	Size                   types.Object   `tfsdk:"size"`
	Variables              types.Map      `tfsdk:"variables"`
	SecretVariables        types.Map      `tfsdk:"secret_variables"`
	SecretVariablesVersion types.Int64    `tfsdk:"secret_variables_version"`
	PowerState             types.String   `tfsdk:"power_state"`
	ChangeTicket           types.String   `tfsdk:"change_ticket"`
	AppUUID                types.String   `tfsdk:"app_uuid"`
	State                  types.String   `tfsdk:"state"`
	VMs                    types.List     `tfsdk:"vms"`
	Addresses              types.List     `tfsdk:"addresses"`
	Tags                   types.Map      `tfsdk:"tags"`
	OperationID            types.String   `tfsdk:"operation_id"`
	Timeouts               timeouts.Value `tfsdk:"timeouts"`
}

type calmAppSize struct {
	VCPUs     types.Int64 `tfsdk:"vcpus"`
	MemoryGiB types.Int64 `tfsdk:"memory_gib"`
	DiskGiB   types.Int64 `tfsdk:"disk_gib"`
}

var (
	calmSizeTypes = map[string]attr.Type{"vcpus": types.Int64Type, "memory_gib": types.Int64Type, "disk_gib": types.Int64Type}
	calmVMType    = types.ObjectType{AttrTypes: map[string]attr.Type{
		"name": types.StringType, "uuid": types.StringType, "addresses": types.ListType{ElemType: types.StringType},
		"power_state": types.StringType, "vcpus": types.Int64Type, "memory_gib": types.Int64Type, "disk_gib": types.Int64Type,
	}}
)

func (r *CalmAppResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_calm_app"
}

func (r *CalmAppResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	const kind = api.KindCalmApp
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keep := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	str := func(name string, required bool, mods []planmodifier.String, extra ...validator.String) schema.StringAttribute {
		return schema.StringAttribute{Required: required, Optional: !required, PlanModifiers: mods,
			MarkdownDescription: fieldDescription(kind, name, "app"),
			Validators:          append([]validator.String{stringRule(kind, name)}, extra...)}
	}
	size := func(name string) schema.Int64Attribute {
		return schema.Int64Attribute{Required: true, MarkdownDescription: tableField(kind, "size/"+name).Description,
			Validators: []validator.Int64{intRange(kind, "size/"+name)}}
	}
	profile := str("profile", false, replace)
	profile.Computed, profile.Default = true, stringdefault.StaticString(api.DefaultCalmProfile)
	power := str("power_state", false, nil)
	power.Computed, power.Default = true, stringdefault.StaticString(api.CalmRunning)
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Nutanix Calm (Self-Service) application launched from a blueprint of your bundle's catalog, " +
			"through the sas gateway, with a sub-token that lives only for each step. The launch is recorded before anything " +
			"waits on it: a timeout, a crash of Terraform or a restart of the gateway resumes the same launch and never starts a " +
			"second one; an interrupted apply adopts the app on the next apply. `destroy` returns once Calm says the app is deleted.\n\n" +
			"Secret runtime variables go in the write-only `secret_variables` (Terraform 1.11 or later, OpenTofu 1.11 or later): " +
			"they are never in a plan or in state, and the gateway hands them to Calm through Vault only. Change " +
			"`secret_variables_version` to launch again with new values.",
		Attributes: map[string]schema.Attribute{
			"id":        schema.StringAttribute{Computed: true, PlanModifiers: keep, MarkdownDescription: "The app's id in sas (`calm-…`)."},
			"name":      str("name", true, replace),
			"project":   str("project", true, replace),
			"blueprint": str("blueprint", true, replace),
			"profile":   profile,
			"network": str("network", false, replace,
				stringvalidator.ExactlyOneOf(path.MatchRoot("network"), path.MatchRoot("ip_reservation"))),
			"ip_reservation": str("ip_reservation", false, replace),
			"size": schema.SingleNestedAttribute{
				Required: true, MarkdownDescription: fieldDescription(kind, "size", "app"),
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				Attributes:    map[string]schema.Attribute{"vcpus": size("vcpus"), "memory_gib": size("memory_gib"), "disk_gib": size("disk_gib")},
			},
			"variables": schema.MapAttribute{
				Optional: true, ElementType: types.StringType, MarkdownDescription: fieldDescription(kind, "variables", "app"),
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
				Validators:    []validator.Map{mapRule(kind, "variables")},
			},
			"secret_variables": schema.MapAttribute{
				Optional: true, Sensitive: true, WriteOnly: true, ElementType: types.StringType,
				MarkdownDescription: tableField(kind, "secret_variables").Description +
					" Write-only: sent with the launch, never stored in a plan or in state. Requires Terraform or OpenTofu 1.11 or later.",
				Validators: []validator.Map{mapRule(kind, "secret_variables")},
			},
			"secret_variables_version": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "Any number; change it to launch the app again with the current `secret_variables` " +
					"(Terraform cannot see a change of a write-only value). Changing it replaces the app.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"power_state": power,
			"change_ticket": schema.StringAttribute{
				Optional: true, Validators: []validator.String{stringRule(kind, "change_ticket")},
				MarkdownDescription: fieldDescription(kind, "change_ticket", "") + " Sent with every create, update and delete.",
			},
			"app_uuid": schema.StringAttribute{Computed: true, PlanModifiers: keep, MarkdownDescription: "The app's uuid in Calm."},
			"state": schema.StringAttribute{Computed: true, PlanModifiers: keep,
				MarkdownDescription: "The app's state in Calm (`running`, `stopped`, …)."},
			"vms": schema.ListAttribute{Computed: true, ElementType: calmVMType,
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "The app's VMs: `name`, `uuid`, `addresses`, `power_state` (`ON`/`OFF`), `vcpus`, `memory_gib`, `disk_gib`."},
			"addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType,
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "Every VM's IPv4 addresses, in VM order."},
			"tags": schema.MapAttribute{Computed: true, ElementType: types.StringType,
				PlanModifiers:       []planmodifier.Map{mapplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "What the gateway recorded on the app: `owner` (your Vault entity), `request_id`, `bundle`, `environment`."},
			"operation_id": schema.StringAttribute{Computed: true,
				MarkdownDescription: "The gateway operation that last changed the app. Written to state before waiting, so a " +
					"timed-out launch is tainted, not orphaned."},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *CalmAppResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig refuses a variable set both in the clear and as a secret.
func (r *CalmAppResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var vars, secrets map[string]types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("variables"), &vars)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_variables"), &secrets)...)
	for k := range secrets {
		if _, ok := vars[k]; ok {
			resp.Diagnostics.AddAttributeError(path.Root("secret_variables").AtMapKey(k), "Variable Both Secret and Not",
				fmt.Sprintf("%s is in variables and in secret_variables; a runtime variable is secret or not. Keep it in one of them.", k))
		}
	}
}

// request is the create body the plan describes; secrets come from the
// configuration (write-only values are never in the plan).
func (m *CalmAppResourceModel) request(ctx context.Context, secrets types.Map, diags *diag.Diagnostics) api.CalmAppRequest {
	body := api.CalmAppRequest{
		Name: m.Name.ValueString(), Project: m.Project.ValueString(), Blueprint: m.Blueprint.ValueString(),
		Profile: m.Profile.ValueString(), Network: m.Network.ValueString(), IPReservation: m.IPReservation.ValueString(),
		PowerState: m.PowerState.ValueString(), ChangeTicket: m.ChangeTicket.ValueString(),
	}
	var size calmAppSize
	diags.Append(m.Size.As(ctx, &size, objectAsOptions)...)
	body.Size = api.MachineSize{VCPUs: int(size.VCPUs.ValueInt64()), MemoryGiB: int(size.MemoryGiB.ValueInt64()), DiskGiB: int(size.DiskGiB.ValueInt64())}
	if !m.Variables.IsNull() {
		diags.Append(m.Variables.ElementsAs(ctx, &body.Variables, false)...)
	}
	if !secrets.IsNull() && !secrets.IsUnknown() {
		diags.Append(secrets.ElementsAs(ctx, &body.SecretVariables, false)...)
	}
	return body
}

// keyBody is what the idempotency key is derived from: the request with
// each secret value replaced by the version (private state is stored with
// the state, and must not carry a hash of a secret).
func (m *CalmAppResourceModel) keyBody(body api.CalmAppRequest) any {
	redacted := body
	redacted.SecretVariables = nil
	for k := range body.SecretVariables {
		if redacted.SecretVariables == nil {
			redacted.SecretVariables = map[string]string{}
		}
		redacted.SecretVariables[k] = fmt.Sprintf("version %d", m.SecretVariablesVersion.ValueInt64())
	}
	return redacted
}

func (r *CalmAppResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan CalmAppResourceModel
	var secrets types.Map
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_variables"), &secrets)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, calmAppCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	body := plan.request(ctx, secrets, &resp.Diagnostics)
	m := mutation{client: r.client, kind: api.KindCalmApp, action: api.ActionCreate, body: body, keyBody: plan.keyBody(body), timeout: timeout,
		attempted: fmt.Sprintf("launch Calm app %s from blueprint %s in project %s (POST /v1/calm-apps)", body.Name, body.Blueprint, body.Project)}
	op, ok := m.createAndWait(ctx, resp, path.Root("name"), func() {
		plan.SecretVariables = types.MapNull(types.StringType) // write-only: never in state
		plan.nullUnknowns()
	}, &plan)
	if !ok {
		return
	}
	plan.OperationID = types.StringValue(op.ID)
	plan.ID = types.StringValue(stringAttr(op.Result, "resource_id"))
	plan.applyAttributes(ctx, op.Result, &resp.Diagnostics)
	if op.Result["adopted"] == true {
		resp.Diagnostics.AddAttributeWarning(path.Root("name"), "Adopted Existing Calm App",
			fmt.Sprintf("Calm app %s in project %s already existed as %s, launched by you with the same settings, bundle and "+
				"environment — typically by an apply interrupted before it could save it — so Terraform now manages it instead "+
				"of launching a second one.", body.Name, body.Project, plan.ID.ValueString()))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *CalmAppResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state CalmAppResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if state.ID.ValueString() == "" {
		// A launch accepted but not waited for to the end.
		id, exists := pendingCreate(ctx, r.client, state.OperationID.ValueString(), &resp.Diagnostics)
		switch {
		case resp.Diagnostics.HasError():
			return
		case !exists:
			resp.State.RemoveResource(ctx)
			return
		case id == "": // still launching: keep the tainted state
			resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
			return
		}
		state.ID = types.StringValue(id)
	}
	res, err := r.client.Resource(ctx, api.KindCalmApp, state.ID.ValueString())
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		tflog.Warn(ctx, "calm app gone; removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic(fmt.Sprintf("read Calm app %s (GET /v1/calm-apps/%s)", state.ID.ValueString(), state.ID.ValueString()), err))
		return
	}
	var spec api.CalmAppRequest
	if err := json.Unmarshal(res.Spec, &spec); err != nil {
		resp.Diagnostics.AddError("Unreadable Calm App",
			fmt.Sprintf("The gateway's record of %s has a spec the provider cannot read: %v. This is a bug; please report it.", res.ID, err))
		return
	}
	state.ID = types.StringValue(res.ID)
	// What the app was launched with is the gateway's record (import
	// starts from it); where it is now comes from Calm.
	state.Name = types.StringValue(spec.Name)
	state.Project = types.StringValue(spec.Project)
	state.Blueprint = types.StringValue(spec.Blueprint)
	state.Profile = types.StringValue(firstNonEmpty(spec.Profile, api.DefaultCalmProfile))
	state.Network = optionalString(state.Network, spec.Network)
	state.IPReservation = optionalString(state.IPReservation, spec.IPReservation)
	state.Size = from(ctx, &resp.Diagnostics, func() (attr.Value, diag.Diagnostics) {
		return types.ObjectValue(calmSizeTypes, map[string]attr.Value{"vcpus": types.Int64Value(int64(spec.Size.VCPUs)),
			"memory_gib": types.Int64Value(int64(spec.Size.MemoryGiB)), "disk_gib": types.Int64Value(int64(spec.Size.DiskGiB))})
	}).(types.Object)
	if len(spec.Variables) > 0 || !state.Variables.IsNull() {
		state.Variables = from(ctx, &resp.Diagnostics, func() (attr.Value, diag.Diagnostics) {
			return types.MapValueFrom(ctx, types.StringType, spec.Variables)
		}).(types.Map)
	}
	state.SecretVariables = types.MapNull(types.StringType)
	if res.OperationID != "" {
		state.OperationID = types.StringValue(res.OperationID)
	}
	state.applyAttributes(ctx, res.Attributes, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *CalmAppResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state CalmAppResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, calmAppUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	plan.ID, plan.OperationID, plan.SecretVariables = state.ID, state.OperationID, types.MapNull(types.StringType)
	if plan.PowerState.Equal(state.PowerState) {
		// Only change_ticket or timeouts changed: nothing to send downstream.
		plan.copyComputed(state)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	id := state.ID.ValueString()
	u := api.CalmAppUpdate{PowerState: plan.PowerState.ValueStringPointer(), ChangeTicket: plan.ChangeTicket.ValueString()}
	m := mutation{client: r.client, kind: api.KindCalmApp, action: api.ActionUpdate, id: id, body: u, timeout: timeout,
		attempted: fmt.Sprintf("change Calm app %s to %s (PATCH /v1/calm-apps/%s)", id, plan.PowerState.ValueString(), id)}
	op, ok := m.updateAndWait(ctx, req.Private, resp.Private, &resp.Diagnostics)
	if !ok {
		return
	}
	plan.OperationID = types.StringValue(op.ID)
	plan.applyAttributes(ctx, op.Result, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *CalmAppResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state CalmAppResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, calmAppDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m := mutation{client: r.client, kind: api.KindCalmApp, action: api.ActionDelete, id: state.ID.ValueString(), timeout: timeout}
	m.deleteAndWait(ctx, state.OperationID.ValueString(), state.ChangeTicket.ValueString(), req.Private, resp.Private, &resp.Diagnostics)
}

func (r *CalmAppResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// ModifyPlan asks the gateway at plan time whether the bound bundle would
// allow the launch (or the power change), and reports each violation on
// its attribute: a prod blueprint under the sandbox bundle fails at plan
// on `blueprint`. Secrets are not sent to the dry run: only their names.
func (r *CalmAppResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.client == nil || req.Plan.Raw.IsNull() {
		return // provider not configured yet, or a destroy
	}
	var plan CalmAppResourceModel
	var secrets types.Map
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_variables"), &secrets)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, v := range []attr.Value{plan.Name, plan.Project, plan.Blueprint, plan.Profile, plan.Network, plan.IPReservation,
		plan.Size, plan.Variables, plan.PowerState, plan.ChangeTicket, secrets} {
		if v.IsUnknown() {
			return // known only at apply; the gateway decides then
		}
	}
	if req.State.Raw.IsNull() {
		body := plan.request(ctx, secrets, &resp.Diagnostics)
		for k := range body.SecretVariables {
			body.SecretVariables[k] = "(write-only)"
		}
		checkPolicyAtPlan(ctx, r.client, api.KindCalmApp, api.ActionCreate, "", body, &resp.Diagnostics)
		return
	}
	var state CalmAppResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.ID.ValueString() == "" || plan.PowerState.Equal(state.PowerState) {
		if !resp.Diagnostics.HasError() && plan.OperationID.IsUnknown() && plan.PowerState.Equal(state.PowerState) {
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("operation_id"), state.OperationID)...)
		}
		return
	}
	// Calm's actions change the app's state and its VMs' power.
	for _, a := range []string{"state", "vms", "operation_id"} {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(a), unknownOf(a))...)
	}
	body := map[string]any{"power_state": plan.PowerState.ValueString()}
	if t := plan.ChangeTicket.ValueString(); t != "" {
		body["change_ticket"] = t
	}
	checkPolicyAtPlan(ctx, r.client, api.KindCalmApp, api.ActionUpdate, state.ID.ValueString(), body, &resp.Diagnostics)
}

// nullUnknowns makes the values only the launch knows null, for the state
// written before its outcome is known.
func (m *CalmAppResourceModel) nullUnknowns() {
	for _, s := range []*types.String{&m.ID, &m.AppUUID, &m.State, &m.OperationID} {
		if s.IsUnknown() {
			*s = types.StringNull()
		}
	}
	if m.VMs.IsUnknown() {
		m.VMs = types.ListNull(calmVMType)
	}
	if m.Addresses.IsUnknown() {
		m.Addresses = types.ListNull(types.StringType)
	}
	if m.Tags.IsUnknown() {
		m.Tags = types.MapNull(types.StringType)
	}
}

// copyComputed keeps what Calm reported last.
func (m *CalmAppResourceModel) copyComputed(prior CalmAppResourceModel) {
	m.AppUUID, m.State, m.VMs, m.Addresses, m.Tags = prior.AppUUID, prior.State, prior.VMs, prior.Addresses, prior.Tags
}

// applyAttributes copies what Calm reported (an operation result or the
// resource's attributes) into m.
func (m *CalmAppResourceModel) applyAttributes(ctx context.Context, attrs map[string]any, diags *diag.Diagnostics) {
	m.AppUUID = types.StringValue(stringAttr(attrs, "app_uuid"))
	m.State = types.StringValue(stringAttr(attrs, "state"))
	if p := stringAttr(attrs, "power_state"); p != "" {
		m.PowerState = types.StringValue(p)
	}
	vms := []attr.Value{}
	addresses := []string{}
	raw, _ := attrs["vms"].([]any)
	for _, v := range raw {
		vm, _ := v.(map[string]any)
		var addrs []string
		list, _ := vm["addresses"].([]any)
		for _, a := range list {
			if s, ok := a.(string); ok {
				addrs = append(addrs, s)
			}
		}
		addresses = append(addresses, addrs...)
		num := func(k string) attr.Value { n, _ := vm[k].(float64); return types.Int64Value(int64(n)) }
		addrList := from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
			return types.ListValueFrom(ctx, types.StringType, nonNil(addrs))
		})
		vms = append(vms, from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
			return types.ObjectValue(calmVMType.AttrTypes, map[string]attr.Value{
				"name": types.StringValue(stringAttr(vm, "name")), "uuid": types.StringValue(stringAttr(vm, "uuid")),
				"addresses": addrList, "power_state": types.StringValue(stringAttr(vm, "power_state")),
				"vcpus": num("vcpus"), "memory_gib": num("memory_gib"), "disk_gib": num("disk_gib"),
			})
		}))
	}
	m.VMs = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.ListValue(calmVMType, vms) }).(types.List)
	m.Addresses = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.ListValueFrom(ctx, types.StringType, addresses)
	}).(types.List)
	tags := map[string]string{}
	if raw, ok := attrs["tags"].(map[string]any); ok {
		for _, k := range []string{"owner", "request_id", "bundle", "environment"} {
			if s, ok := raw[k].(string); ok {
				tags[k] = s
			}
		}
	}
	m.Tags = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, tags) }).(types.Map)
}

// unknownOf is the unknown value of a computed attribute a power change
// recomputes.
func unknownOf(attribute string) attr.Value {
	if attribute == "vms" {
		return types.ListUnknown(calmVMType)
	}
	return types.StringUnknown()
}
