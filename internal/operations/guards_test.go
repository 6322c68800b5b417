package operations_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

// A delete of a reservation and creates of apps on it, sent at once (as
// two replicas would store them): either the delete is stored and every
// app refused, or apps are stored and the delete refused — never both.
// And concurrent creates never pass a caller's bound together.
func TestGuardsHoldUnderConcurrentRequests(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			book := operations.NewBook(storetest.Open(t, driver))
			for round := range 5 {
				ipr := fmt.Sprintf("ipr-%d", round)
				if err := book.PutResource(ctx, operations.Resource{ID: ipr, Kind: api.KindIPReservation, OwnerEntityID: "e1", Owner: "alice",
					Bundle: "b", Environment: "sbx", Spec: []byte(`{"network":"sbx-app"}`), Attributes: map[string]any{}, OperationID: "op-" + ipr}); err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				stored := map[string]int{}
				var wg sync.WaitGroup
				try := func(n operations.New) {
					defer wg.Done()
					_, got, err := book.Create(ctx, n)
					var inUse *operations.InUseError
					switch {
					case err == nil && got == operations.Created:
						mu.Lock()
						stored[n.Action]++
						mu.Unlock()
					case errors.As(err, &inUse):
					default:
						t.Errorf("%s: %v %v", n.Action, got, err)
					}
				}
				wg.Add(5)
				go try(operations.New{Kind: api.KindIPReservation, Action: api.ActionDelete, TargetID: ipr, OwnerEntityID: "e1", Owner: "alice",
					Bundle: "b", Environment: "sbx", RequestID: "del-" + ipr, Request: []byte(`{}`)})
				for i := range 4 {
					go try(operations.New{Kind: api.KindCalmApp, Action: api.ActionCreate, OwnerEntityID: "e1", Owner: "alice", Bundle: "b", Environment: "sbx",
						RequestID: fmt.Sprintf("app-%d-%d", round, i), Request: fmt.Appendf(nil, `{"name":"a%d","ip_reservation":%q}`, i, ipr),
						Refers: []operations.Ref{{Kind: api.KindIPReservation, ID: ipr}}})
				}
				wg.Wait()
				if stored[api.ActionDelete] > 0 && stored[api.ActionCreate] > 0 || stored[api.ActionDelete]+stored[api.ActionCreate] == 0 {
					t.Fatalf("round %d: stored %v; want the delete alone or creates alone", round, stored)
				}
			}

			const bound = 3
			var wg sync.WaitGroup
			var mu sync.Mutex
			accepted := 0
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, got, err := book.Create(ctx, operations.New{Kind: api.KindModuleRun, Action: api.ActionCreate, OwnerEntityID: "e2", Owner: "bob",
						Bundle: "b", Environment: "sbx", RequestID: fmt.Sprintf("run-%d", i), Request: fmt.Appendf(nil, `{"name":"r%d"}`, i), MaxUnfinished: bound})
					var limit *operations.CallerLimitError
					switch {
					case err == nil && got == operations.Created:
						mu.Lock()
						accepted++
						mu.Unlock()
					case !errors.As(err, &limit):
						t.Errorf("run %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if accepted != bound {
				t.Fatalf("%d runs stored at once for one caller; the bound is %d", accepted, bound)
			}
		})
	}
}
