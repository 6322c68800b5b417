package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// fakePrivate is private state as the framework keeps it between RPCs.
type fakePrivate map[string][]byte

func (f fakePrivate) GetKey(_ context.Context, k string) ([]byte, diag.Diagnostics) { return f[k], nil }
func (f fakePrivate) SetKey(_ context.Context, k string, v []byte) diag.Diagnostics {
	if v == nil {
		delete(f, k)
	} else {
		f[k] = v
	}
	return nil
}

// A request retried after an interrupted apply is sent with the key the
// first try stored — so the gateway answers with the original operation —
// while another request, or one after the first ended, gets a new key.
func TestIdempotencyKeyReadBackFromPrivateState(t *testing.T) {
	ctx := context.Background()
	upd := func(comment string) mutation {
		return mutation{kind: api.KindIPReservation, action: api.ActionUpdate, id: "ipr-1", body: api.IPReservationUpdate{Comment: &comment}}
	}
	first := fakePrivate{}
	k1, d := upd("a").key(ctx, nil, first)
	if d.HasError() || k1 == "" || len(first) != 1 {
		t.Fatalf("first key %q, private %v, %v", k1, first, d)
	}
	// The apply died before the update ended: the next one carries this private state.
	retried := fakePrivate{}
	k2, _ := upd("a").key(ctx, first, retried)
	if k2 != k1 {
		t.Fatalf("retry of the same update got key %q, want the stored %q", k2, k1)
	}
	if k3, _ := upd("b").key(ctx, first, fakePrivate{}); k3 == k1 {
		t.Fatal("another update reused the first update's key")
	}
	del := mutation{kind: api.KindIPReservation, action: api.ActionDelete, id: "ipr-1"}
	if k4, _ := del.key(ctx, first, fakePrivate{}); k4 == k1 {
		t.Fatal("a delete reused the update's key")
	}
	_ = forgetKey(ctx, retried, api.ActionUpdate)
	if k5, _ := upd("a").key(ctx, retried, fakePrivate{}); k5 == k1 {
		t.Fatal("a key was reused after its operation ended")
	}
}
