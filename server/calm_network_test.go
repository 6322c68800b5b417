package server_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// hostsTagged are the Infoblox hosts that carry one of requestIDs.
func hostsTagged(ib *siminfoblox.Server, requestIDs map[string]bool) []siminfoblox.HostSnapshot {
	var out []siminfoblox.HostSnapshot
	for _, h := range ib.Hosts() {
		if requestIDs[h.EAs[infoblox.AttrRequestID]] {
			out = append(out, h)
		}
	}
	return out
}

// appOf is the app Calm holds (deleted or not) for a request.
func appOf(sim *simcalm.Server, requestID string) (simcalm.AppSnapshot, bool) {
	for _, a := range sim.Apps() {
		if calmapp.ParseTags(a.Description).RequestID == requestID {
			return a, true
		}
	}
	return simcalm.AppSnapshot{}, false
}

// holder is an object holding an address: an Infoblox host or a Calm VM,
// with the request that made it.
type holder struct{ what, requestID string }

// addressHolders maps every address Infoblox or Calm holds to what holds
// it: Infoblox hosts, and the VMs of Calm apps not yet deleted.
func addressHolders(ib *siminfoblox.Server, sim *simcalm.Server) map[string][]holder {
	out := map[string][]holder{}
	for _, h := range ib.Hosts() {
		for _, a := range h.IPv4Addrs {
			out[a] = append(out[a], holder{"infoblox host " + h.Name, h.EAs[infoblox.AttrRequestID]})
		}
	}
	for _, a := range sim.Apps() {
		if a.State == "deleted" && !a.SoftDeleted {
			continue
		}
		for _, vm := range a.VMs {
			out[vm.Address] = append(out[vm.Address], holder{"calm vm " + vm.Name, calmapp.ParseTags(a.Description).RequestID})
		}
	}
	return out
}

type networkCreate struct {
	kind, name, caller string
	tok                string
	op                 api.Operation
}

// Fifty creates at once, from five callers, on one network: half IP
// reservations, half Calm apps given the network (not a reservation). Each
// app's address comes from Infoblox, held by a host its request owns, so
// no address is held twice — not by two Infoblox hosts, not by a host and
// another's VM. After every resource is deleted, Infoblox holds no host of
// these requests.
func TestCalmNetworkAppsAndReservationsNeverShareAnAddress(t *testing.T) {
	ib := env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t, unlimited)
	callers := map[string]string{}
	for i := range 5 {
		entity := fmt.Sprintf("net-caller-%d", i)
		callers[entity] = env.Caller(t, vaultsetup.CallerSpec{Entity: entity, Bundles: []string{sbx}})
	}

	const n = 50
	creates := make([]*networkCreate, n)
	for i := range n {
		c := &networkCreate{caller: fmt.Sprintf("net-caller-%d", i%5)}
		c.tok = callers[c.caller]
		if i%2 == 0 {
			c.kind, c.name = api.KindIPReservation, fmt.Sprintf("ipr-%02d", i)
		} else {
			c.kind, c.name = api.KindCalmApp, fmt.Sprintf("net-app-%02d", i)
		}
		creates[i] = c
	}
	answers := make([]answer, n)
	atOnce(n, func(i int) {
		c := creates[i]
		body := fmt.Sprintf(`{"network":"sbx-app","hostname":%q,"dns_zone":"sbx.example.internal"}`, c.name)
		path := "/v1/ip-reservations"
		if c.kind == api.KindCalmApp {
			body = fmt.Sprintf(`{"name":%q,"project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`, c.name)
			path = "/v1/calm-apps"
		}
		answers[i] = do(t, gw, call{method: "POST", path: path, token: c.tok, bundle: sbx, env: "sbx", body: body})
	})
	requestIDs := map[string]bool{}
	for i, c := range creates {
		c.op = waitOperation(t, gw, c.tok, decodeOp(t, answers[i]).ID)
		if c.op.State != api.OperationSucceeded {
			t.Fatalf("%s %s: %s (%s)", c.kind, c.name, c.op.State, c.op.Error)
		}
		requestIDs[c.op.RequestID] = true
	}

	// Every address is held once, by one object — or by a Calm app's VM
	// and the Infoblox host its own request holds for it.
	for addr, holders := range addressHolders(ib, sim) {
		switch {
		case len(holders) == 1:
		case len(holders) == 2 && holders[0].requestID == holders[1].requestID && holders[0].requestID != "" &&
			strings.HasPrefix(holders[0].what, "infoblox host ") && strings.HasPrefix(holders[1].what, "calm vm "):
		default:
			t.Errorf("%s is held by %+v", addr, holders)
		}
	}
	hostsByRequest := map[string][]siminfoblox.HostSnapshot{}
	for _, h := range hostsTagged(ib, requestIDs) {
		hostsByRequest[h.EAs[infoblox.AttrRequestID]] = append(hostsByRequest[h.EAs[infoblox.AttrRequestID]], h)
	}
	for _, c := range creates {
		hosts := hostsByRequest[c.op.RequestID]
		if len(hosts) != 1 || len(hosts[0].IPv4Addrs) != 1 {
			t.Errorf("%s %s (request %s): Infoblox holds %+v for it, want one host with one address", c.kind, c.name, c.op.RequestID, hosts)
			continue
		}
		h := hosts[0]
		if h.EAs[infoblox.AttrOwner] != c.caller || h.EAs[infoblox.AttrBundle] != sbx || h.EAs[infoblox.AttrEnvironment] != "sbx" ||
			h.EAs[infoblox.AttrManaged] != infoblox.ManagedValue {
			t.Errorf("%s %s: host %s is tagged %v", c.kind, c.name, h.Name, h.EAs)
		}
		if c.op.Result["ip_address"] != h.IPv4Addrs[0] {
			t.Errorf("%s %s: the operation says %v, Infoblox holds %s for it", c.kind, c.name, c.op.Result["ip_address"], h.IPv4Addrs[0])
		}
		if c.kind != api.KindCalmApp {
			continue
		}
		if h.EAs[infoblox.AttrHeldFor] != "calm_app sas-sbx/"+c.name || c.op.Result["infoblox_ref"] != h.Ref {
			t.Errorf("app %s: host %s (%s) held for %q; the operation records %v", c.name, h.Name, h.Ref, h.EAs[infoblox.AttrHeldFor], c.op.Result["infoblox_ref"])
		}
		app, ok := appOf(sim, c.op.RequestID)
		if !ok || app.State != "running" || len(app.VMs) != 1 || app.VMs[0].Address != h.IPv4Addrs[0] {
			t.Errorf("app %s: Calm holds %+v; Infoblox holds %s for it", c.name, app, h.IPv4Addrs[0])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Delete everything, at once: Infoblox then holds none of these requests' hosts.
	deletes := make([]answer, n)
	atOnce(n, func(i int) {
		c := creates[i]
		id, _ := c.op.Result["resource_id"].(string)
		path := "/v1/ip-reservations/" + id
		if c.kind == api.KindCalmApp {
			path = "/v1/calm-apps/" + id
		}
		deletes[i] = do(t, gw, call{method: "DELETE", path: path, token: c.tok, bundle: sbx, env: "sbx"})
	})
	for i, c := range creates {
		if del := waitOperation(t, gw, c.tok, decodeOp(t, deletes[i]).ID); del.State != api.OperationSucceeded {
			t.Errorf("delete %s %s: %s (%s)", c.kind, c.name, del.State, del.Error)
		}
	}
	if left := hostsTagged(ib, requestIDs); len(left) != 0 {
		var names []string
		for _, h := range left {
			names = append(names, h.Name)
		}
		sort.Strings(names)
		t.Fatalf("after deleting everything Infoblox still holds %v", names)
	}
	if live := liveApps(sim); len(live) != 0 {
		t.Fatalf("after deleting everything Calm holds %+v", live)
	}
}

// A Calm app given a network whose create will not succeed — Calm fails
// the launch, provisioning fails, or its owner cancels it at any moment —
// ends (failed or cancelled) only once the address it held in Infoblox is
// released: no host of its request is left.
func TestCalmNetworkCreateThatFailsOrIsCancelledHoldsNoAddress(t *testing.T) {
	ib := env.StartInfoblox(t)
	sim := env.StartCalm(t, func(o *devstack.CalmOptions) { o.LaunchTime, o.ProvisionTime = time.Second, 2*time.Second })
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "not-to-be", Bundles: []string{sbx}})
	create := func(name string) api.Operation {
		return decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/calm-apps", token: tok, bundle: sbx, env: "sbx",
			body: fmt.Sprintf(`{"name":%q,"project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`, name)}))
	}
	ended := func(name string, op api.Operation, want string) {
		t.Helper()
		done := waitOperation(t, gw, tok, op.ID)
		// At the moment it is reported ended, its address is released.
		left := hostsTagged(ib, map[string]bool{op.RequestID: true})
		if done.State != want || len(left) != 0 {
			t.Errorf("%s: operation %s ended %s (%s), want %s; Infoblox holds %+v for it", name, op.ID, done.State, done.Error, want, left)
		}
		if a, ok := appOf(sim, op.RequestID); ok && a.State != "deleted" {
			t.Errorf("%s: Calm holds its app %s %s", name, a.UUID, a.State)
		}
	}

	sim.FailNextLaunches(1, "cluster sbx-01 has no capacity")
	ended("launch fails", create("launch-fails"), api.OperationFailed)
	sim.FailNextProvisions(1, "cloud-init failed")
	ended("provisioning fails", create("provision-fails"), api.OperationFailed)

	type cancelled struct {
		name  string
		delay time.Duration
		op    api.Operation
		at    time.Time
	}
	cases := []*cancelled{{name: "cancel-now"}, {name: "cancel-300ms", delay: 300 * time.Millisecond},
		{name: "cancel-1s", delay: time.Second}, {name: "cancel-2s", delay: 2 * time.Second}}
	for _, c := range cases {
		c.op, c.at = create(c.name), time.Now()
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(c.at.Add(c.delay)))
			if a := do(t, gw, call{method: "POST", path: "/v1/operations/" + c.op.ID + "/cancel", token: tok}); a.status != http.StatusAccepted {
				t.Errorf("%s: cancel: %d %s", c.name, a.status, a.body)
			}
		}()
	}
	wg.Wait()
	held := 0
	for _, c := range cases {
		ended(c.name, c.op, api.OperationCancelled)
		if cp := checkpointOf(t, gw, c.op.ID); strings.Contains(cp, `"infoblox_ref"`) {
			held++
		}
	}
	// The cancels raced real holds: some got an address first, or this proved nothing.
	if held == 0 {
		t.Fatal("no cancelled create had held an address: the cancels raced nothing")
	}
}

// checkpointOf is an operation's stored checkpoint.
func checkpointOf(t *testing.T, gw *testenv.Gateway, id string) string {
	t.Helper()
	var cp string
	if err := gw.Gateway.Store().DB.QueryRow(`SELECT checkpoint_json FROM operations WHERE id = $1`, id).Scan(&cp); err != nil {
		t.Fatal(err)
	}
	return cp
}
