package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

var (
	_ resource.Resource                = &ModuleRunResource{}
	_ resource.ResourceWithConfigure   = &ModuleRunResource{}
	_ resource.ResourceWithImportState = &ModuleRunResource{}
	_ resource.ResourceWithModifyPlan  = &ModuleRunResource{}
)

const moduleRunTimeout = 30 * time.Minute

// NewModuleRunResource returns the sas_module_run resource.
func NewModuleRunResource() resource.Resource { return &ModuleRunResource{} }

// ModuleRunResource is a run of an approved Terraform module by the gateway.
type ModuleRunResource struct {
	client *gatewayclient.Client
}

// ModuleRunResourceModel is sas_module_run's state; SecretInputs is write-only.
type ModuleRunResourceModel struct {
	ID                      types.String   `tfsdk:"id"`
	Name                    types.String   `tfsdk:"name"`
	Module                  types.String   `tfsdk:"module"`
	Version                 types.String   `tfsdk:"version"`
	Inputs                  types.Map      `tfsdk:"inputs"`
	SecretInputs            types.Map      `tfsdk:"secret_inputs"`
	SecretInputsVersion     types.Int64    `tfsdk:"secret_inputs_version"`
	ChangeTicket            types.String   `tfsdk:"change_ticket"`
	Outputs                 types.Map      `tfsdk:"outputs"`
	SensitiveOutputs        types.Map      `tfsdk:"sensitive_outputs"`
	SecretInputFingerprints types.Map      `tfsdk:"secret_input_fingerprints"`
	Plan                    types.Map      `tfsdk:"plan"`
	OperationID             types.String   `tfsdk:"operation_id"`
	Timeouts                timeouts.Value `tfsdk:"timeouts"`
}

func (r *ModuleRunResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_module_run"
}

func (r *ModuleRunResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	const kind = api.KindModuleRun
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A run of an approved Terraform module, by the sas gateway: the operator's catalog pins each module " +
			"version's source; the gateway plans it in a private working directory with no network, puts the **plan** to your " +
			"policy bundle (resource types, counts, no destroy or replace), and applies exactly that plan — with a Vault sub-token " +
			"that lives for one step, never with your credentials. Changing `version` or `inputs` plans, judges and applies again; " +
			"destroy is planned and judged too.\n\nSecret inputs go in the write-only `secret_inputs` (Terraform/OpenTofu ≥ 1.11); " +
			"change `secret_inputs_version` to send new values.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The run's id in sas (`mr-…`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"name": schema.StringAttribute{Required: true, PlanModifiers: replace, MarkdownDescription: fieldDescription(kind, "name", "run"),
				Validators: []validator.String{stringRule(kind, "name")}},
			"module": schema.StringAttribute{Required: true, PlanModifiers: replace, MarkdownDescription: fieldDescription(kind, "module", "run"),
				Validators: []validator.String{stringRule(kind, "module")}},
			"version": schema.StringAttribute{Required: true, MarkdownDescription: fieldDescription(kind, "version", ""),
				Validators: []validator.String{stringRule(kind, "version")}},
			"inputs": schema.MapAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: fieldDescription(kind, "inputs", "") + " Values are strings; Terraform converts them to each variable's type.",
				Validators:          []validator.Map{mapRule(kind, "inputs")}},
			"secret_inputs": schema.MapAttribute{Optional: true, Sensitive: true, WriteOnly: true, ElementType: types.StringType,
				MarkdownDescription: tableField(kind, "secret_inputs").Description + " Write-only: never in a plan or in state. Requires Terraform or OpenTofu 1.11 or later.",
				Validators:          []validator.Map{mapRule(kind, "secret_inputs")}},
			"secret_inputs_version": schema.Int64Attribute{Optional: true,
				MarkdownDescription: "Any number; change it to run the module again with the current `secret_inputs`."},
			"change_ticket": schema.StringAttribute{Optional: true, Validators: []validator.String{stringRule(kind, "change_ticket")},
				MarkdownDescription: fieldDescription(kind, "change_ticket", "") + " Sent with every create, update and delete."},
			"outputs": schema.MapAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The module's outputs that are not sensitive (strings as they are; other values as JSON)."},
			"sensitive_outputs": schema.MapAttribute{Computed: true, Sensitive: true, ElementType: types.StringType,
				MarkdownDescription: "The module's sensitive outputs (sensitive here too; returned only to the run's owner)."},
			"secret_input_fingerprints": schema.MapAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "A keyed fingerprint of each secret input's value, by input name: `hmac-sha256:` and an HMAC-SHA256 " +
					"under a key only the gateway holds (its audit HMAC key). It changes when the value changes, so it shows that a " +
					"rotation took; without the key nobody can test a guess at the secret against it, as they could against a bare " +
					"hash, so it is not sensitive. Empty when the run has no secret inputs, or the gateway reports no fingerprints."},
			"plan": schema.MapAttribute{Computed: true, ElementType: types.Int64Type,
				MarkdownDescription: "What the last applied plan did: `add`, `change`, `destroy`."},
			"operation_id": schema.StringAttribute{Computed: true,
				MarkdownDescription: "The gateway operation that last ran the module; saved before waiting, so a timed-out run is tainted, not orphaned."},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *ModuleRunResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// inputs are the configured inputs and, from the configuration (never
// the plan), the secret inputs.
func (m *ModuleRunResourceModel) inputs(ctx context.Context, secrets types.Map, diags *diag.Diagnostics) (map[string]any, map[string]string) {
	var in map[string]string
	if !m.Inputs.IsNull() && !m.Inputs.IsUnknown() {
		diags.Append(m.Inputs.ElementsAs(ctx, &in, false)...)
	}
	var out map[string]any
	for k, v := range in {
		if out == nil {
			out = map[string]any{}
		}
		out[k] = v
	}
	var sec map[string]string
	if !secrets.IsNull() && !secrets.IsUnknown() {
		diags.Append(secrets.ElementsAs(ctx, &sec, false)...)
	}
	return out, sec
}

// keyed replaces secret values by the version for the idempotency key.
func (m *ModuleRunResourceModel) keyed(secrets map[string]string) map[string]string {
	if secrets == nil {
		return nil
	}
	out := map[string]string{}
	for k := range secrets {
		out[k] = fmt.Sprintf("version %d", m.SecretInputsVersion.ValueInt64())
	}
	return out
}

// update is the body of an update to m (and of its dry run at plan): both
// maps sent whole. {} is kept apart from "not sent" by the gateway and runs
// the module without them, so inputs removed from the configuration are
// removed from the run; secret inputs are never kept after a run, so
// leaving them out would keep nothing.
func (m *ModuleRunResourceModel) update(inputs map[string]any, secrets map[string]string) api.ModuleRunUpdate {
	if inputs == nil {
		inputs = map[string]any{}
	}
	if secrets == nil {
		secrets = map[string]string{}
	}
	return api.ModuleRunUpdate{Version: m.Version.ValueString(), Inputs: inputs, SecretInputs: secrets, ChangeTicket: m.ChangeTicket.ValueString()}
}

func (r *ModuleRunResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan ModuleRunResourceModel
	var secrets types.Map
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_inputs"), &secrets)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, moduleRunTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inputs, sec := plan.inputs(ctx, secrets, &resp.Diagnostics)
	body := api.ModuleRunRequest{Name: plan.Name.ValueString(), Module: plan.Module.ValueString(), Version: plan.Version.ValueString(),
		Inputs: inputs, SecretInputs: sec, ChangeTicket: plan.ChangeTicket.ValueString()}
	keyBody := body
	keyBody.SecretInputs = plan.keyed(sec)
	m := mutation{client: r.client, kind: api.KindModuleRun, action: api.ActionCreate, body: body, keyBody: keyBody, timeout: timeout,
		attempted: fmt.Sprintf("run module %s %s as %s (POST /v1/module-runs)", body.Module, body.Version, body.Name)}
	op, ok := m.createAndWait(ctx, resp, path.Root("name"), func() {
		plan.SecretInputs = types.MapNull(types.StringType)
		plan.nullUnknowns()
	}, &plan)
	if !ok {
		return
	}
	plan.ID, plan.OperationID = types.StringValue(stringAttr(op.Result, "resource_id")), types.StringValue(op.ID)
	plan.applyResult(ctx, op.Result, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *ModuleRunResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state ModuleRunResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if state.ID.ValueString() == "" {
		id, exists := pendingCreate(ctx, r.client, state.OperationID.ValueString(), &resp.Diagnostics)
		switch {
		case resp.Diagnostics.HasError():
			return
		case !exists:
			resp.State.RemoveResource(ctx)
			return
		case id == "":
			resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
			return
		}
		state.ID = types.StringValue(id)
	}
	res, err := r.client.Resource(ctx, api.KindModuleRun, state.ID.ValueString())
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic(fmt.Sprintf("read module run %s (GET /v1/module-runs/%s)", state.ID.ValueString(), state.ID.ValueString()), err))
		return
	}
	var spec api.ModuleRunRequest
	if err := json.Unmarshal(res.Spec, &spec); err != nil {
		resp.Diagnostics.AddError("Unreadable Module Run", fmt.Sprintf("The gateway's record of %s cannot be read: %v. This is a bug; please report it.", res.ID, err))
		return
	}
	state.ID, state.Name, state.Module, state.Version = types.StringValue(res.ID), types.StringValue(spec.Name), types.StringValue(spec.Module), types.StringValue(spec.Version)
	if len(spec.Inputs) > 0 || !state.Inputs.IsNull() {
		in := map[string]string{}
		for k, v := range spec.Inputs {
			in[k] = jsonText(v)
		}
		state.Inputs = from(ctx, &resp.Diagnostics, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, in) }).(types.Map)
	}
	state.SecretInputs = types.MapNull(types.StringType)
	if res.OperationID != "" {
		state.OperationID = types.StringValue(res.OperationID)
	}
	state.applyResult(ctx, res.Attributes, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *ModuleRunResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state ModuleRunResourceModel
	var secrets types.Map
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_inputs"), &secrets)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, moduleRunTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	plan.ID, plan.SecretInputs = state.ID, types.MapNull(types.StringType)
	inputs, sec := plan.inputs(ctx, secrets, &resp.Diagnostics)
	u := plan.update(inputs, sec)
	keyBody := u
	keyBody.SecretInputs = plan.keyed(u.SecretInputs)
	id := state.ID.ValueString()
	m := mutation{client: r.client, kind: api.KindModuleRun, action: api.ActionUpdate, id: id, body: u, keyBody: keyBody, timeout: timeout,
		attempted: fmt.Sprintf("run module run %s again (PATCH /v1/module-runs/%s)", id, id)}
	op, ok := m.updateAndWait(ctx, req.Private, resp.Private, &resp.Diagnostics)
	if !ok {
		return
	}
	plan.OperationID = types.StringValue(op.ID)
	plan.applyResult(ctx, op.Result, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *ModuleRunResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state ModuleRunResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, moduleRunTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m := mutation{client: r.client, kind: api.KindModuleRun, action: api.ActionDelete, id: state.ID.ValueString(), timeout: timeout}
	m.deleteAndWait(ctx, state.OperationID.ValueString(), state.ChangeTicket.ValueString(), req.Private, resp.Private, &resp.Diagnostics)
}

func (r *ModuleRunResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// ModifyPlan: a module or version the bundle does not allow fails at plan,
// on its attribute. (The module's own plan is judged at apply, when the
// gateway has made it.)
func (r *ModuleRunResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.client == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan ModuleRunResourceModel
	var secrets types.Map
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("secret_inputs"), &secrets)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, v := range []attr.Value{plan.Name, plan.Module, plan.Version, plan.Inputs, plan.ChangeTicket, secrets} {
		if v.IsUnknown() {
			return
		}
	}
	// The dry run carries the secret inputs as the run will (the gateway
	// checks them against the module's variables and seals them before the
	// policy or the audit trail sees them; a dry run stores nothing).
	inputs, sec := plan.inputs(ctx, secrets, &resp.Diagnostics)
	if req.State.Raw.IsNull() {
		checkPolicyAtPlan(ctx, r.client, api.KindModuleRun, api.ActionCreate, "", api.ModuleRunRequest{Name: plan.Name.ValueString(),
			Module: plan.Module.ValueString(), Version: plan.Version.ValueString(), Inputs: inputs, SecretInputs: sec,
			ChangeTicket: plan.ChangeTicket.ValueString()}, &resp.Diagnostics)
		return
	}
	var state ModuleRunResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.ID.ValueString() == "" {
		return
	}
	if plan.Version.Equal(state.Version) && plan.Inputs.Equal(state.Inputs) && plan.SecretInputsVersion.Equal(state.SecretInputsVersion) {
		// Only change_ticket or timeouts: nothing runs, the outcome stays.
		for _, a := range []string{"outputs", "sensitive_outputs", "secret_input_fingerprints", "plan", "operation_id"} {
			var v attr.Value
			resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root(a), &v)...)
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(a), v)...)
		}
		return
	}
	checkPolicyAtPlan(ctx, r.client, api.KindModuleRun, api.ActionUpdate, state.ID.ValueString(), plan.update(inputs, sec), &resp.Diagnostics)
}

func (m *ModuleRunResourceModel) nullUnknowns() {
	for _, s := range []*types.String{&m.ID, &m.OperationID} {
		if s.IsUnknown() {
			*s = types.StringNull()
		}
	}
	for _, mp := range []*types.Map{&m.Outputs, &m.SensitiveOutputs, &m.SecretInputFingerprints} {
		if mp.IsUnknown() {
			*mp = types.MapNull(types.StringType)
		}
	}
	if m.Plan.IsUnknown() {
		m.Plan = types.MapNull(types.Int64Type)
	}
}

// applyResult copies a run's outcome (outputs, secret input fingerprints
// and plan summary) into m.
func (m *ModuleRunResourceModel) applyResult(ctx context.Context, attrs map[string]any, diags *diag.Diagnostics) {
	outs, sensitive := map[string]string{}, map[string]string{}
	raw, _ := attrs["outputs"].(map[string]any)
	for k, v := range raw {
		o, _ := v.(map[string]any)
		if s, _ := o["sensitive"].(bool); s {
			sensitive[k] = jsonText(o["value"])
		} else {
			outs[k] = jsonText(o["value"])
		}
	}
	m.Outputs = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, outs) }).(types.Map)
	m.SensitiveOutputs = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.StringType, sensitive) }).(types.Map)
	fingerprints := map[string]string{}
	fps, _ := attrs["secret_input_fingerprints"].(map[string]any)
	for k, v := range fps {
		fingerprints[k], _ = v.(string)
	}
	m.SecretInputFingerprints = from(ctx, diags, func() (attr.Value, diag.Diagnostics) {
		return types.MapValueFrom(ctx, types.StringType, fingerprints)
	}).(types.Map)
	summary := map[string]int64{}
	if p, ok := attrs["plan"].(map[string]any); ok {
		for _, k := range []string{"add", "change", "destroy"} {
			n, _ := p[k].(float64)
			summary[k] = int64(n)
		}
	}
	m.Plan = from(ctx, diags, func() (attr.Value, diag.Diagnostics) { return types.MapValueFrom(ctx, types.Int64Type, summary) }).(types.Map)
}

// jsonText is a value as an output or input string: strings as they are,
// anything else as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}
