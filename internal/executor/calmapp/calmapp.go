// Package calmapp is the executor of the calm_app kind: a Nutanix Calm
// (Self-Service) application launched from a catalog blueprint, followed
// from launch request to running app, tagged with who and what made it.
//
// Every downstream handle is checkpointed on the operation before anything
// waits on it — first the intent to launch, then the launch's request id,
// then the app's uuid — so a timeout, a crash of Terraform or a restart of
// the gateway resumes the same launch and never starts a second one.
//
// An app given a network (not an IP reservation) launches on an address
// sas first holds for it in Infoblox (address.go), so Calm never picks one
// Infoblox could hand to someone else; the address is released once the
// app is gone.
//
// The same handles let a create that will not succeed (cancelled, failed,
// past its deadline) be undone (compensate.go): the launch it started is
// followed until it resolves, and its app deleted until Calm says deleted,
// before the operation may end.
package calmapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

var _ executor.Executor = (*Executor)(nil)

// The runtime variables sas sets on a launch: the contract a blueprint in
// a sas catalog follows (size, network, a fixed first address, the request
// that made it).
const (
	VarVCPUs     = "VCPUS"
	VarMemoryGiB = "MEMORY_GIB"
	VarDiskGiB   = "DISK_GIB"
	VarNetwork   = "NETWORK"
	VarIPAddress = "IP_ADDRESS"
	VarRequestID = "SAS_REQUEST_ID"
)

// LaunchGrace is how long after a launch was sent with no answer recorded
// (the step died mid-call) the executor looks for its app before deciding
// the launch never reached Calm. Calm creates the app record within
// seconds of accepting a launch.
var LaunchGrace = 2 * time.Minute

// Executor launches, powers and deletes Calm apps.
type Executor struct {
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// Sleep waits d within a step, or until ctx ends (tests move a fake
	// clock with it); nil sleeps on the wall clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// checkpoint is what a step leaves for the next: Calm's own handles.
type checkpoint struct {
	// LaunchSentAt is set before simple_launch is called.
	LaunchSentAt  time.Time `json:"launch_sent_at,omitempty"`
	BlueprintUUID string    `json:"blueprint_uuid,omitempty"`
	LaunchRequest string    `json:"launch_request_id,omitempty"`
	AppUUID       string    `json:"app_uuid,omitempty"`
	// Action is the system action under way ("action_stop") and its runlog.
	Action       string `json:"action,omitempty"`
	ActionRunlog string `json:"action_runlog_uuid,omitempty"`
	// DeleteSent: the app's delete was accepted; wait for deleted.
	DeleteSent bool `json:"delete_sent,omitempty"`
	// CompensatingSince is when compensation first ran: its bound
	// (CompensationBound) counts from here, across steps and restarts.
	CompensatingSince time.Time `json:"compensating_since,omitempty"`
	// The address an app launched on a network takes (address.go):
	// AddressAsked is set before Infoblox is asked to hold one; HostRef
	// (the host holding it), IPAddress and Network (the CIDR it was taken
	// from, the launch's NETWORK) right after, before the launch.
	AddressAsked bool   `json:"address_asked,omitempty"`
	HostRef      string `json:"infoblox_ref,omitempty"`
	IPAddress    string `json:"ip_address,omitempty"`
	Network      string `json:"network_cidr,omitempty"`
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) client(ctx context.Context, j executor.Job) (*calm.Client, error) {
	creds, err := j.Credentials(ctx, "calm")
	if err != nil {
		return nil, err
	}
	if creds.URL == "" {
		return nil, executor.Permanent(fmt.Errorf("sas/%s/calm in Vault has no url", j.Operation.Environment))
	}
	return calm.New(calm.Config{BaseURL: creds.URL, Username: creds.Username, Password: creds.Password,
		CACertPEM: []byte(creds.CACert), UserAgent: "sas-gateway"})
}

func loadCheckpoint(j executor.Job) (checkpoint, error) {
	var cp checkpoint
	if len(j.Checkpoint) > 0 {
		if err := json.Unmarshal(j.Checkpoint, &cp); err != nil {
			return cp, executor.Permanent(fmt.Errorf("operation %s checkpoint: %w", j.Operation.ID, err))
		}
	}
	return cp, nil
}

func (e *Executor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	cp, err := loadCheckpoint(j)
	if err != nil {
		return executor.Result{}, err
	}
	c, err := e.client(ctx, j)
	if err != nil {
		return executor.Result{}, err
	}
	switch j.Operation.Action {
	case api.ActionCreate:
		return e.create(ctx, c, j, cp)
	case api.ActionUpdate:
		return e.update(ctx, c, j, cp)
	case api.ActionDelete:
		return e.delete(ctx, c, j, cp)
	}
	return executor.Result{}, executor.Permanent(fmt.Errorf("calm_app cannot %s", j.Operation.Action))
}

func request(j executor.Job) (api.CalmAppRequest, error) {
	var req api.CalmAppRequest
	if err := json.Unmarshal(j.Operation.Request, &req); err != nil {
		return req, executor.Permanent(fmt.Errorf("operation %s request: %w", j.Operation.ID, err))
	}
	if req.Profile == "" {
		req.Profile = api.DefaultCalmProfile
	}
	return req, nil
}

func (e *Executor) create(ctx context.Context, c *calm.Client, j executor.Job, cp checkpoint) (executor.Result, error) {
	req, err := request(j)
	if err != nil {
		return executor.Result{}, err
	}
	op := j.Operation
	if cp.AppUUID == "" && cp.LaunchRequest == "" {
		// Nothing recorded of a launch: one may still have reached Calm
		// (the step died mid-call, or before this gateway existed): an app
		// of this name that carries this request's tag is that launch.
		app, err := c.AppByName(ctx, req.Project, req.Name)
		switch {
		case err == nil:
			if t := ParseTags(app.Description); t.RequestID != op.RequestID {
				return executor.Result{}, executor.Permanent(takenName(app, t, op.Owner, req))
			}
			cp.AppUUID = app.UUID
			if err := j.Save(ctx, cp); err != nil {
				return executor.Result{}, err
			}
		case !calm.IsNotFound(err):
			return executor.Result{}, classify(err)
		case !cp.LaunchSentAt.IsZero() && e.now().Sub(cp.LaunchSentAt) < LaunchGrace:
			// Sent, unanswered, no app yet: give Calm the time it takes to
			// show one before believing the launch was lost.
			return executor.Result{}, executor.Wait(5*time.Second, cp, "waiting to see whether an interrupted launch reached Calm")
		default:
			return e.launch(ctx, c, j, req, cp)
		}
	}
	if cp.AppUUID == "" {
		st, err := c.PendingLaunch(ctx, cp.BlueprintUUID, cp.LaunchRequest)
		if err != nil {
			return executor.Result{}, classify(err)
		}
		switch {
		case st.Failed():
			msg := st.Message
			if msg == "" {
				msg = "Calm gave no reason"
			}
			return executor.Result{}, executor.Permanent(fmt.Errorf("Calm launch %s of blueprint %s failed: %s", cp.LaunchRequest, req.Blueprint, msg))
		case st.Running() || st.AppUUID == "":
			return executor.Result{}, executor.Wait(pollAfter(e.now().Sub(cp.LaunchSentAt)), cp, "launch "+cp.LaunchRequest+" running")
		}
		cp.AppUUID = st.AppUUID
		if err := j.Save(ctx, cp); err != nil {
			return executor.Result{}, err
		}
	}
	app, err := c.App(ctx, cp.AppUUID)
	if calm.IsNotFound(err) || (err == nil && app.Deleted()) {
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm app %s (%s) was deleted outside sas while it was being launched", req.Name, cp.AppUUID))
	}
	if err != nil {
		return executor.Result{}, classify(err)
	}
	switch app.State {
	case "running", "stopped":
	case "error", "failure", "timeout":
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm app %s (%s) ended in state %s: %s", app.Name, app.UUID, app.State, e.reason(ctx, c, app.UUID)))
	default:
		return executor.Result{}, executor.Wait(pollAfter(e.now().Sub(cp.LaunchSentAt)), cp, "app "+app.UUID+" "+app.State)
	}
	if req.PowerState == api.CalmStopped || cp.Action != "" {
		if done, err := e.power(ctx, c, j, &cp, app, req.PowerState); !done || err != nil {
			return executor.Result{}, err
		}
		if app, err = c.App(ctx, cp.AppUUID); err != nil {
			return executor.Result{}, classify(err)
		}
	}
	attrs := attributes(app, cp.LaunchRequest)
	if cp.HostRef != "" {
		attrs["ip_address"], attrs["infoblox_ref"] = cp.IPAddress, cp.HostRef
	}
	return executor.Result{ResourceID: resourceID(op.ID), Attributes: attrs}, nil
}

// launch sends simple_launch, recording the intent before the call and
// Calm's request id right after it. An app on a network first gets its
// address held in Infoblox (holdAddress), and launches with it.
func (e *Executor) launch(ctx context.Context, c *calm.Client, j executor.Job, req api.CalmAppRequest, cp checkpoint) (executor.Result, error) {
	op := j.Operation
	bp, err := c.BlueprintByName(ctx, req.Project, req.Blueprint)
	if calm.IsNotFound(err) {
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm has no blueprint %s in project %s", req.Blueprint, req.Project))
	}
	if err != nil {
		return executor.Result{}, classify(err)
	}
	if !bp.Active() {
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm blueprint %s in project %s is %s; only an ACTIVE blueprint launches", req.Blueprint, req.Project, bp.State))
	}
	if holdsAddress(req) {
		if err := e.holdAddress(ctx, j, req, &cp); err != nil {
			return executor.Result{}, err
		}
	}
	vars, err := e.variables(ctx, j, req, cp)
	if err != nil {
		return executor.Result{}, err
	}
	cp.BlueprintUUID, cp.LaunchSentAt = bp.UUID, e.now()
	if err := j.Save(ctx, cp); err != nil {
		return executor.Result{}, err
	}
	id, err := c.SimpleLaunch(ctx, bp.UUID, calm.LaunchSpec{
		AppName: req.Name, ProfileName: req.Profile, Variables: vars,
		AppDescription: Tags{Owner: op.Owner, RequestID: op.RequestID, Bundle: op.Bundle, Environment: op.Environment}.Description(),
	})
	if err != nil {
		if calm.IsTransient(err) {
			return executor.Result{}, err // resumed through the checkpoint: look first, then relaunch
		}
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm refused the launch of %s: %w", req.Blueprint, err))
	}
	cp.LaunchRequest = id
	if err := j.Save(ctx, cp); err != nil {
		return executor.Result{}, err
	}
	// Calm holds the secret values now; nothing else needs them.
	if j.ForgetSecrets != nil {
		if err := j.ForgetSecrets(ctx); err != nil {
			return executor.Result{}, err
		}
	}
	return executor.Result{}, executor.Wait(pollAfter(0), cp, "launch "+id+" sent")
}

// variables are the launch's runtime variables: the request's, its size,
// its network and first address (the IP reservation's, or the one held in
// Infoblox for it: cp), its secrets (read from Vault with this step's
// sub-token), and the request id.
func (e *Executor) variables(ctx context.Context, j executor.Job, req api.CalmAppRequest, cp checkpoint) ([]calm.Variable, error) {
	set := map[string]string{}
	for k, v := range req.Variables {
		set[k] = v
	}
	// The variables sas sets itself say what was approved (size, address,
	// request tag): a caller's variable, secret or not, never replaces one.
	for _, k := range []string{VarVCPUs, VarMemoryGiB, VarDiskGiB, VarNetwork, VarIPAddress, VarRequestID} {
		_, clear := req.Variables[k]
		_, secret := req.SecretVariables[k]
		if clear || secret {
			return nil, executor.Permanent(fmt.Errorf("variable %s is set by sas from the approved request; a launch cannot set it", k))
		}
	}
	set[VarVCPUs] = strconv.Itoa(req.Size.VCPUs)
	set[VarMemoryGiB] = strconv.Itoa(req.Size.MemoryGiB)
	set[VarDiskGiB] = strconv.Itoa(req.Size.DiskGiB)
	set[VarRequestID] = j.Operation.RequestID
	switch {
	case req.IPReservation != "":
		// The reservation as admission found it, and its network as the
		// approving bundle revision resolved it (it cannot be deleted while
		// this create is unfinished: admission refuses that, in-use).
		ipr, ok := j.Operation.Approval.References["ip_reservation"]
		if !ok || ipr.ID != req.IPReservation || ipr.NetworkCIDR == "" {
			return nil, executor.Permanent(fmt.Errorf("operation %s carries no approved ip_reservation %s (admitted before this gateway recorded approvals); send the create again",
				j.Operation.ID, req.IPReservation))
		}
		addr, _ := ipr.Attributes["ip_address"].(string)
		cidr, err := ipv4Network(ipr.NetworkCIDR)
		if err != nil {
			return nil, err
		}
		set[VarNetwork], set[VarIPAddress] = cidr, addr
	default:
		if cp.IPAddress == "" || cp.Network == "" {
			return nil, fmt.Errorf("no address of network %s is held in Infoblox for app %s yet", req.Network, req.Name)
		}
		set[VarNetwork], set[VarIPAddress] = cp.Network, cp.IPAddress
	}
	if len(req.SecretVariables) > 0 {
		secrets, err := j.Secrets(ctx)
		if errors.Is(err, vault.ErrRequestSecretsGone) {
			return nil, executor.Permanent(errors.New("the request's secret variables are no longer in Vault (an earlier step handed them to Calm, or they were never stored); send the create again"))
		}
		if err != nil {
			return nil, err
		}
		for k := range req.SecretVariables {
			v, ok := secrets["secret_variables"][k]
			if !ok {
				return nil, executor.Permanent(fmt.Errorf("secret variable %s is missing from the request's secrets in Vault", k))
			}
			set[k] = v
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	vars := make([]calm.Variable, len(names))
	for i, k := range names {
		vars[i] = calm.Variable{Name: k, Value: set[k]}
	}
	return vars, nil
}

func (e *Executor) cidr(op operations.Work, network string) (string, error) {
	cidr, err := executor.ApprovedNetwork(op, network)
	if err != nil {
		return "", err
	}
	return ipv4Network(cidr)
}

func ipv4Network(cidr string) (string, error) {
	if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
		return "", executor.Permanent(fmt.Errorf("network %q is not an IPv4 network", cidr))
	}
	return cidr, nil
}

func (e *Executor) update(ctx context.Context, c *calm.Client, j executor.Job, cp checkpoint) (executor.Result, error) {
	var u api.CalmAppUpdate
	if err := json.Unmarshal(j.Operation.Request, &u); err != nil {
		return executor.Result{}, executor.Permanent(fmt.Errorf("operation %s request: %w", j.Operation.ID, err))
	}
	uuid, _ := j.Resource.Attributes["app_uuid"].(string)
	cp.AppUUID = uuid
	app, err := c.App(ctx, uuid)
	if calm.IsNotFound(err) || (err == nil && app.Deleted()) {
		return executor.Result{}, executor.Permanent(fmt.Errorf("Calm app %s was deleted outside sas; delete and re-create the resource", uuid))
	}
	if err != nil {
		return executor.Result{}, classify(err)
	}
	want := ""
	if u.PowerState != nil {
		want = *u.PowerState
	}
	if done, err := e.power(ctx, c, j, &cp, app, want); !done || err != nil {
		return executor.Result{}, err
	}
	if app, err = c.App(ctx, uuid); err != nil {
		return executor.Result{}, classify(err)
	}
	launch, _ := j.Resource.Attributes["launch_request_id"].(string)
	attrs := attributes(app, launch)
	keepAddress(attrs, j.Resource.Attributes)
	return executor.Result{ResourceID: j.Resource.ID, Attributes: attrs}, nil
}

// power brings app to the power state want ("" leaves it) with Calm's
// system actions, one at a time, checkpointing each action's runlog; done
// once the app is there.
func (e *Executor) power(ctx context.Context, c *calm.Client, j executor.Job, cp *checkpoint, app *calm.App, want string) (bool, error) {
	if cp.Action != "" {
		switch app.State {
		case "starting", "stopping", "restarting", "busy", "updating":
			return false, executor.Wait(2*time.Second, *cp, app.State)
		case "error":
			return false, executor.Permanent(fmt.Errorf("Calm %s of app %s failed: %s", cp.Action, app.UUID, e.reason(ctx, c, app.UUID)))
		}
		cp.Action, cp.ActionRunlog = "", ""
	}
	action := ""
	switch {
	case want == api.CalmStopped && app.State == "running":
		action = calm.ActionStop
	case want == api.CalmRunning && app.State == "stopped":
		action = calm.ActionStart
	case want == "" || app.State == want:
		return true, nil
	default:
		return false, executor.Wait(2*time.Second, *cp, "app "+app.State)
	}
	runlog, err := c.RunAction(ctx, app.UUID, action)
	if err != nil {
		return false, classify(err)
	}
	cp.Action, cp.ActionRunlog = action, runlog
	if err := j.Save(ctx, *cp); err != nil {
		return false, err
	}
	return false, executor.Wait(time.Second, *cp, action+" sent")
}

// delete deletes the app, waits until Calm says deleted, then releases
// the address sas held for it in Infoblox (none for an app on an IP
// reservation: the reservation keeps it).
func (e *Executor) delete(ctx context.Context, c *calm.Client, j executor.Job, cp checkpoint) (executor.Result, error) {
	uuid, _ := j.Resource.Attributes["app_uuid"].(string)
	done := executor.Result{ResourceID: j.Resource.ID, Deleted: true}
	app, err := c.App(ctx, uuid)
	if calm.IsNotFound(err) || (err == nil && app.Deleted()) {
		if ref, _ := j.Resource.Attributes["infoblox_ref"].(string); ref != "" {
			requestID := ""
			if tags, ok := j.Resource.Attributes["tags"].(map[string]any); ok {
				requestID, _ = tags["request_id"].(string)
			}
			if _, err := e.releaseAddress(ctx, j, requestID, j.Resource.Owner, ref); err != nil {
				return executor.Result{}, executor.InfobloxError(err)
			}
		}
		return done, nil
	}
	if err != nil {
		return executor.Result{}, classify(err)
	}
	if !cp.DeleteSent && app.State != "deleting" {
		if _, err := c.DeleteApp(ctx, uuid, false); err != nil && !calm.IsNotFound(err) {
			return executor.Result{}, classify(err)
		}
		cp.AppUUID, cp.DeleteSent = uuid, true
		if err := j.Save(ctx, cp); err != nil {
			return executor.Result{}, err
		}
	}
	// destroy returns only once Calm says deleted, not when it accepted the delete.
	return executor.Result{}, executor.Wait(2*time.Second, cp, "app "+uuid+" deleting")
}

// Read fetches the app and reports drift against what sas recorded.
func (e *Executor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	c, err := e.client(ctx, j)
	if err != nil {
		return nil, nil, false, err
	}
	uuid, _ := j.Resource.Attributes["app_uuid"].(string)
	app, err := c.App(ctx, uuid)
	if calm.IsNotFound(err) || (err == nil && app.Deleted()) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, classify(err)
	}
	launch, _ := j.Resource.Attributes["launch_request_id"].(string)
	attrs := attributes(app, launch)
	keepAddress(attrs, j.Resource.Attributes)
	var drift []api.Drift
	if ref, _ := attrs["infoblox_ref"].(string); ref != "" {
		d, err := e.addressDrift(ctx, j, attrs)
		if err != nil {
			return nil, nil, false, err
		}
		drift = append(drift, d...)
	}
	want := Tags{Owner: j.Resource.Owner, Bundle: j.Resource.Bundle, Environment: j.Resource.Environment}
	if tags, ok := j.Resource.Attributes["tags"].(map[string]any); ok {
		want.RequestID, _ = tags["request_id"].(string)
	}
	got := ParseTags(app.Description)
	for field, pair := range map[string][2]string{
		"tags/owner": {want.Owner, got.Owner}, "tags/request_id": {want.RequestID, got.RequestID},
		"tags/bundle": {want.Bundle, got.Bundle}, "tags/environment": {want.Environment, got.Environment},
	} {
		if pair[0] != pair[1] {
			drift = append(drift, api.Drift{Field: field, Want: pair[0], Got: pair[1]})
		}
	}
	for _, field := range []string{"state", "power_state"} {
		if w, _ := j.Resource.Attributes[field].(string); w != attrs[field] {
			drift = append(drift, api.Drift{Field: field, Want: w, Got: attrs[field].(string)})
		}
	}
	sort.Slice(drift, func(a, b int) bool { return drift[a].Field < drift[b].Field })
	return attrs, drift, false, nil
}

func resourceID(opID string) string { return "calm-" + strings.TrimPrefix(opID, "op-") }

// attributes are what sas records and returns of an app.
func attributes(app *calm.App, launchRequest string) map[string]any {
	vms := make([]any, 0, len(app.VMs))
	addresses := []any{}
	for _, vm := range app.VMs {
		addrs := make([]any, len(vm.Addresses))
		for i, a := range vm.Addresses {
			addrs[i] = a
			addresses = append(addresses, a)
		}
		vms = append(vms, map[string]any{"name": vm.Name, "uuid": vm.UUID, "addresses": addrs, "power_state": vm.PowerState,
			"vcpus": vm.VCPUs, "memory_gib": vm.MemoryGiB, "disk_gib": vm.DiskGiB})
	}
	t := ParseTags(app.Description)
	return map[string]any{
		"app_uuid": app.UUID, "name": app.Name, "project": app.Project, "blueprint": app.BlueprintName, "profile": app.Profile,
		"state": app.State, "power_state": powerState(app.State), "vms": vms, "addresses": addresses, "launch_request_id": launchRequest,
		"tags": map[string]any{"owner": t.Owner, "request_id": t.RequestID, "bundle": t.Bundle, "environment": t.Environment, "managed": t.Managed},
	}
}

// powerState is the app's state as the resource's power_state says it.
func powerState(state string) string {
	switch state {
	case "stopped", "stopping":
		return api.CalmStopped
	}
	return api.CalmRunning
}

// reason is the last failed runlog's output of an app, or what is known.
func (e *Executor) reason(ctx context.Context, c *calm.Client, appUUID string) string {
	logs, err := c.Runlogs(ctx, appUUID, "")
	if err != nil {
		return "its runlogs could not be read: " + err.Error()
	}
	for i := len(logs) - 1; i >= 0; i-- {
		if logs[i].Failed() {
			if out, err := c.RunlogOutput(ctx, appUUID, logs[i].UUID); err == nil && out != "" {
				return out
			}
			return logs[i].Action + " " + strings.ToLower(logs[i].State)
		}
	}
	return "Calm recorded no failed runlog"
}

// takenName says whose the app holding req's name is — to its owner only.
func takenName(app *calm.App, t Tags, caller string, req api.CalmAppRequest) error {
	switch {
	case !t.Managed:
		return fmt.Errorf("Calm already holds an app named %s in project %s (%s, %s); it was made outside sas, and sas does not take over "+
			"apps it did not make: choose another name, or have the app deleted in Calm", req.Name, req.Project, app.UUID, app.State)
	case t.Owner != caller:
		return fmt.Errorf("Calm already holds an app named %s in project %s and it belongs to another caller; choose another name", req.Name, req.Project)
	}
	return fmt.Errorf("Calm already holds app %s in project %s (%s), made by sas for you under bundle %s in %s (request %s), "+
		"but sas holds no record of it, so it is not adopted: have it deleted in Calm, or choose another name",
		req.Name, req.Project, app.UUID, t.Bundle, t.Environment, t.RequestID)
}

// classify keeps Calm's message and decides whether retrying helps; a
// Retry-After is honoured.
func classify(err error) error {
	if !calm.IsTransient(err) {
		return executor.Permanent(err)
	}
	var apiErr *calm.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return &executor.RetryAfterError{Err: err, After: apiErr.RetryAfter}
	}
	return err
}

// pollAfter spaces checks of a long launch: often at first, then every
// 15 seconds (a real launch takes 10–30 minutes).
func pollAfter(elapsed time.Duration) time.Duration {
	switch {
	case elapsed < 30*time.Second:
		return time.Second
	case elapsed < 5*time.Minute:
		return 5 * time.Second
	}
	return 15 * time.Second
}
