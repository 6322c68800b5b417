package admission_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/admission"
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

// The gate is plain values in, plain values out: these tests run it on the
// shipped bundles and a real store, without HTTP or Vault.

const (
	sbx  = "fedramp_sbx_default"
	prod = "fedramp_prod_restricted"
)

func bundlesDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "bundles")
}

type fixture struct {
	gate *admission.Gate
	book *operations.Book
}

func newGate(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	eval, err := policy.Load(ctx, policy.Options{Dir: bundlesDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	book := operations.NewBook(st)
	return fixture{book: book, gate: &admission.Gate{Policy: eval, Book: book, Seal: func(v string) string { return "sealed:" + v[:0] },
		Executes: func(string) bool { return true }}}
}

func who(entity string, bundles ...string) caller.Caller {
	return caller.Caller{Owner: entity, EntityID: "entity-" + entity, EntityName: entity, Bundles: bundles}
}

func refusal(t *testing.T, err error) api.Problem {
	t.Helper()
	var r *admission.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("want a refusal, got %v", err)
	}
	return r.Problem
}

// A create that is allowed yields the operation to store; its dry run the
// same decision and nothing to store.
func TestDryRunDecidesExactlyAsTheRequest(t *testing.T) {
	f := newGate(t)
	body := []byte(`{"network":"sbx-app","hostname":"web-01","dns_zone":"sbx.example.internal"}`)
	req := admission.Request{Caller: who("a", sbx), Bundle: sbx, Environment: "sbx", Kind: api.KindIPReservation, Action: admission.Create, Body: body, RequestID: "r1"}
	real, err := f.gate.Admit(context.Background(), req)
	if err != nil || !real.Decision.Allow || real.Work == nil || real.Audit.Decision != audit.DecisionAllow {
		t.Fatalf("create: %+v %v", real, err)
	}
	req.DryRun = true
	dry, err := f.gate.Admit(context.Background(), req)
	if err != nil || !dry.Decision.Allow || dry.Work != nil || dry.Decision.Revision != real.Decision.Revision {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	// Denied alike: a zone of another environment.
	req.Body, req.DryRun = []byte(`{"network":"sbx-app","hostname":"web-01","dns_zone":"prod.example.internal"}`), false
	denied, _ := f.gate.Admit(context.Background(), req)
	req.DryRun = true
	dryDenied, _ := f.gate.Admit(context.Background(), req)
	if denied.Decision.Allow || dryDenied.Decision.Allow || denied.Work != nil || len(denied.Decision.Violations) != len(dryDenied.Decision.Violations) {
		t.Fatalf("denial differs: %+v vs %+v", denied.Decision, dryDenied.Decision)
	}
}

// An operation is acted on only where it was admitted: a caller not bound
// to its bundle is refused (and the refusal is audited in the operation's
// bundle and environment); a cancel of a prod create needs the change
// ticket a prod delete needs; a finished operation cannot be cancelled.
func TestCancelFollowsTheRulesOfTheActionItStops(t *testing.T) {
	f := newGate(t)
	ctx := context.Background()
	owner := who("owner", prod)
	op, _, err := f.book.Create(ctx, operations.New{Kind: api.KindIPReservation, Action: api.ActionCreate, OwnerEntityID: owner.EntityID, Owner: owner.Owner,
		Bundle: prod, Environment: "prod", RequestID: "r-create", DecisionID: "d",
		Request: []byte(`{"network":"prod-app","hostname":"db-01","dns_zone":"prod.example.internal","change_ticket":"CHG0012345"}`)})
	if err != nil {
		t.Fatal(err)
	}
	cancel := func(c caller.Caller, body string) (admission.Admission, error) {
		return f.gate.Admit(ctx, admission.Request{Caller: c, Action: admission.Cancel, TargetID: op.ID, TargetParam: "path:id", Body: []byte(body), RequestID: "r"})
	}

	a, err := cancel(who("owner", sbx), "")
	if p := refusal(t, err); p.Type != api.ProblemBundleNotBound || p.Status != http.StatusForbidden {
		t.Fatalf("sbx-only token: %+v", p)
	}
	if a.Audit.Bundle != prod || a.Audit.Environment != "prod" || a.Audit.Decision != audit.DecisionRefused || a.Audit.Action != api.ActionCancel {
		t.Fatalf("refusal audited as %+v", a.Audit)
	}
	if _, err := cancel(who("stranger", prod), ""); !errors.Is(err, operations.ErrNotFound) {
		t.Fatalf("another entity's operation: %v", err)
	}

	a, err = cancel(owner, "")
	if err != nil || a.Decision.Allow || a.Audit.Decision != audit.DecisionDeny {
		t.Fatalf("prod cancel without a ticket: %+v %v", a.Decision, err)
	}
	if !strings.Contains(strings.ToLower(a.Decision.Violations[0].Message), "change") {
		t.Fatalf("the denial does not name the change ticket: %+v", a.Decision.Violations)
	}
	a, err = cancel(owner, `{"change_ticket":"CHG0012345"}`)
	if err != nil || !a.Decision.Allow || a.Work != nil {
		t.Fatalf("prod cancel with a ticket: %+v %v", a.Decision, err)
	}
	if _, err := cancel(owner, `{"change_ticket":"CHG0012345","force":true}`); err == nil {
		t.Fatal("an unknown field in a cancel body was accepted")
	}

	if err := f.book.Finish(ctx, op.ID, api.OperationSucceeded, nil, ""); err != nil {
		t.Fatal(err)
	}
	_, err = cancel(owner, `{"change_ticket":"CHG0012345"}`)
	if p := refusal(t, err); p.Type != api.ProblemOperationDone {
		t.Fatalf("cancel of a finished operation: %+v", p)
	}
}

// A running step of a kind that cannot stop midway (a Terraform apply)
// refuses a cancel; the same operation waiting between steps accepts one.
func TestCancelOfAnUninterruptibleStep(t *testing.T) {
	f := newGate(t)
	ctx := context.Background()
	owner := who("runner", sbx)
	op, _, err := f.book.Create(ctx, operations.New{Kind: api.KindModuleRun, Action: api.ActionCreate, OwnerEntityID: owner.EntityID, Owner: owner.Owner,
		Bundle: sbx, Environment: "sbx", RequestID: "r-run", DecisionID: "d", Request: []byte(`{"name":"x","module":"platform/deploy-gate","version":"1.0.0"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.book.Start(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.gate.Admit(ctx, admission.Request{Caller: owner, Action: admission.Cancel, TargetID: op.ID})
	if p := refusal(t, err); p.Type != api.ProblemCannotCancel || p.Status != http.StatusConflict {
		t.Fatalf("cancel of a running apply: %+v", p)
	}
	if _, err := f.book.RequestCancelBetweenSteps(ctx, op.ID, owner.EntityID); !errors.As(err, new(*operations.StepRunningError)) {
		t.Fatalf("the store accepted a cancel of a running step: %v", err)
	}
	if err := f.book.Wait(ctx, op.ID, "between steps"); err != nil {
		t.Fatal(err)
	}
	a, err := f.gate.Admit(ctx, admission.Request{Caller: owner, Action: admission.Cancel, TargetID: op.ID})
	if err != nil || !a.Decision.Allow {
		t.Fatalf("cancel between steps: %+v %v", a.Decision, err)
	}
	if got, err := f.book.RequestCancelBetweenSteps(ctx, op.ID, owner.EntityID); err != nil || !got.CancelRequested {
		t.Fatalf("cancel between steps not stored: %+v %v", got, err)
	}
}

// A reservation a live Calm app — or an unfinished create of one — refers
// to cannot be deleted; the refusal names what uses it, in a dry run too.
func TestReferencedResourceIsInUse(t *testing.T) {
	f := newGate(t)
	ctx := context.Background()
	owner := who("pair", sbx)
	put := func(kind, id string, spec any) {
		raw, _ := json.Marshal(spec)
		if err := f.book.PutResource(ctx, operations.Resource{ID: id, Kind: kind, OwnerEntityID: owner.EntityID, Owner: owner.Owner,
			Bundle: sbx, Environment: "sbx", Spec: raw, OperationID: "op-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	put(api.KindIPReservation, "ipr-1", map[string]any{"network": "sbx-app", "hostname": "a", "dns_zone": "sbx.example.internal"})
	put(api.KindIPReservation, "ipr-2", map[string]any{"network": "sbx-app", "hostname": "b", "dns_zone": "sbx.example.internal"})
	put(api.KindCalmApp, "app-1", map[string]any{"name": "on-1", "ip_reservation": "ipr-1"})
	if _, _, err := f.book.Create(ctx, operations.New{Kind: api.KindCalmApp, Action: api.ActionCreate, OwnerEntityID: owner.EntityID, Owner: owner.Owner,
		Bundle: sbx, Environment: "sbx", RequestID: "r-app2", DecisionID: "d", Request: []byte(`{"name":"on-2","ip_reservation":"ipr-2"}`)}); err != nil {
		t.Fatal(err)
	}
	del := func(id string, dry bool) error {
		_, err := f.gate.Admit(ctx, admission.Request{Caller: owner, Bundle: sbx, Environment: "sbx", Kind: api.KindIPReservation,
			Action: admission.Delete, TargetID: id, DryRun: dry})
		return err
	}
	for _, c := range []struct{ id, user string }{{"ipr-1", "calm_app app-1"}, {"ipr-2", "being created by operation"}} {
		for _, dry := range []bool{false, true} {
			p := refusal(t, del(c.id, dry))
			if p.Type != api.ProblemInUse || p.Status != http.StatusConflict || !strings.Contains(p.Detail, c.user) {
				t.Fatalf("delete %s (dry run %v): %+v", c.id, dry, p)
			}
		}
	}
	if err := f.book.DeleteResource(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if err := del("ipr-1", false); err != nil {
		t.Fatalf("delete once nothing uses it: %v", err)
	}
}

type nopRecorder struct{ committed int }

func (r *nopRecorder) Commit(int, string) error               { r.committed++; return nil }
func (r *nopRecorder) FollowUp(context.Context, int, string)  {}
func (r *nopRecorder) Note(func(*audit.Record))               {}
func (nopQueue) Enqueue(context.Context, api.Operation) error { return nil }
func (nopQueue) Wake(context.Context, api.Operation) error    { return nil }

type nopQueue struct{}

// One caller cannot hold every module-run worker: past the kind's bound on
// unfinished operations a new one is refused (429, nothing audited as
// accepted), while a replay of an accepted request still answers.
func TestUnfinishedOperationsArePerCallerBounded(t *testing.T) {
	f := newGate(t)
	f.gate.Queue = nopQueue{}
	ctx := context.Background()
	owner := who("busy", sbx)
	k, _ := api.KindByName(api.KindModuleRun)
	limit := k.Settings.MaxUnfinishedPerCaller
	if limit <= 0 {
		t.Fatal("module runs have no per-caller bound")
	}
	run := func(i int, key string) (admission.Committed, *nopRecorder, error) {
		body := []byte(fmt.Sprintf(`{"name":"run-%d","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"s%d"}}`, i, i))
		a, err := f.gate.Admit(ctx, admission.Request{Caller: owner, Bundle: sbx, Environment: "sbx", Kind: api.KindModuleRun,
			Action: admission.Create, Body: body, RequestID: fmt.Sprintf("r%d", i), IdempotencyKey: key})
		if err != nil || !a.Decision.Allow {
			t.Fatalf("run %d: %+v %v", i, a.Decision, err)
		}
		rec := &nopRecorder{}
		c, err := f.gate.Commit(ctx, a, rec)
		return c, rec, err
	}
	for i := range limit {
		if c, _, err := run(i, fmt.Sprintf("k%d", i)); err != nil || !c.New {
			t.Fatalf("run %d within the bound: %+v %v", i, c, err)
		}
	}
	_, rec, err := run(limit, "one-too-many")
	if p := refusal(t, err); p.Type != api.ProblemTooManyUnfinished || p.Status != http.StatusTooManyRequests || rec.committed != 0 {
		t.Fatalf("run past the bound: %+v (audit committed %d times)", p, rec.committed)
	}
	if c, _, err := run(0, "k0"); err != nil || c.New || c.Operation.ID == "" {
		t.Fatalf("a replay at the bound: %+v %v", c, err)
	}
	// Another caller is not held back by this one.
	other := who("idle", sbx)
	a, err := f.gate.Admit(ctx, admission.Request{Caller: other, Bundle: sbx, Environment: "sbx", Kind: api.KindModuleRun, Action: admission.Create,
		Body: []byte(`{"name":"other","module":"platform/maintenance-window","version":"1.1.0","inputs":{"service":"o"}}`), RequestID: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.gate.Commit(ctx, a, &nopRecorder{}); err != nil || !c.New {
		t.Fatalf("another caller: %+v %v", c, err)
	}
}
