package operations_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

func create(hostname, comment string) operations.New {
	req := &api.IPReservationRequest{Network: "sbx-app", Hostname: hostname, DNSZone: "sbx.example.internal", Comment: comment}
	raw, _ := json.Marshal(req)
	return operations.New{Kind: api.KindIPReservation, Action: api.ActionCreate, OwnerEntityID: "e1", Owner: "alice",
		Bundle: "fedramp_sbx_default", Environment: "sbx", RequestID: "req-" + hostname, Request: raw, Object: req}
}

// A resource stored before natural keys existed (schema 4) gets its key at
// start-up, and a repeated create of it is then adopted, not made again.
func TestBackfilledResourcesAreAdopted(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			book := operations.NewBook(storetest.Open(t, driver))
			old := create("legacy-01", "from 4")
			if err := book.PutResource(ctx, operations.Resource{ID: "ipr-legacy", Kind: old.Kind, OwnerEntityID: old.OwnerEntityID, Owner: old.Owner,
				Bundle: old.Bundle, Environment: old.Environment, Spec: old.Request, Attributes: map[string]any{"ip_address": "10.10.0.5"},
				OperationID: "op-legacy"}); err != nil {
				t.Fatal(err)
			}
			// Before the backfill the old resource is invisible to its key.
			if res, err := book.Resolve(ctx, old); err != nil || res.Outcome != operations.Created {
				t.Fatalf("before the backfill: %+v %v", res, err)
			}
			n, err := book.BackfillNaturalKeys(ctx)
			if err != nil || n != 1 {
				t.Fatalf("backfill: %d %v", n, err)
			}
			if n, err := book.BackfillNaturalKeys(ctx); err != nil || n != 0 {
				t.Fatalf("second backfill: %d %v (want nothing left to do)", n, err)
			}
			op, outcome, err := book.Create(ctx, old)
			if err != nil || outcome != operations.Adopted || op.Result["resource_id"] != "ipr-legacy" || op.Result["ip_address"] != "10.10.0.5" {
				t.Fatalf("repeated create after the backfill: %s %+v %v", outcome, op, err)
			}
		})
	}
}

// The resolution rules in order, without HTTP: replay, join, adopt,
// conflicts that say why, and the conflict with an object being deleted.
func TestResolutionRules(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			book := operations.NewBook(storetest.Open(t, driver))
			n := create("web-01", "a")
			n.IdempotencyKey = "k1"
			first, outcome, err := book.Create(ctx, n)
			if err != nil || outcome != operations.Created {
				t.Fatalf("first create: %s %v", outcome, err)
			}
			if _, outcome, _ := book.Create(ctx, n); outcome != operations.Replayed {
				t.Fatalf("same key: %s, want replayed", outcome)
			}
			other := create("web-01", "a")
			if op, outcome, _ := book.Create(ctx, other); outcome != operations.Joined || op.ID != first.ID {
				t.Fatalf("same object, no key, while unfinished: %s %s, want joined %s", outcome, op.ID, first.ID)
			}
			var conflict *operations.ConflictError
			if _, _, err := book.Create(ctx, create("web-01", "b")); !errors.As(err, &conflict) || conflict.OperationID != first.ID {
				t.Fatalf("other spec while unfinished: %v, want a conflict naming %s", err, first.ID)
			}

			// The create finishes: the resource exists.
			if err := book.PutResource(ctx, operations.Resource{ID: "ipr-1", Kind: n.Kind, OwnerEntityID: "e1", Owner: "alice", Bundle: n.Bundle,
				Environment: n.Environment, Spec: n.Request, Attributes: map[string]any{}, OperationID: first.ID, NaturalKey: n.Object.NaturalKey()}); err != nil {
				t.Fatal(err)
			}
			if err := book.Finish(ctx, first.ID, api.OperationSucceeded, map[string]any{"resource_id": "ipr-1"}, ""); err != nil {
				t.Fatal(err)
			}
			if _, outcome, err := book.Create(ctx, create("web-01", "a")); err != nil || outcome != operations.Adopted {
				t.Fatalf("same object after it exists: %s %v, want adopted", outcome, err)
			}
			stranger := create("web-01", "a")
			stranger.OwnerEntityID, stranger.Owner = "e2", "mallory"
			if _, _, err := book.Create(ctx, stranger); !errors.As(err, &conflict) || conflict.ResourceID != "" || conflict.OperationID != "" {
				t.Fatalf("another owner: %v, want a conflict that names nothing of the owner's", err)
			}
			elsewhere := create("web-01", "a")
			elsewhere.Bundle, elsewhere.Environment = "fedramp_dev_default", "dev"
			if _, _, err := book.Create(ctx, elsewhere); !errors.As(err, &conflict) || conflict.ResourceID != "ipr-1" {
				t.Fatalf("another bundle and environment: %v, want a conflict naming ipr-1", err)
			}

			del := operations.New{Kind: n.Kind, Action: api.ActionDelete, TargetID: "ipr-1", OwnerEntityID: "e1", Owner: "alice",
				Bundle: n.Bundle, Environment: n.Environment, RequestID: "req-del", Request: []byte(`{}`)}
			if _, outcome, err := book.Create(ctx, del); err != nil || outcome != operations.Created {
				t.Fatalf("delete: %s %v", outcome, err)
			}
			if _, _, err := book.Create(ctx, create("web-01", "a")); !errors.As(err, &conflict) {
				t.Fatalf("create while the object is being deleted: %v, want a conflict", err)
			}
		})
	}
}
