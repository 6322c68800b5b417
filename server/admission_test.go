package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// Every action passes the gate, judged in the resource's or operation's own
// bundle and environment: attacks on the actions that were not judged
// before (cancel, reads, the operation log), each tried as an attacker would.

// A cancel is judged in the operation's own bundle, under the rules of the
// action it stops: a token of the same entity bound only to sbx cannot
// cancel a prod create (403 bundle-not-bound, audited as refused, nothing
// compensated); a prod token needs the change ticket a prod delete needs;
// with it the cancel is accepted, and the audit trail holds both decisions.
func TestCancelIsJudgedInTheOperationsBundle(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	sbxOnly := env.Caller(t, vaultsetup.CallerSpec{Entity: "cancel-owner", Bundles: []string{sbx}})
	prodTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "cancel-owner", Bundles: []string{prod}})
	sim.SetLatency(2 * time.Second) // the prod create stays unfinished while we try to cancel it
	op := decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: prodTok, bundle: prod, env: "prod",
		body: `{"network":"prod-app","hostname":"db-cancel","dns_zone":"prod.example.internal","change_ticket":"CHG0012345"}`}))
	cancelPath := "/v1/operations/" + op.ID + "/cancel"
	waitFor(t, "the create's step to start", func() bool { got, _ := gw.Gateway.OperationFor(op.ID); return got.State == api.OperationRunning })

	a := do(t, gw, call{method: "POST", path: cancelPath, token: sbxOnly})
	if a.status != http.StatusForbidden || a.problem.Type != api.ProblemBundleNotBound || !strings.Contains(a.problem.Detail, prod) {
		t.Fatalf("cancel of a prod create with an sbx-only token: %d %s", a.status, a.body)
	}
	if recs := auditOf(t, gw, a.problem.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionRefused ||
		recs[0].Bundle != prod || recs[0].Environment != "prod" || recs[0].Action != api.ActionCancel {
		t.Fatalf("refused cancel audited as %+v", recs)
	}
	// Reading it is no different: the operation lives in prod.
	if a := do(t, gw, call{method: "GET", path: "/v1/operations/" + op.ID, token: sbxOnly}); a.status != http.StatusForbidden || a.problem.Type != api.ProblemBundleNotBound {
		t.Fatalf("status of a prod operation with an sbx-only token: %d %s", a.status, a.body)
	}

	a = do(t, gw, call{method: "POST", path: cancelPath, token: prodTok})
	if a.status != http.StatusForbidden || a.problem.Type != api.ProblemPolicyDenied || !strings.Contains(strings.ToLower(string(a.body)), "change") {
		t.Fatalf("prod cancel without a change ticket: %d %s", a.status, a.body)
	}
	if recs := auditOf(t, gw, a.problem.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionDeny || recs[0].DecisionID == "" || len(recs[0].Violations) == 0 {
		t.Fatalf("denied cancel audited as %+v", recs)
	}
	if got, _ := gw.Gateway.OperationFor(op.ID); got.CancelRequested {
		t.Fatal("a denied cancel was stored")
	}

	a = do(t, gw, call{method: "POST", path: cancelPath, token: prodTok, body: `{"change_ticket":"CHG0012345"}`})
	if a.status != http.StatusAccepted {
		t.Fatalf("prod cancel with a change ticket: %d %s", a.status, a.body)
	}
	var accepted api.Operation
	_ = json.Unmarshal(a.body, &accepted)
	recs := auditOf(t, gw, a.header.Get(api.HeaderRequestID))
	if len(recs) == 0 || recs[0].Decision != audit.DecisionAllow || recs[0].DecisionID == "" || recs[0].Outcome != "cancel requested" {
		t.Fatalf("accepted cancel audited as %+v", recs)
	}
	if !accepted.CancelRequested {
		t.Fatalf("cancel answered 202 but not recorded: %+v", accepted)
	}
	sim.SetLatency(0)
	// Accepted while the create's step ran: that step's end undoes what it
	// made, and the operation ends cancelled, never succeeded.
	if end := waitOperation(t, gw, prodTok, op.ID); end.State != api.OperationCancelled {
		t.Fatalf("a create cancelled mid-step ended %s: %+v", end.State, end)
	}
	if n := len(sim.Hosts()); n != 0 {
		t.Fatalf("Infoblox holds %d hosts after the cancelled create", n)
	}
}

// A reservation a Calm app sits on cannot be deleted: 409 in-use naming the
// app, in the dry run too, and nothing is freed in Infoblox. Once the app
// is gone, the reservation can be.
func TestReservationInUseCannotBeDeleted(t *testing.T) {
	ib := env.StartInfoblox(t)
	sim := env.StartCalm(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "in-use", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	ipr := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"sbx-data","hostname":"app-in-use","dns_zone":"sbx.example.internal"}`}))).ID)
	iprID, _ := ipr.Result["resource_id"].(string)
	app := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/calm-apps",
		body: `{"name":"sits-on-it","project":"sas-sbx","blueprint":"linux-vm-sandbox","ip_reservation":"` + iprID + `","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`}))).ID)
	appID, _ := app.Result["resource_id"].(string)
	if app.State != api.OperationSucceeded || appID == "" {
		t.Fatalf("app: %+v", app)
	}
	hosts := len(ib.Hosts())

	a := do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + iprID}))
	if a.status != http.StatusConflict || a.problem.Type != api.ProblemInUse || !strings.Contains(a.problem.Detail, appID) {
		t.Fatalf("delete of a reservation in use: %d %s", a.status, a.body)
	}
	if recs := auditOf(t, gw, a.problem.RequestID); len(recs) != 1 || recs[0].Decision != audit.DecisionRefused || recs[0].TargetID != iprID {
		t.Fatalf("in-use refusal audited as %+v", recs)
	}
	dry := do(t, gw, sb(call{method: "POST", path: "/v1/decisions", body: `{"kind":"ip_reservation","action":"delete","target_id":"` + iprID + `"}`}))
	if dry.status != http.StatusConflict || dry.problem.Type != api.ProblemInUse {
		t.Fatalf("dry run of the delete: %d %s", dry.status, dry.body)
	}
	if n := len(ib.Hosts()); n != hosts {
		t.Fatalf("Infoblox holds %d hosts after the refused delete; want %d", n, hosts)
	}

	if gone := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/calm-apps/" + appID}))).ID); gone.State != api.OperationSucceeded {
		t.Fatalf("app delete: %+v", gone)
	}
	if len(liveApps(sim)) != 0 {
		t.Fatal("the app is still live")
	}
	if gone := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + iprID}))).ID); gone.State != api.OperationSucceeded {
		t.Fatalf("reservation delete once the app is gone: %+v", gone)
	}
}

// Reads are actions the bundle judges too: a read, a drift check and an
// operation's status and log each carry a policy decision in the audit
// trail, and only the owner's entity, bound to the resource's bundle, gets
// them.
func TestReadsAreJudged(t *testing.T) {
	env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "reader", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		body: `{"network":"sbx-app","hostname":"read-me","dns_zone":"sbx.example.internal"}`}))).ID)
	id, _ := op.Result["resource_id"].(string)
	for _, c := range []call{
		sb(call{method: "GET", path: "/v1/ip-reservations/" + id}),
		sb(call{method: "GET", path: "/v1/ip-reservations/" + id + "?refresh=true"}),
		sb(call{method: "GET", path: "/v1/ip-reservations"}),
		{method: "GET", path: "/v1/operations/" + op.ID, token: tok},
		{method: "GET", path: "/v1/operations/" + op.ID + "/log", token: tok},
	} {
		a := do(t, gw, c)
		if a.status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.method, c.path, a.status, a.body)
		}
		var recs []audit.Record // the request's own record, not the read's sub-token events
		for _, r := range auditOf(t, gw, a.header.Get(api.HeaderRequestID)) {
			if r.UserAgent == "threat-test" {
				recs = append(recs, r)
			}
		}
		if len(recs) != 1 || recs[0].Decision != audit.DecisionAllow || recs[0].DecisionID == "" || recs[0].BundleRevision == "" ||
			recs[0].Bundle != sbx || recs[0].Environment != "sbx" || recs[0].Action != api.ActionRead {
			t.Fatalf("%s %s audited as %+v; want a policy decision under %s/sbx", c.method, c.path, recs, sbx)
		}
	}
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "not-the-reader", Bundles: []string{sbx}})
	for _, p := range []string{"/v1/operations/" + op.ID, "/v1/operations/" + op.ID + "/log"} {
		if a := do(t, gw, call{method: "GET", path: p, token: other}); a.status != http.StatusNotFound {
			t.Fatalf("another entity's GET %s: %d %s", p, a.status, a.body)
		}
	}
}
