package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// shiftedClock is the wall clock moved forward by what Jump added: the
// simulator runs in real time, and a jump plays out at once whatever Calm
// would still have done later (a pending launch resolving into an app).
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) Jump(d time.Duration) { c.offset.Add(int64(d)) }

// taggedApps are the apps Calm holds (deleted ones included) that carry
// one of requestIDs, in their description's tag or their SAS_REQUEST_ID.
func taggedApps(sim *simcalm.Server, requestIDs map[string]string) []simcalm.AppSnapshot {
	var out []simcalm.AppSnapshot
	for _, a := range sim.Apps() {
		if requestIDs[calmapp.ParseTags(a.Description).RequestID] != "" || requestIDs[a.Variables[calmapp.VarRequestID]] != "" {
			out = append(out, a)
		}
	}
	return out
}

// A Calm app create cancelled at any moment — right after its 202, while
// its launch is pending (Calm does not list the app yet), as the launch
// resolves, while the app provisions — ends cancelled only once nothing
// it made is left: compensation waits for the launch it started to
// resolve, deletes the app until Calm says deleted, then releases the
// address it held for the app in Infoblox. Calm is then
// watched for longer than its launch, provisioning and delete take, and
// moved an hour ahead, and never shows a live app tagged with one of
// these requests. The audit trail holds each cancel and its compensation.
func TestCalmCancelledCreateLeavesNoApp(t *testing.T) {
	const launchTime, provisionTime, deleteTime = 2 * time.Second, 4 * time.Second, 500 * time.Millisecond
	ib := env.StartInfoblox(t)
	clock := &shiftedClock{}
	sim := env.StartCalm(t, func(o *devstack.CalmOptions) {
		o.LaunchTime, o.ProvisionTime, o.DeleteTime, o.Clock = launchTime, provisionTime, deleteTime, clock.Now
	})
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "second-thoughts", Bundles: []string{sbx}})

	type cancelCase struct {
		name     string
		delay    time.Duration // after the create's 202
		op       api.Operation
		accepted time.Time
		cancelID string // the cancel request's X-Request-Id
	}
	cases := []*cancelCase{
		{name: "cancel-at-0s-a"}, {name: "cancel-at-0s-b"}, {name: "cancel-at-0s-c"},
		{name: "cancel-at-300ms", delay: 300 * time.Millisecond},
		{name: "cancel-at-1s", delay: time.Second},
		{name: "cancel-at-2s", delay: launchTime}, // as the launch resolves
		{name: "cancel-at-3s", delay: 3 * time.Second},
	}
	cancel := func(c *cancelCase) {
		a := do(t, gw, call{method: "POST", path: "/v1/operations/" + c.op.ID + "/cancel", token: tok})
		var got api.Operation
		if err := json.Unmarshal(a.body, &got); err != nil || a.status != http.StatusAccepted || !got.CancelRequested {
			t.Fatalf("%s: cancel %s after %s: %d %s", c.name, c.op.ID, time.Since(c.accepted).Round(time.Millisecond), a.status, a.body)
		}
		c.cancelID = a.header.Get(api.HeaderRequestID)
	}
	requestIDs := map[string]string{} // request id -> case
	for _, c := range cases {
		c.op = decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
			body: fmt.Sprintf(`{"name":%q,"project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`, c.name)}))
		c.accepted = time.Now()
		requestIDs[c.op.RequestID] = c.name
		if c.delay == 0 {
			cancel(c) // immediately after the 202
		}
	}
	for _, c := range cases { // in order of delay
		if c.delay > 0 {
			time.Sleep(time.Until(c.accepted.Add(c.delay)))
			cancel(c)
		}
	}
	lastCancel := time.Now()

	for _, c := range cases {
		done := waitOperation(t, gw, tok, c.op.ID)
		// At the moment it is reported cancelled, whatever it made is deleted.
		for _, a := range taggedApps(sim, map[string]string{c.op.RequestID: c.name}) {
			if a.State != "deleted" {
				t.Errorf("%s: operation %s ended %s while Calm holds its app %s (%s) %s", c.name, c.op.ID, done.State, a.Name, a.UUID, a.State)
			}
		}
		if left := hostsTagged(ib, map[string]bool{c.op.RequestID: true}); len(left) != 0 {
			t.Errorf("%s: operation %s ended %s while Infoblox holds its address: %+v", c.name, c.op.ID, done.State, left)
		}
		if done.State != api.OperationCancelled {
			t.Errorf("%s: operation %s ended %s (%s), want cancelled", c.name, c.op.ID, done.State, done.Error)
		}
		asked := false
		for _, r := range auditOf(t, gw, c.cancelID) {
			asked = asked || (r.Action == api.ActionCancel && r.Outcome == "cancel requested" && r.TargetID == c.op.ID && r.Decision == audit.DecisionAllow)
		}
		if !asked {
			t.Errorf("%s: the audit trail does not show the cancel request %s of operation %s", c.name, c.cancelID, c.op.ID)
		}
		compensated := false
		for _, r := range auditOf(t, gw, c.op.RequestID) {
			compensated = compensated || (r.TargetID == c.op.ID && r.Outcome == "operation cancelled; compensation ran")
		}
		if !compensated {
			t.Errorf("%s: the audit trail does not show operation %s cancelled after compensation", c.name, c.op.ID)
		}
	}

	// Watch Calm for longer than a launch sent at the last cancel takes to
	// show its app, provision it and delete it; then jump an hour ahead.
	live := func(when string) {
		for _, a := range taggedApps(sim, requestIDs) {
			if a.State != "deleted" {
				t.Fatalf("%s: Calm holds app %s (%s) %s, tagged with the cancelled request of %s", when, a.Name, a.UUID, a.State,
					requestIDs[calmapp.ParseTags(a.Description).RequestID])
			}
		}
	}
	for until := lastCancel.Add(launchTime + provisionTime + deleteTime + 2*time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		live(fmt.Sprintf("%s after the last cancel", time.Since(lastCancel).Round(100*time.Millisecond)))
	}
	clock.Jump(time.Hour)
	live("an hour later (simulated)")

	// The cancels raced real launches: the later ones reached Calm (their
	// apps are there, deleted), or this test proved nothing.
	made := taggedApps(sim, requestIDs)
	for _, a := range made {
		t.Logf("%s: app %s %s", requestIDs[calmapp.ParseTags(a.Description).RequestID], a.UUID, a.State)
	}
	if len(made) == 0 {
		t.Fatal("no cancelled create reached Calm: the cancels did not race a launch")
	}
}
