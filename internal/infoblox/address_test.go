package infoblox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	ibsim "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
)

func addressSpec(name, network, req string) infoblox.AddressSpec {
	return infoblox.AddressSpec{Name: name, Network: network, HeldFor: "calm_app sas-sbx/" + name, Tags: tags(req)}
}

// An address held without DNS is a host record with configure_for_dns
// false and no view, allocated by the grid from the network like any host
// (so a later CreateHost never gets it), tagged with its request and what
// it is held for; a retry of the same request gets the same host back,
// another request's name clash is the grid's conflict, and DeleteHost
// frees the address.
func TestReserveAddressHoldsAnAddressWithoutDNS(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.40.0.0/29"}}})
	var mu sync.Mutex
	var posted []map[string]any
	g.inject = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/record:host") {
			raw, _ := io.ReadAll(r.Body)
			var b map[string]any
			_ = json.Unmarshal(raw, &b)
			mu.Lock()
			posted = append(posted, b)
			mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(raw)))
		}
		return false
	}
	c := g.client()
	ctx := context.Background()

	dns, err := c.CreateHost(ctx, spec("dns.example.com", "10.40.0.0/29", "req-dns"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.ReserveAddress(ctx, addressSpec("app-1.req-1.calm.invalid", "10.40.0.0/29", "req-1"))
	if err != nil {
		t.Fatal(err)
	}
	if h.IPv4() == "" || h.IPv4() == dns.IPv4() || h.ConfigureForDNS || !strings.HasPrefix(h.Ref, "record:host/") {
		t.Fatalf("held %+v (the DNS host has %s)", h, dns.IPv4())
	}
	if h.EAs[infoblox.AttrHeldFor] != "calm_app sas-sbx/app-1.req-1.calm.invalid" || h.EAs[infoblox.AttrRequestID] != "req-1" ||
		h.EAs[infoblox.AttrManaged] != infoblox.ManagedValue || h.EAs[infoblox.AttrOwner] != "alice@example.com" {
		t.Fatalf("attributes %v", h.EAs)
	}
	mu.Lock()
	last := posted[len(posted)-1]
	mu.Unlock()
	if _, ok := last["view"]; ok || last["configure_for_dns"] != false {
		t.Fatalf("the create sent %v: want configure_for_dns false and no DNS view", last)
	}

	found, err := c.FindHostsByEA(ctx, infoblox.AttrRequestID, "req-1")
	if err != nil || len(found) != 1 || found[0].Ref != h.Ref {
		t.Fatalf("by its request tag: %+v %v", found, err)
	}
	again, err := c.ReserveAddress(ctx, addressSpec("app-1.req-1.calm.invalid", "10.40.0.0/29", "req-1"))
	if err != nil || again.Ref != h.Ref || again.IPv4() != h.IPv4() {
		t.Fatalf("the same request again: %+v %v", again, err)
	}
	if _, err := c.ReserveAddress(ctx, addressSpec("app-1.req-1.calm.invalid", "10.40.0.0/29", "req-2")); !infoblox.IsConflict(err) {
		t.Fatalf("another request's clash: %v", err)
	}
	// The held address is used: a DNS host never gets it.
	for i := range 3 {
		other, err := c.CreateHost(ctx, spec("h"+string(rune('a'+i))+".example.com", "10.40.0.0/29", "req-h"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		if other.IPv4() == h.IPv4() {
			t.Fatalf("host %s got the held address %s", other.Name, h.IPv4())
		}
	}
	if err := c.DeleteHost(ctx, h.Ref); err != nil {
		t.Fatal(err)
	}
	freed, err := c.CreateHost(ctx, spec("freed.example.com", "10.40.0.0/29", "req-freed"))
	if err != nil || freed.IPv4() != h.IPv4() {
		t.Fatalf("after the release: %+v %v, want %s", freed, err, h.IPv4())
	}

	if _, err := c.ReserveAddress(ctx, infoblox.AddressSpec{Name: "x", Network: "10.40.0.0/29", Tags: tags("r")}); err == nil {
		t.Fatal("an address held for nothing was accepted")
	}
}
