package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// Security review: each test demonstrates one weakness. A failing test
// means the weakness is present.

// In-use, reverse direction: an app create naming a reservation whose
// delete is unfinished is admitted (checkReferences only asks that the
// resource row exists; notInUse only runs for the delete). The delete
// frees the address in Infoblox while the app launches on it, and the
// next caller's reservation is handed that same address.
func TestAttackAppCreatedOnAReservationBeingDeleted(t *testing.T) {
	ib := env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "attack-inuse", Bundles: []string{sbx}})
	victim := env.Caller(t, vaultsetup.CallerSpec{Entity: "attack-inuse-next", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }

	ipr := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"sbx-data","hostname":"freed-under-app","dns_zone":"sbx.example.internal"}`}))).ID)
	iprID, _ := ipr.Result["resource_id"].(string)
	addr, _ := ipr.Result["ip_address"].(string)
	if ipr.State != api.OperationSucceeded || iprID == "" || addr == "" {
		t.Fatalf("reservation: %+v", ipr)
	}

	ib.SetLatency(3 * time.Second) // the delete stays unfinished for a few seconds
	del := decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + iprID})))
	app := do(t, gw, sb(call{method: "POST", path: "/v1/calm-apps",
		body: `{"name":"on-freed-ip","project":"sas-sbx","blueprint":"linux-vm-sandbox","ip_reservation":"` + iprID + `","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`}))
	ib.SetLatency(0)
	delEnd := waitOperation(t, gw, tok, del.ID)
	if app.status != http.StatusAccepted {
		t.Logf("app create on a reservation being deleted refused: %d %s (delete ended %s)", app.status, app.body, delEnd.State)
		return
	}
	appEnd := waitOperation(t, gw, tok, decodeOp(t, app).ID)
	if delEnd.State != api.OperationSucceeded || appEnd.State != api.OperationSucceeded {
		t.Logf("delete %s, app %s", delEnd.State, appEnd.State)
		return
	}
	held := false
	for _, h := range ib.Hosts() {
		if slices.Contains(h.IPv4Addrs, addr) {
			held = true
		}
	}
	var onAddr []string
	for _, a := range liveApps(sim) {
		for _, vm := range a.VMs {
			if vm.Address == addr {
				onAddr = append(onAddr, a.Name)
			}
		}
	}
	// The next caller asks for an address on the same network.
	next := waitOperation(t, gw, victim, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: victim, bundle: sbx, env: "sbx",
		body: `{"network":"sbx-data","hostname":"next-caller","dns_zone":"sbx.example.internal"}`})).ID)
	nextAddr, _ := next.Result["ip_address"].(string)
	t.Fatalf("app create admitted (202) while reservation %s was being deleted: delete %s, app %s; Calm apps on %s: %v; Infoblox still holds %s: %v; "+
		"another caller's new reservation got %s",
		iprID, delEnd.State, appEnd.State, addr, onAddr, addr, held, nextAddr)
}

// Cancel of an update or delete accepted (202, audited "cancel requested")
// while its step runs: the step runs to success anyway. Only creates are
// re-checked at the end of a step.
func TestAttackCancelOfARunningDeleteIsAcceptedThenIgnored(t *testing.T) {
	ib := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "attack-cancel-delete", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	ipr := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"sbx-app","hostname":"cancel-my-delete","dns_zone":"sbx.example.internal"}`}))).ID)
	iprID, _ := ipr.Result["resource_id"].(string)

	ib.SetLatency(2 * time.Second)
	del := decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + iprID})))
	waitFor(t, "the delete's step to start", func() bool { got, _ := gw.Gateway.OperationFor(del.ID); return got.State == api.OperationRunning })
	c := do(t, gw, call{method: "POST", path: "/v1/operations/" + del.ID + "/cancel", token: tok})
	ib.SetLatency(0)
	end := waitOperation(t, gw, tok, del.ID)
	if c.status == http.StatusAccepted && end.State == api.OperationSucceeded {
		t.Fatalf("cancel of a running delete answered %d (%s) but the delete ran to %s; Infoblox hosts left: %d",
			c.status, strings.TrimSpace(string(c.body)), end.State, len(ib.Hosts()))
	}
}

// The per-caller bound on unfinished module runs (4) is counted outside the
// transaction that stores the operation: concurrent creates under distinct
// idempotency keys all pass the count.
func TestAttackUnfinishedBoundRacedByConcurrentCreates(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.WorkersPerKind = 1 })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "attack-bound", Bundles: []string{sbx}})
	k, _ := api.KindByName(api.KindModuleRun)
	limit := k.Settings.MaxUnfinishedPerCaller
	const n = 12
	var mu sync.Mutex
	var accepted []string
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := do(t, gw, call{method: "POST", path: "/v1/module-runs", token: tok, bundle: sbx, env: "sbx", idempotencyKey: fmt.Sprintf("race-%d", i),
				body: fmt.Sprintf(`{"name":"race-%d","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"s%d"}}`, i, i)})
			mu.Lock()
			defer mu.Unlock()
			statuses[a.status]++
			if a.status == http.StatusAccepted {
				var op api.Operation
				_ = json.Unmarshal(a.body, &op)
				accepted = append(accepted, op.ID)
			}
		}()
	}
	close(start)
	wg.Wait()
	// Undo what is still pending so the test does not run a dozen Terraform applies.
	for _, id := range accepted {
		do(t, gw, call{method: "POST", path: "/v1/operations/" + id + "/cancel", token: tok})
	}
	for _, id := range accepted {
		waitOperation(t, gw, tok, id)
	}
	if len(accepted) > limit {
		t.Fatalf("%d module runs accepted at once for one caller (bound %d); statuses %v", len(accepted), limit, statuses)
	}
}

// "What was approved is what runs" does not hold for a referenced
// reservation's network: the app's approval resolves the reservation's
// network *name* with the app's revision, not the one that placed the
// reservation (nor what Infoblox holds). After an operator renumbers the
// network, an app launches with IP_ADDRESS from the old network and
// NETWORK the new one.
func TestAttackReferencedReservationNetworkReResolved(t *testing.T) {
	bundles := copyBundles(t)
	env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t, func(c *server.Config) { c.BundleDir = bundles })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "attack-renumber", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	ipr := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"sbx-data","hostname":"renumbered","dns_zone":"sbx.example.internal"}`}))).ID)
	iprID, _ := ipr.Result["resource_id"].(string)
	addr, _ := ipr.Result["ip_address"].(string)

	dataPath := filepath.Join(bundles, sbx, "data.json")
	raw, err := os.ReadFile(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.Replace(string(raw), `"sbx-data": {"cidr": "10.10.1.0/24"`, `"sbx-data": {"cidr": "10.10.7.0/24"`, 1))
	if !strings.Contains(string(raw), "10.10.7.0/24") {
		t.Fatal("bundle edit did not apply")
	}
	if err := os.WriteFile(dataPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gw.Gateway.ReloadPolicy(context.Background()); err != nil {
		t.Fatal(err)
	}
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/calm-apps",
		body: `{"name":"renumbered-app","project":"sas-sbx","blueprint":"linux-vm-sandbox","ip_reservation":"` + iprID + `","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`}))).ID)
	if op.State != api.OperationSucceeded {
		if strings.Contains(op.Error, "10.10.7.0/24") {
			t.Fatalf("app on reservation %s (address %s, placed in 10.10.1.0/24) was approved with its reservation's network re-resolved to 10.10.7.0/24: %s",
				iprID, addr, op.Error)
		}
		t.Logf("app: %+v", op)
		return
	}
	for _, a := range liveApps(sim) {
		if a.Name == "renumbered-app" && a.Variables["NETWORK"] != "10.10.1.0/24" {
			t.Fatalf("app on reservation %s (address %s, placed in 10.10.1.0/24) launched with NETWORK=%s IP_ADDRESS=%s",
				iprID, addr, a.Variables["NETWORK"], a.Variables["IP_ADDRESS"])
		}
	}
}
