package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

// Every resource changes things the same way, through mutation: an
// idempotency key kept in private state before the request leaves, the
// request sent (and re-sent with the same key when no answer came back),
// the operation id handed to the caller to save in state before waiting,
// the operation polled with backoff until it ends or the timeout passes,
// and every failure turned into a diagnostic that says what to do.

// privateState is the framework's private state, as requests and responses carry it.
type privateState interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// storedKey is an idempotency key with the request it was made for.
type storedKey struct {
	Key  string `json:"key"`
	Body string `json:"body"` // SHA-256 of action, id and body
}

func privateKeyName(action string) string { return "idempotency_key_" + action }

// mutation is one create, update or delete of a kind.
type mutation struct {
	client *gatewayclient.Client
	kind   string
	action string
	id     string // the resource, for update and delete
	body   any
	// keyBody, when set, is what the idempotency key is matched on instead
	// of body (a body with secrets: private state must not hash them).
	keyBody any
	timeout time.Duration
	// attempted says, for diagnostics, what was being done.
	attempted string
}

// title is the kind as diagnostics name it ("IP Reservation").
func (m mutation) title() string {
	k, ok := api.KindByName(m.kind)
	if !ok {
		return m.kind
	}
	words := strings.Fields(k.Title)
	for i, w := range words {
		if strings.ToUpper(w) != w {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

// noun is the kind in running text ("IP reservation").
func (m mutation) noun() string {
	if k, ok := api.KindByName(m.kind); ok {
		return k.Title
	}
	return m.kind
}

// key returns the idempotency key for this request: the one private state
// holds for the very same request (a retry after an interrupted apply gets
// the gateway's original operation, not a second one), else a new one,
// written to private state before the request is sent.
func (m mutation) key(ctx context.Context, prior, next privateState) (string, diag.Diagnostics) {
	var diags diag.Diagnostics
	matched := m.body
	if m.keyBody != nil {
		matched = m.keyBody
	}
	raw, err := json.Marshal(matched)
	if err != nil {
		diags.AddError("Cannot Encode Request", err.Error())
		return "", diags
	}
	sum := sha256.Sum256([]byte(m.action + "\x00" + m.id + "\x00" + string(raw)))
	want := hex.EncodeToString(sum[:])
	name := privateKeyName(m.action)
	if prior != nil {
		b, d := prior.GetKey(ctx, name)
		diags.Append(d...)
		var held storedKey
		if len(b) > 0 && json.Unmarshal(b, &held) == nil && held.Body == want && held.Key != "" {
			tflog.Debug(ctx, "reusing the idempotency key of an earlier, unfinished attempt", map[string]any{"action": m.action})
			return held.Key, diags
		}
	}
	key, err := gatewayclient.NewIdempotencyKey()
	if err != nil {
		diags.AddError("Cannot "+titleCase(m.action)+" "+m.title(), err.Error())
		return "", diags
	}
	b, _ := json.Marshal(storedKey{Key: key, Body: want})
	diags.Append(next.SetKey(ctx, name, b)...)
	return key, diags
}

// forget drops the action's key once its operation has ended.
func forgetKey(ctx context.Context, next privateState, action string) diag.Diagnostics {
	return next.SetKey(ctx, privateKeyName(action), nil)
}

// submit sends the request, and sends it again with the same key when no
// answer came back (the gateway may have acted): a repeated key and body
// get the original operation, so this never acts twice.
func (m mutation) submit(ctx context.Context, key string) (*api.Operation, error) {
	wait := gatewayclient.PollMin
	for {
		op, err := m.client.Submit(ctx, m.kind, m.action, m.id, m.body, key)
		var pe *gatewayclient.ProblemError
		if err == nil || errors.As(err, &pe) {
			return op, err
		}
		tflog.Warn(ctx, "no answer from the gateway; retrying with the same idempotency key", map[string]any{"action": m.action, "error": err.Error()})
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(wait*2, gatewayclient.PollMax)
	}
}

// wait polls op until it ends; the diagnostics say why it did not succeed.
func (m mutation) wait(ctx context.Context, op *api.Operation) (*api.Operation, diag.Diagnostics) {
	var diags diag.Diagnostics
	op, err := m.client.WaitOperation(ctx, op)
	if err != nil {
		diags.Append(m.waitDiagnostic(op, err))
		return op, diags
	}
	if op.State != api.OperationSucceeded {
		diags.Append(m.endedDiagnostic(op))
	}
	return op, diags
}

// endedDiagnostic reports an operation that ended without succeeding.
func (m mutation) endedDiagnostic(op *api.Operation) diag.Diagnostic {
	var b strings.Builder
	fmt.Fprintf(&b, "While trying to %s, gateway operation %s ended %s after %d attempt(s)", m.attempted, op.ID, op.State, op.Attempts)
	if op.Error != "" {
		fmt.Fprintf(&b, ":\n\n%s", op.Error)
	}
	if op.RequestID != "" {
		fmt.Fprintf(&b, "\n\nRequest id: %s", op.RequestID)
	}
	b.WriteString("\n\nThe gateway releases what a failed operation allocated itself. Fix the cause above and apply again; " +
		"quote the request id to your platform team if it is not clear.")
	return diag.NewErrorDiagnostic(m.title()+" Operation "+titleCase(op.State), b.String())
}

// waitDiagnostic reports that waiting for an accepted operation did not end.
func (m mutation) waitDiagnostic(op *api.Operation, err error) diag.Diagnostic {
	id, st := "", "unknown"
	if op != nil {
		id, st = op.ID, op.State
		if op.Progress != "" {
			st += " (" + op.Progress + ")"
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return diag.NewErrorDiagnostic("Timed Out Waiting for "+m.title(),
			fmt.Sprintf("While trying to %s, the gateway accepted the request as operation %s, but it was still %s after %s.\n\n"+
				"The operation id is saved in state: Terraform keeps the %s (tainted, for a create) and the next plan "+
				"picks up the operation's outcome; the gateway goes on with it meanwhile. Raise `timeouts.%s` if it "+
				"takes longer, check it with GET /v1/operations/%s, or cancel it with POST /v1/operations/%s/cancel.",
				m.attempted, id, st, m.timeout, m.noun(), m.action, id, id))
	}
	return diag.NewErrorDiagnostic("Lost Track of "+m.title()+" Operation",
		fmt.Sprintf("While trying to %s, the gateway accepted the request as operation %s (last seen %s), but polling it failed:\n\n%v\n\n"+
			"The operation id is saved in state; the next plan picks up its outcome.", m.attempted, id, st, err))
}

// pendingCreate says what became of a create the gateway accepted as
// operation opID but that was not seen to the end (its state holds only the
// operation id): exists is false when nothing was made (the create failed,
// was cancelled or is unknown); id is "" while it still runs.
func pendingCreate(ctx context.Context, client *gatewayclient.Client, opID string, diags *diag.Diagnostics) (id string, exists bool) {
	if opID == "" {
		return "", false
	}
	op, err := client.Operation(ctx, opID)
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		return "", false
	}
	if err != nil {
		diags.Append(gatewayDiagnostic("read operation "+opID, err))
		return "", false
	}
	switch op.State {
	case api.OperationSucceeded:
		return stringAttr(op.Result, "resource_id"), true
	case api.OperationFailed, api.OperationCancelled:
		return "", false
	}
	return "", true
}

// finishPendingCreate waits for a half-seen create before its resource is
// deleted: the id of what it made, or "" when it made nothing.
func (m mutation) finishPendingCreate(ctx context.Context, opID string, diags *diag.Diagnostics) string {
	if opID == "" {
		return ""
	}
	op, err := m.client.WaitOperation(ctx, &api.Operation{ID: opID, State: api.OperationPending})
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		return ""
	}
	if err != nil {
		diags.Append(m.waitDiagnostic(op, err))
		return ""
	}
	if op.State != api.OperationSucceeded {
		return "" // a failed create left nothing behind
	}
	return stringAttr(op.Result, "resource_id")
}

// createAndWait is a resource's Create: the key in private state, the
// request sent, then — before waiting — the state (model, after
// beforeState has cleared what only the outcome knows) saved, so a timeout
// taints the resource instead of orphaning it; a create that failed (the
// gateway compensated) is removed from state. A natural-key conflict is an
// error on conflictAttr. It returns the succeeded operation.
func (m mutation) createAndWait(ctx context.Context, resp *resource.CreateResponse, conflictAttr path.Path, beforeState func(), model any) (*api.Operation, bool) {
	key, diags := m.key(ctx, nil, resp.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return nil, false
	}
	op, err := m.submit(ctx, key)
	if gatewayclient.IsProblem(err, api.ProblemNaturalKeyConflict) {
		d := gatewayDiagnostic(m.attempted, err)
		resp.Diagnostics.AddAttributeError(conflictAttr, d.Summary(), d.Detail())
		return nil, false
	}
	if err != nil {
		resp.Diagnostics.Append(gatewayDiagnostic(m.attempted, err))
		return nil, false
	}
	tflog.Info(ctx, m.noun()+" accepted", map[string]any{"operation_id": op.ID, "request_id": op.RequestID, "adopted": op.Result["adopted"] == true})
	beforeState()
	resp.Diagnostics.Append(resp.State.Set(ctx, model)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("operation_id"), op.ID)...)
	op, diags = m.wait(ctx, op)
	if op != nil && gatewayclient.OperationDone(op) && op.State != api.OperationSucceeded {
		resp.State.RemoveResource(ctx)
	}
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return nil, false
	}
	resp.Diagnostics.Append(forgetKey(ctx, resp.Private, api.ActionCreate)...)
	return op, true
}

// updateAndWait is a resource's Update: key, request, wait.
func (m mutation) updateAndWait(ctx context.Context, prior, next privateState, diags *diag.Diagnostics) (*api.Operation, bool) {
	key, d := m.key(ctx, prior, next)
	diags.Append(d...)
	if diags.HasError() {
		return nil, false
	}
	op, err := m.submit(ctx, key)
	if err != nil {
		diags.Append(gatewayDiagnostic(m.attempted, err))
		return nil, false
	}
	op, d = m.wait(ctx, op)
	diags.Append(d...)
	if diags.HasError() {
		return nil, false
	}
	diags.Append(forgetKey(ctx, next, api.ActionUpdate)...)
	return op, true
}

// deleteAndWait is a resource's Delete: a half-seen create (no id yet) is
// waited for first, then what it made is deleted; already gone is done.
func (m mutation) deleteAndWait(ctx context.Context, createOpID, changeTicket string, prior, next privateState, diags *diag.Diagnostics) {
	if m.id == "" {
		pending := m
		pending.attempted = "finish the create before deleting what it made"
		if m.id = pending.finishPendingCreate(ctx, createOpID, diags); m.id == "" {
			return
		}
	}
	if changeTicket != "" {
		m.body = api.DeleteRequest{ChangeTicket: changeTicket}
	}
	m.attempted = fmt.Sprintf("delete %s %s (DELETE /v1/%s/%s)", m.noun(), m.id, api.KindPaths[m.kind], m.id)
	key, d := m.key(ctx, prior, next)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	op, err := m.submit(ctx, key)
	if gatewayclient.IsProblem(err, api.ProblemNotFound) {
		return // already gone
	}
	if err != nil {
		diags.Append(gatewayDiagnostic(m.attempted, err))
		return
	}
	_, d = m.wait(ctx, op)
	diags.Append(d...)
}
