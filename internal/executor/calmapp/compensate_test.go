package calmapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// fakeClock is the simulator's and the executor's time; the executor's
// in-step waits move it, so minutes of Calm pass in no time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// calmWorld is a simulated Calm and Infoblox, an executor on Calm's
// clock, and the operations it runs, each with its checkpoint as the
// orchestrator keeps it. Every in-step wait checks that each live app's
// address is held in Infoblox for it (checkHeld).
type calmWorld struct {
	t     *testing.T
	sim   *simcalm.Server
	url   string
	ib    *siminfoblox.Server
	ibURL string
	clock *fakeClock
	exec  *calmapp.Executor
	// unheld: a test took an app's address away behind sas's back.
	unheld bool
	// hostPosts counts the record:host creates Infoblox was sent.
	hostPosts atomic.Int32
}

func newCalmWorld(t *testing.T, launchTime time.Duration) *calmWorld {
	t.Helper()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	sim, err := simcalm.New(simcalm.Options{Users: map[string]string{"sas": "calm-test-password"}, Clock: clock.Now,
		LaunchTime: launchTime, ProvisionTime: 10 * time.Minute, DeleteTime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	var defs []siminfoblox.SeedEADefinition // as a grid admin defines them once
	for _, name := range infoblox.DefinedAttributeNames() {
		defs = append(defs, siminfoblox.SeedEADefinition{Name: name})
	}
	ib, err := siminfoblox.New(siminfoblox.Options{Users: map[string]string{"sas": "infoblox-test-password"}, EADefinitions: defs,
		Networks: []siminfoblox.SeedNetwork{{Network: "10.10.0.0/24", Gateway: "10.10.0.1"}, {Network: "10.20.0.0/24", Gateway: "10.20.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &calmWorld{t: t, sim: sim, url: ts.URL, ib: ib, clock: clock}
	ibs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/record:host") {
			w.hostPosts.Add(1)
		}
		ib.ServeHTTP(rw, r)
	}))
	t.Cleanup(ibs.Close)
	w.ibURL = ibs.URL
	w.exec = &calmapp.Executor{
		Now: clock.Now,
		Sleep: func(_ context.Context, d time.Duration) error {
			w.checkHeld("during an in-step wait")
			clock.Advance(d)
			return nil
		},
	}
	return w
}

// credentials are what a sub-token reads from Vault for each system.
func (w *calmWorld) credentials(_ context.Context, system string) (vault.Credentials, error) {
	switch system {
	case "calm":
		return vault.Credentials{URL: w.url, Username: "sas", Password: "calm-test-password"}, nil
	case "infoblox":
		return vault.Credentials{URL: w.ibURL, Username: "sas", Password: "infoblox-test-password"}, nil
	}
	return vault.Credentials{}, errors.New("no credentials for " + system)
}

// op is one create operation and its checkpoint.
type op struct {
	w          *calmWorld
	job        executor.Job
	mu         sync.Mutex
	checkpoint json.RawMessage
}

func (w *calmWorld) create(name, requestID string) *op {
	return w.createIn("sas-sbx", "10.10.0.0/24", name, requestID)
}

func (w *calmWorld) createIn(project, network, name, requestID string) *op {
	body, _ := json.Marshal(api.CalmAppRequest{Name: name, Project: project, Blueprint: "linux-vm-sandbox", Network: network,
		Size: api.MachineSize{VCPUs: 1, MemoryGiB: 2, DiskGiB: 20}})
	o := &op{w: w}
	o.job = executor.Job{
		Operation: operations.Work{Operation: api.Operation{ID: "op-" + requestID, Kind: api.KindCalmApp, Action: api.ActionCreate,
			RequestID: requestID, Owner: "alice", Bundle: "fedramp_sbx_default", Environment: "sbx"}, Request: body,
			// As admission resolves it from the approving bundle revision.
			Approval: api.Approval{BundleRevision: "test", NetworkCIDR: map[string]string{"sbx-app": "10.10.0.0/24"}[network]}},
		Attempt:     1,
		Credentials: w.credentials,
		Save: func(_ context.Context, cp any) error {
			raw, err := json.Marshal(cp)
			o.mu.Lock()
			o.checkpoint = raw
			o.mu.Unlock()
			return err
		},
	}
	return o
}

// step gives the job the checkpoint the last step saved, as the orchestrator does.
func (o *op) step() executor.Job {
	o.mu.Lock()
	defer o.mu.Unlock()
	j := o.job
	j.Checkpoint = o.checkpoint
	return j
}

// launch runs the create's first step: simple_launch sent, its request id checkpointed.
func (o *op) launch() string {
	o.w.t.Helper()
	_, err := o.w.exec.Execute(context.Background(), o.step())
	var waiting *executor.InProgress
	if !errors.As(err, &waiting) {
		o.w.t.Fatalf("first step of %s: %v, want a wait on the launch", o.job.Operation.ID, err)
	}
	return o.field("launch_request_id")
}

func (o *op) field(name string) string {
	var cp map[string]any
	o.mu.Lock()
	_ = json.Unmarshal(o.checkpoint, &cp)
	o.mu.Unlock()
	s, _ := cp[name].(string)
	return s
}

// forget drops a field from the checkpoint, as if the step died before saving it.
func (o *op) forget(name string) {
	var cp map[string]any
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = json.Unmarshal(o.checkpoint, &cp)
	delete(cp, name)
	o.checkpoint, _ = json.Marshal(cp)
}

// compensate runs compensation as the orchestrator does — again after each
// error — until it returns nil or a permanent error; it returns that and
// the number of steps it took.
func (o *op) compensate(maxSteps int) (int, error) {
	o.w.t.Helper()
	for n := 1; n <= maxSteps; n++ {
		err := o.w.exec.Compensate(context.Background(), o.step())
		if err == nil || executor.IsPermanent(err) {
			return n, err
		}
		var waiting *executor.InProgress
		if !errors.As(err, &waiting) {
			o.w.t.Fatalf("compensation step %d: %v, want a wait", n, err)
		}
		o.w.clock.Advance(time.Second) // the orchestrator's backoff
	}
	o.w.t.Fatalf("compensation of %s not done after %d steps", o.job.Operation.ID, maxSteps)
	return 0, nil
}

// liveApps are the apps Calm holds, or will hold once pending launches
// resolve, that are not deleted.
func (w *calmWorld) liveApps() map[string]string {
	out := map[string]string{}
	for _, a := range w.sim.Apps() {
		if a.State != "deleted" {
			out[a.Name] = a.State
		}
	}
	return out
}

// A create compensated while its launch is pending (Calm lists no app yet)
// waits for the launch to resolve, deletes its app and returns only once
// Calm says deleted; nothing appears later.
func TestCompensateWaitsForThePendingLaunch(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	o := w.create("pending-at-cancel", "req-pending")
	if id := o.launch(); id == "" {
		t.Fatal("no launch request id checkpointed")
	}
	if n := len(w.sim.Apps()); n != 0 {
		t.Fatalf("Calm lists %d apps while the launch is pending", n)
	}
	started := w.clock.Now()
	if _, err := o.compensate(3); err != nil {
		t.Fatalf("compensation: %v", err)
	}
	if took := w.clock.Now().Sub(started); took < time.Minute {
		t.Fatalf("compensation ended after %s, before the launch (1m) could resolve", took)
	}
	apps := w.sim.Apps()
	if len(apps) != 1 || apps[0].State != "deleted" || calmapp.ParseTags(apps[0].Description).RequestID != "req-pending" {
		t.Fatalf("Calm holds %+v, want the launch's app, deleted", apps)
	}
	w.clock.Advance(24 * time.Hour)
	if live := w.liveApps(); len(live) != 0 {
		t.Fatalf("a day later Calm holds %v", live)
	}
}

// A launch whose request id was never checkpointed (the step died around
// the call) is found by the request's tag once Calm lists its app, and
// deleted; another request's app of the same name (in another project) is
// never touched.
func TestCompensateFindsAnUnansweredLaunchByItsTag(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	bystander := w.createIn("sas-dev", "10.20.0.0/24", "unanswered", "req-bystander")
	bystander.launch()
	w.clock.Advance(2 * time.Minute) // listed, provisioning
	o := w.create("unanswered", "req-unanswered")
	o.launch()
	o.forget("launch_request_id")
	if _, err := o.compensate(3); err != nil {
		t.Fatalf("compensation: %v", err)
	}
	var mine, theirs string
	for _, a := range w.sim.Apps() {
		switch calmapp.ParseTags(a.Description).RequestID {
		case "req-unanswered":
			mine = a.State
		case "req-bystander":
			theirs = a.State
		}
	}
	if mine != "deleted" || theirs == "" || theirs == "deleted" || theirs == "deleting" {
		t.Fatalf("the unanswered launch's app is %q (want deleted), the bystander's %q (want left alone)", mine, theirs)
	}
}

// An intent to launch that never reached Calm: compensation looks for the
// request's app for the whole listing window, then concludes nothing was made.
func TestCompensateConcludesALaunchThatNeverReachedCalm(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	o := w.create("never-sent", "req-never-sent")
	sent := w.clock.Now()
	if err := o.job.Save(context.Background(), map[string]any{"launch_sent_at": sent, "blueprint_uuid": "bp"}); err != nil {
		t.Fatal(err)
	}
	steps, err := o.compensate(10)
	if err != nil {
		t.Fatalf("compensation: %v", err)
	}
	if looked := w.clock.Now().Sub(sent); looked < calmapp.LaunchListingWindow {
		t.Fatalf("concluded after %s (%d steps), before the listing window (%s) passed", looked, steps, calmapp.LaunchListingWindow)
	}
}

// A launch that never resolves does not keep compensation waiting for
// ever: past the bound it fails for good, naming the launch and app to
// check and the address it keeps holding in Infoblox (the app may still
// come); called again once Calm resolves it, it still cleans up, address
// included.
func TestCompensateGivesUpOnALaunchThatNeverResolves(t *testing.T) {
	w := newCalmWorld(t, 24*time.Hour)
	o := w.create("stuck-launch", "req-stuck")
	launch := o.launch()
	started := w.clock.Now()
	steps, err := o.compensate(10)
	if !executor.IsPermanent(err) {
		t.Fatalf("compensation after %d steps: %v, want a permanent error", steps, err)
	}
	if took := w.clock.Now().Sub(started); took < calmapp.CompensationBound || steps > 5 {
		t.Fatalf("gave up after %s and %d steps; want the bound (%s) within 5 steps", took, steps, calmapp.CompensationBound)
	}
	held := w.hostsOf("req-stuck")
	if len(held) != 1 {
		t.Fatalf("having given up, compensation left Infoblox holding %+v; want the address kept for the app that may still come", held)
	}
	for _, want := range []string{launch, "stuck-launch", "sas-sbx", "req-stuck", "linux-vm-sandbox", held[0].Ref, held[0].IPv4Addrs[0], "Infoblox"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	w.clock.Advance(24 * time.Hour) // Calm resolves it at last
	if _, err := o.compensate(3); err != nil {
		t.Fatalf("compensation once the launch resolved: %v", err)
	}
	if live := w.liveApps(); len(live) != 0 {
		t.Fatalf("Calm holds %v", live)
	}
	if left := w.hostsOf("req-stuck"); len(left) != 0 {
		t.Fatalf("Infoblox still holds %+v", left)
	}
}
