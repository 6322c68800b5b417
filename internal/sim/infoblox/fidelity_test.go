package infoblox_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ibclient "github.com/infobloxopen/infoblox-go-client/v2"

	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	ibsim "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/sim/simtls"
)

// TestVendorClientFidelity drives the simulator with Infoblox's own Go
// client (the one behind their Terraform provider), over TLS as it expects:
// create a host record with the next available IP (string and object
// forms), read it, search it by extensible attribute, update it, delete it.
func TestVendorClientFidelity(t *testing.T) {
	sim, err := ibsim.New(ibsim.Options{
		Users:    map[string]string{"admin": "infoblox"},
		Networks: []ibsim.SeedNetwork{{Network: "10.60.0.0/24", Comment: "vendor fidelity"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var paths []string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	defer ts.Close()
	u, _ := url.Parse(ts.URL)
	host, port, _ := net.SplitHostPort(u.Host)

	conn, err := ibclient.NewConnector(
		ibclient.HostConfig{Host: host, Port: port, Version: "2.12"}, // https is the client's default
		ibclient.AuthConfig{Username: "admin", Password: "infoblox"},
		ibclient.NewTransportConfig("false", 20, 10),
		&ibclient.WapiRequestBuilder{}, &ibclient.WapiHttpRequestor{})
	if err != nil {
		t.Fatal(err)
	}
	om := ibclient.NewObjectManager(conn, "sas", "fidelity")

	// The vendor's provider keys ownership on this attribute, which the
	// grid must define first.
	const idEA = "Terraform Internal ID"
	eaName, eaComment := idEA, "vendor provider ownership"
	if _, err := om.CreateEADefinition(ibclient.EADefinition{Name: &eaName, Type: "STRING", Comment: &eaComment}); err != nil {
		t.Fatalf("CreateEADefinition: %v", err)
	}
	if def, err := om.GetEADefinition(idEA); err != nil || def == nil || *def.Name != idEA || def.Type != "STRING" {
		t.Fatalf("GetEADefinition: %+v %v", def, err)
	}
	if nv, err := om.GetNetworkView("default"); err != nil || nv.Name == nil || *nv.Name != "default" {
		t.Fatalf("GetNetworkView: %+v %v", nv, err)
	}
	if n, err := om.GetNetwork("default", "10.60.0.0/24", false, nil); err != nil || n.Cidr != "10.60.0.0/24" || n.Comment != "vendor fidelity" {
		t.Fatalf("GetNetwork: %+v %v", n, err)
	}

	// String form: CreateHostRecord turns a CIDR into func:nextavailableip.
	h, err := om.CreateHostRecord(true, false, "vm1.example.com", "default", "default",
		"10.60.0.0/24", "", "", "", "aa:bb:cc:dd:ee:01", "", false, 0, "created by the vendor client",
		ibclient.EA{idEA: "uuid-0001"}, []string{}, false)
	if err != nil {
		t.Fatalf("CreateHostRecord: %v", err)
	}
	if len(h.Ipv4Addrs) != 1 || *h.Ipv4Addrs[0].Ipv4Addr != "10.60.0.1" || *h.Name != "vm1.example.com" ||
		h.Ea[idEA] != "uuid-0001" || *h.Comment != "created by the vendor client" || *h.View != "default" {
		t.Fatalf("CreateHostRecord returned %+v", h)
	}
	if mac := h.Ipv4Addrs[0].Mac; mac == nil || *mac != "aa:bb:cc:dd:ee:01" {
		t.Fatalf("MAC %v", mac)
	}
	ref := h.Ref

	// Object form: AllocateNextAvailableIp sends _object_function.
	n2, err := om.AllocateNextAvailableIp("vm2.example.com", "record:host",
		map[string]string{"network": "10.60.0.0/24", "network_view": "default"}, nil, false,
		ibclient.EA{idEA: "uuid-0002"}, "object form", false, nil, "IPV4", true, false, "", "", "default", "default",
		false, 0, nil)
	if err != nil {
		t.Fatalf("AllocateNextAvailableIp: %v", err)
	}
	h2 := n2.(*ibclient.HostRecord)
	if *h2.Ipv4Addrs[0].Ipv4Addr != "10.60.0.2" {
		t.Fatalf("object form allocated %s", *h2.Ipv4Addrs[0].Ipv4Addr)
	}

	// Read back three ways.
	byRef, err := om.GetHostRecordByRef(ref)
	if err != nil || byRef.Ref != ref || *byRef.Ipv4Addrs[0].Ipv4Addr != "10.60.0.1" {
		t.Fatalf("GetHostRecordByRef: %+v %v", byRef, err)
	}
	byName, err := om.GetHostRecord("default", "default", "vm1.example.com", "10.60.0.1", "")
	if err != nil || byName == nil || byName.Ref != ref {
		t.Fatalf("GetHostRecord: %+v %v", byName, err)
	}
	byEA, err := om.SearchHostRecordByAltId("uuid-0001", "", idEA)
	if err != nil || byEA.Ref != ref {
		t.Fatalf("SearchHostRecordByAltId: %+v %v", byEA, err)
	}
	if _, err := om.SearchHostRecordByAltId("uuid-none", "", idEA); err == nil {
		t.Fatal("search for a missing attribute value found something")
	}

	// Update: rename, new MAC, comment, aliases, attributes (the client
	// sends _ref in the body and the whole object back).
	up, err := om.UpdateHostRecord(ref, true, false, "vm1-renamed.example.com", "default", "default", "", "",
		"10.60.0.1", "", "aa:bb:cc:dd:ee:99", "", false, 0, "updated by the vendor client",
		ibclient.EA{idEA: "uuid-0001", "Site": nil}, []string{"alias.example.com"}, false)
	if err == nil {
		t.Fatal("UpdateHostRecord with an undefined extensible attribute succeeded")
	}
	var nf *ibclient.NotFoundError
	if errors.As(err, &nf) || !strings.Contains(err.Error(), "Unknown extensible attribute: Site") {
		t.Fatalf("undefined attribute error: %v", err)
	}
	up, err = om.UpdateHostRecord(ref, true, false, "vm1-renamed.example.com", "default", "default", "", "",
		"10.60.0.1", "", "aa:bb:cc:dd:ee:99", "", false, 0, "updated by the vendor client",
		ibclient.EA{idEA: "uuid-0001"}, []string{"alias.example.com"}, false)
	if err != nil {
		t.Fatalf("UpdateHostRecord: %v", err)
	}
	if *up.Name != "vm1-renamed.example.com" || *up.Comment != "updated by the vendor client" ||
		len(up.Aliases) != 1 || *up.Ipv4Addrs[0].Mac != "aa:bb:cc:dd:ee:99" || *up.Ipv4Addrs[0].Ipv4Addr != "10.60.0.1" {
		t.Fatalf("UpdateHostRecord returned %+v", up)
	}
	if up.Ref == ref {
		t.Fatal("renaming kept the reference; the appliance's changes")
	}
	if _, err := om.GetHostRecordByRef(ref); !errors.As(err, &nf) {
		t.Fatalf("old reference after rename: %v (want the vendor's NotFoundError from a 404)", err)
	}

	// Delete, then the reference is gone.
	if del, err := om.DeleteHostRecord(up.Ref); err != nil || del != up.Ref {
		t.Fatalf("DeleteHostRecord: %q %v", del, err)
	}
	if _, err := om.GetHostRecordByRef(up.Ref); !errors.As(err, &nf) {
		t.Fatalf("GetHostRecordByRef after delete: %v", err)
	}
	if _, err := om.DeleteHostRecord(h2.Ref); err != nil {
		t.Fatalf("DeleteHostRecord(object form host): %v", err)
	}
	if err := conn.Logout(); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if len(sim.Hosts()) != 0 {
		t.Fatalf("hosts left: %+v", sim.Hosts())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if !strings.Contains(p, "/wapi/v2.12/") {
			t.Errorf("vendor client called %s", p)
		}
	}
}

// The simulator serves HTTPS itself, as a grid master does: the vendor's
// client trusting only the simulator's CA (a file, as its provider takes
// it) and sas's own client with the CA's PEM both reach it; a client that
// trusts only the system's roots is refused at the handshake.
func TestServesTLSAsAGridDoes(t *testing.T) {
	b, err := simtls.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := b.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	sim, err := ibsim.New(ibsim.Options{
		Users:     map[string]string{"admin": "infoblox"},
		Networks:  []ibsim.SeedNetwork{{Network: "10.61.0.0/24", Comment: "tls"}},
		TLSConfig: b.ServerConfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("URL %s is not https", base)
	}
	u, _ := url.Parse(base)
	host, port, _ := net.SplitHostPort(u.Host)

	conn, err := ibclient.NewConnector(
		ibclient.HostConfig{Host: host, Port: port, Version: "2.12"},
		ibclient.AuthConfig{Username: "admin", Password: "infoblox"},
		ibclient.NewTransportConfig(caFile, 20, 10),
		&ibclient.WapiRequestBuilder{}, &ibclient.WapiHttpRequestor{})
	if err != nil {
		t.Fatal(err)
	}
	om := ibclient.NewObjectManager(conn, "sas", "fidelity")
	if n, err := om.GetNetwork("default", "10.61.0.0/24", false, nil); err != nil || n.Cidr != "10.61.0.0/24" {
		t.Fatalf("vendor client over TLS: GetNetwork = %+v, %v", n, err)
	}

	creds := infoblox.Credentials{Username: "admin", Password: "infoblox"}
	ours, err := infoblox.New(infoblox.Config{URL: base, Credentials: creds, CACertPEM: b.CAPEM})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ours.FindHostsByEA(context.Background(), infoblox.AttrRequestID, "none"); err != nil {
		t.Fatalf("sas client trusting the simulator's CA: %v", err)
	}
	untrusting, err := infoblox.New(infoblox.Config{URL: base, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	_, err = untrusting.FindHostsByEA(context.Background(), infoblox.AttrRequestID, "none")
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("a client without the simulator's CA: err = %v, want an unknown-authority refusal", err)
	}
}
