package calmapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
)

// hostsOf are the Infoblox hosts tagged with requestID.
func (w *calmWorld) hostsOf(requestID string) []siminfoblox.HostSnapshot {
	var out []siminfoblox.HostSnapshot
	for _, h := range w.ib.Hosts() {
		if h.EAs[infoblox.AttrRequestID] == requestID {
			out = append(out, h)
		}
	}
	return out
}

// checkHeld is the invariant: every app Calm holds addresses for (not yet
// deleted) has its first VM on the address of exactly one Infoblox host,
// made by sas for that app's request and held for a Calm app; and no two
// hosts hold one address.
func (w *calmWorld) checkHeld(when string) {
	w.t.Helper()
	if w.unheld {
		return
	}
	holder := map[string]string{}
	for _, h := range w.ib.Hosts() {
		for _, a := range h.IPv4Addrs {
			if other, ok := holder[a]; ok {
				w.t.Errorf("%s: Infoblox hosts %s and %s both hold %s", when, other, h.Name, a)
			}
			holder[a] = h.Name
		}
	}
	for _, a := range w.sim.Apps() {
		if a.State == "deleted" || len(a.VMs) == 0 {
			continue
		}
		req := calmapp.ParseTags(a.Description).RequestID
		var held []string
		for _, h := range w.hostsOf(req) {
			if strings.HasPrefix(h.EAs[infoblox.AttrHeldFor], "calm_app ") && h.EAs[infoblox.AttrManaged] == infoblox.ManagedValue {
				held = append(held, h.IPv4Addrs...)
			}
		}
		if len(held) != 1 || held[0] != a.VMs[0].Address {
			w.t.Errorf("%s: Calm app %s (%s, request %s) is on %s; Infoblox holds %v for its request", when, a.Name, a.State, req, a.VMs[0].Address, held)
		}
	}
}

// run steps a create (or delete) as the orchestrator does until it ends:
// each wait moves the clock on by what the executor asked.
func (o *op) run(maxSteps int) (executor.Result, error) {
	o.w.t.Helper()
	for n := 1; n <= maxSteps; n++ {
		res, err := o.w.exec.Execute(context.Background(), o.step())
		o.w.checkHeld(fmt.Sprintf("after step %d of %s", n, o.job.Operation.ID))
		var waiting *executor.InProgress
		if !errors.As(err, &waiting) {
			return res, err
		}
		o.w.clock.Advance(waiting.After)
	}
	o.w.t.Fatalf("%s not done after %d steps", o.job.Operation.ID, maxSteps)
	return executor.Result{}, nil
}

// deleteOf is the delete of the resource a create made, with its
// attributes as the store keeps them (JSON).
func (w *calmWorld) deleteOf(res executor.Result, requestID string) *op {
	var attrs map[string]any
	raw, _ := json.Marshal(res.Attributes)
	_ = json.Unmarshal(raw, &attrs)
	o := w.create("unused", requestID)
	o.job.Operation.Action, o.job.Operation.ID = api.ActionDelete, "op-del-"+requestID
	o.job.Resource = &operations.Resource{ID: res.ResourceID, Kind: api.KindCalmApp, Owner: "alice", Bundle: "fedramp_sbx_default",
		Environment: "sbx", Attributes: attrs}
	return o
}

// saveFailsWith makes the first save of a checkpoint holding field fail, as
// a step that died right after the call it records.
func (o *op) saveFailsWith(field string) {
	save := o.job.Save
	failed := false
	o.job.Save = func(ctx context.Context, cp any) error {
		raw, _ := json.Marshal(cp)
		if !failed && strings.Contains(string(raw), `"`+field+`"`) {
			failed = true
			return errors.New("the step died before its checkpoint was stored")
		}
		return save(ctx, cp)
	}
}

func (w *calmWorld) infoblox() *infoblox.Client {
	w.t.Helper()
	c, err := infoblox.New(infoblox.Config{URL: w.ibURL, Credentials: infoblox.Credentials{Username: "sas", Password: "infoblox-test-password"}})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// An app launched on a network takes the address Infoblox holds for it —
// not the one Calm would have picked, which an IP reservation holds
// already — and records it; its delete releases it once the app is gone.
func TestNetworkLaunchTakesItsAddressFromInfoblox(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	ctx := context.Background()
	ib := w.infoblox()
	reservation, err := ib.CreateHost(ctx, infoblox.HostSpec{Name: "taken.sbx.example.internal", Network: "10.10.0.0/24",
		Tags: infoblox.Tags{Owner: "bob", RequestID: "req-reservation", Bundle: "fedramp_sbx_default", Environment: "sbx"}})
	if err != nil {
		t.Fatal(err)
	}
	if reservation.IPv4() != "10.10.0.2" {
		t.Fatalf("the reservation got %s, want 10.10.0.2: the address Calm picks first", reservation.IPv4())
	}

	o := w.createIn("sas-sbx", "sbx-app", "held-app", "req-held")
	res, err := o.run(200)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	hosts := w.hostsOf("req-held")
	if len(hosts) != 1 {
		t.Fatalf("Infoblox holds %+v for the request, want one host", hosts)
	}
	h := hosts[0]
	apps := w.liveApps()
	if len(apps) != 1 {
		t.Fatalf("Calm holds %v", apps)
	}
	app := w.sim.Apps()[0]
	if app.VMs[0].Address != h.IPv4Addrs[0] || app.VMs[0].Address == reservation.IPv4() || app.Variables["IP_ADDRESS"] != h.IPv4Addrs[0] ||
		app.Variables["NETWORK"] != "10.10.0.0/24" {
		t.Fatalf("the app is on %s (variables %v); Infoblox holds %s for it and %s for the reservation",
			app.VMs[0].Address, app.Variables, h.IPv4Addrs[0], reservation.IPv4())
	}
	want := map[string]string{infoblox.AttrOwner: "alice", infoblox.AttrRequestID: "req-held", infoblox.AttrBundle: "fedramp_sbx_default",
		infoblox.AttrEnvironment: "sbx", infoblox.AttrManaged: infoblox.ManagedValue, infoblox.AttrHeldFor: "calm_app sas-sbx/held-app"}
	for k, v := range want {
		if h.EAs[k] != v {
			t.Errorf("host attribute %s = %q, want %q", k, h.EAs[k], v)
		}
	}
	if res.Attributes["ip_address"] != h.IPv4Addrs[0] || res.Attributes["infoblox_ref"] != h.Ref {
		t.Fatalf("attributes %v; the host is %s at %s", res.Attributes, h.Ref, h.IPv4Addrs[0])
	}

	del := w.deleteOf(res, "req-held")
	gone, err := del.run(20)
	if err != nil || !gone.Deleted {
		t.Fatalf("delete: %+v %v", gone, err)
	}
	if left := w.hostsOf("req-held"); len(left) != 0 {
		t.Fatalf("after the delete Infoblox still holds %+v", left)
	}
	if len(w.hostsOf("req-reservation")) != 1 {
		t.Fatal("the delete touched another request's host")
	}
}

// A host made whose ref was never checkpointed (the step died between the
// grid's answer and the save) is found by the request's tag and launched
// with — never a second one held.
func TestHeldAddressNotCheckpointedIsAdoptedNotHeldTwice(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	o := w.createIn("sas-sbx", "sbx-app", "lost-answer", "req-lost-answer")
	o.saveFailsWith("infoblox_ref")
	if _, err := w.exec.Execute(context.Background(), o.step()); err == nil || executor.IsPermanent(err) {
		t.Fatalf("first step: %v, want the save's transient error", err)
	}
	if o.field("infoblox_ref") != "" || !strings.Contains(string(o.checkpoint), `"address_asked":true`) {
		t.Fatalf("checkpoint %s: want only the intent to hold an address", o.checkpoint)
	}
	first := w.hostsOf("req-lost-answer")
	if len(first) != 1 {
		t.Fatalf("Infoblox holds %+v after the first step", first)
	}
	if _, err := o.run(200); err != nil {
		t.Fatalf("create: %v", err)
	}
	hosts := w.hostsOf("req-lost-answer")
	if len(hosts) != 1 || hosts[0].Ref != first[0].Ref || o.field("infoblox_ref") != first[0].Ref {
		t.Fatalf("Infoblox holds %+v (first %s), checkpoint names %q", hosts, first[0].Ref, o.field("infoblox_ref"))
	}
	if n := w.hostPosts.Load(); n != 1 {
		t.Fatalf("Infoblox was asked %d times to hold an address, want once: the retry must find the host by its tag", n)
	}
	if app := w.sim.Apps(); len(app) != 1 || app[0].VMs[0].Address != first[0].IPv4Addrs[0] {
		t.Fatalf("Calm holds %+v, want one app on %s", app, first[0].IPv4Addrs[0])
	}
}

// Compensated before its ref was checkpointed, a create still releases the
// host it made: its request's tag finds it.
func TestCompensateReleasesAHeldAddressItNeverCheckpointed(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	o := w.createIn("sas-sbx", "sbx-app", "cancelled-early", "req-cancelled-early")
	o.saveFailsWith("infoblox_ref")
	_, _ = w.exec.Execute(context.Background(), o.step())
	if len(w.hostsOf("req-cancelled-early")) != 1 {
		t.Fatal("no host held by the first step")
	}
	if _, err := o.compensate(3); err != nil {
		t.Fatalf("compensation: %v", err)
	}
	if left := w.hostsOf("req-cancelled-early"); len(left) != 0 {
		t.Fatalf("Infoblox still holds %+v", left)
	}
}

// A launch Calm fails, and a create cancelled while its launch is pending,
// release their address — the latter only once its app is deleted (the
// invariant is checked at every in-step wait of the compensation).
func TestCompensateReleasesTheHeldAddressAfterTheApp(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	w.sim.FailNextLaunches(1, "cluster sbx-01 has no capacity")
	failed := w.createIn("sas-sbx", "sbx-app", "launch-fails", "req-launch-fails")
	if _, err := failed.run(200); !executor.IsPermanent(err) || !strings.Contains(err.Error(), "no capacity") {
		t.Fatalf("create: %v, want the launch's failure", err)
	}
	if len(w.hostsOf("req-launch-fails")) != 1 {
		t.Fatal("the failed create held no address")
	}
	if _, err := failed.compensate(3); err != nil {
		t.Fatalf("compensation of the failed launch: %v", err)
	}
	if left := w.hostsOf("req-launch-fails"); len(left) != 0 {
		t.Fatalf("after the failed launch Infoblox still holds %+v", left)
	}

	cancelled := w.createIn("sas-sbx", "sbx-app", "cancelled-pending", "req-cancelled-pending")
	cancelled.launch()
	if _, err := cancelled.compensate(3); err != nil {
		t.Fatalf("compensation: %v", err)
	}
	apps := w.sim.Apps()
	if len(apps) != 1 || apps[0].State != "deleted" {
		t.Fatalf("Calm holds %+v, want the launch's app, deleted", apps)
	}
	if left := w.hostsOf("req-cancelled-pending"); len(left) != 0 {
		t.Fatalf("Infoblox still holds %+v", left)
	}
}

// A read reports the host holding the app's address vanishing from
// Infoblox; the delete then finishes all the same.
func TestReadReportsAHeldAddressThatVanished(t *testing.T) {
	w := newCalmWorld(t, time.Minute)
	o := w.createIn("sas-sbx", "sbx-app", "vanishing-host", "req-vanishing-host")
	res, err := o.run(200)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	read := w.deleteOf(res, "req-vanishing-host").step()
	read.Operation.Action = api.ActionRead
	_, drift, gone, err := w.exec.Read(context.Background(), read)
	if err != nil || gone || len(drift) != 0 {
		t.Fatalf("fresh read: drift %v, gone %v, %v", drift, gone, err)
	}
	ref, _ := res.Attributes["infoblox_ref"].(string)
	w.unheld = true
	if err := w.infoblox().DeleteHost(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	attrs, drift, gone, err := w.exec.Read(context.Background(), read)
	if err != nil || gone || len(drift) != 1 || drift[0].Field != "infoblox_ref" || drift[0].Want != ref || drift[0].Got != "" || attrs["infoblox_ref"] != "" {
		t.Fatalf("read after the host vanished: drift %+v, gone %v, attributes %v, %v", drift, gone, attrs, err)
	}
	if gone, err := w.deleteOf(res, "req-vanishing-host").run(20); err != nil || !gone.Deleted {
		t.Fatalf("delete: %+v %v", gone, err)
	}
}
