package infoblox_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	ibsim "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
)

const (
	gridUser = "sas-orchestrator"
	gridPass = "Sup3r-S3cret-Pa55word!"
)

// grid is a simulator behind an httptest server, with a recorder in front
// that counts calls and can inject answers.
type grid struct {
	t   *testing.T
	sim *ibsim.Server
	ts  *httptest.Server

	mu     sync.Mutex
	calls  map[string]int // "METHOD objtype"
	agents map[string]bool
	inject func(w http.ResponseWriter, r *http.Request) bool // true = answered
}

func newGrid(t *testing.T, opts ibsim.Options) *grid {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{gridUser: gridPass, "admin": "admin-pass"}
	}
	sim, err := ibsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := &grid{t: t, sim: sim, calls: map[string]int{}, agents: map[string]bool{}}
	g.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj := strings.TrimPrefix(r.URL.Path, "/wapi/v2.12/")
		if i := strings.IndexByte(obj, '/'); i >= 0 {
			obj = obj[:i]
		}
		g.mu.Lock()
		g.calls[r.Method+" "+obj]++
		g.agents[r.Header.Get("User-Agent")] = true
		inject := g.inject
		g.mu.Unlock()
		if inject != nil && inject(w, r) {
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(g.ts.Close)
	return g
}

func (g *grid) count(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[key]
}

func (g *grid) client(mod ...func(*infoblox.Config)) *infoblox.Client {
	g.t.Helper()
	cfg := infoblox.Config{
		URL:          g.ts.URL + "/wapi/v2.12",
		Credentials:  infoblox.Credentials{Username: gridUser, Password: gridPass},
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := infoblox.New(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// admin changes objects behind sas's back, as a grid user would.
func (g *grid) admin(method, ref string, body any) {
	g.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, g.ts.URL+"/wapi/v2.12/"+ref, bytes.NewReader(b))
	req.SetBasicAuth("admin", "admin-pass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		g.t.Fatalf("admin %s %s: %d", method, ref, resp.StatusCode)
	}
}

func tags(req string) infoblox.Tags {
	return infoblox.Tags{Owner: "alice@example.com", RequestID: req, Bundle: "team-a", Environment: "dev"}
}

func spec(name, network, req string) infoblox.HostSpec {
	return infoblox.HostSpec{Name: name, Network: network, Tags: tags(req)}
}

func TestHostLifecycle(t *testing.T) {
	g := newGrid(t, ibsim.Options{
		Networks:      []ibsim.SeedNetwork{{Network: "10.10.0.0/24"}},
		EADefinitions: []ibsim.SeedEADefinition{{Name: "CostCenter"}},
	})
	c := g.client()
	ctx := context.Background()

	s := spec("vm1.example.com", "10.10.0.0/24", "req-1")
	s.MAC, s.Comment, s.Aliases = "AA:BB:CC:00:00:01", "web server", []string{"www.example.com"}
	s.EAs = map[string]string{"CostCenter": "42"}
	h, err := c.CreateHost(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if h.IPv4() != "10.10.0.1" || h.MAC() != "aa:bb:cc:00:00:01" || h.Name != "vm1.example.com" || h.View != "default" ||
		!strings.HasPrefix(h.Ref, "record:host/") || h.Comment != "web server" || len(h.Aliases) != 1 {
		t.Fatalf("created %+v", h)
	}
	for k, v := range tags("req-1").Attributes() {
		if h.EAs[k] != v {
			t.Errorf("EA %s = %q, want %q", k, h.EAs[k], v)
		}
	}
	if h.EAs["CostCenter"] != "42" {
		t.Errorf("own EA lost: %v", h.EAs)
	}
	if d := infoblox.CheckDrift(h, tags("req-1")); len(d) != 0 {
		t.Fatalf("fresh host drifts: %v", d)
	}
	if g.count("GET extensibleattributedef") != 1 || g.count("POST extensibleattributedef") != len(infoblox.DefinedAttributeNames()) {
		t.Fatalf("tag definitions were not ensured once: %v", g.calls)
	}

	got, err := c.GetHost(ctx, h.Ref)
	if err != nil || got.IPv4() != h.IPv4() || got.EAs[infoblox.AttrRequestID] != "req-1" {
		t.Fatalf("GetHost: %+v %v", got, err)
	}
	found, err := c.FindHostsByEA(ctx, infoblox.AttrRequestID, "req-1")
	if err != nil || len(found) != 1 || found[0].Ref != h.Ref {
		t.Fatalf("FindHostsByEA: %+v %v", found, err)
	}
	byName, err := c.FindHostByName(ctx, "VM1.example.com", "")
	if err != nil || byName.Ref != h.Ref {
		t.Fatalf("FindHostByName: %+v %v", byName, err)
	}
	if _, err := c.FindHostByName(ctx, "nope.example.com", ""); !infoblox.IsNotFound(err) {
		t.Fatalf("FindHostByName of a missing host: %v", err)
	}

	mac, comment, aliases := "aa:bb:cc:00:00:99", "db server", []string{}
	u, err := c.UpdateHost(ctx, h.Ref, infoblox.HostUpdate{MAC: &mac, Comment: &comment, Aliases: &aliases,
		EAs: map[string]string{"CostCenter": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.MAC() != mac || u.IPv4() != "10.10.0.1" || u.Comment != comment || len(u.Aliases) != 0 ||
		u.EAs["CostCenter"] != "7" || u.EAs[infoblox.AttrOwner] != "alice@example.com" {
		t.Fatalf("after update %+v", u)
	}
	if _, err := c.UpdateHost(ctx, h.Ref, infoblox.HostUpdate{EAs: map[string]string{infoblox.AttrOwner: "me"}}); err == nil {
		t.Fatal("update of a SAS- attribute through EAs accepted")
	}

	ips, err := c.NextAvailableIPs(ctx, "10.10.0.0/24", "", 3, []string{"10.10.0.3"})
	if err != nil || strings.Join(ips, ",") != "10.10.0.2,10.10.0.4,10.10.0.5" {
		t.Fatalf("NextAvailableIPs: %v %v", ips, err)
	}

	if err := c.DeleteHost(ctx, h.Ref); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetHost(ctx, h.Ref); !infoblox.IsNotFound(err) {
		t.Fatalf("GetHost after delete: %v", err)
	}
	err = c.DeleteHost(ctx, h.Ref)
	if !errors.Is(err, infoblox.ErrAlreadyGone) || !infoblox.IsNotFound(err) || infoblox.IsTransient(err) {
		t.Fatalf("second delete: %v", err)
	}
	if !g.agents["sas-gateway"] || len(g.agents) != 1 {
		t.Fatalf("user agents %v", g.agents)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if g.count("POST logout") != 1 {
		t.Fatalf("Close did not log out: %v", g.calls)
	}
}

func TestConcurrentCreatesGetDistinctAddressesUntilTheNetworkIsFull(t *testing.T) {
	g := newGrid(t, ibsim.Options{
		StatePath:     filepath.Join(t.TempDir(), "grid.json"),
		Networks:      []ibsim.SeedNetwork{{Network: "10.20.0.0/26"}}, // 62 usable
		EADefinitions: seedTagDefs(),
	})
	c := g.client()
	ctx := context.Background()

	create := func(from, n int) (hosts []infoblox.Host, errs []error) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := from; i < from+n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				h, err := c.CreateHost(ctx, spec(fmt.Sprintf("c%02d.example.com", i), "10.20.0.0/26", fmt.Sprintf("req-%d", i)))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else {
					hosts = append(hosts, h)
				}
			}(i)
		}
		wg.Wait()
		return hosts, errs
	}
	first, errs := create(0, 50)
	if len(errs) != 0 || len(first) != 50 {
		t.Fatalf("50 concurrent creates: %d ok, errors %v", len(first), errs)
	}
	rest, errs := create(50, 20)
	if len(rest) != 12 || len(errs) != 8 {
		t.Fatalf("20 more: %d ok, %d failed (%v)", len(rest), len(errs), errs)
	}
	for _, err := range errs {
		var ae *infoblox.APIError
		if !errors.As(err, &ae) || !infoblox.IsNetworkFull(err) || infoblox.IsTransient(err) || ae.Status != 400 ||
			ae.Code != "Client.Ibap.Data" || ae.Text != "Cannot find 1 available IP address(es) in this network." {
			t.Fatalf("exhausted error %#v", err)
		}
	}
	seen := map[string]string{}
	for _, h := range append(first, rest...) {
		if other, dup := seen[h.IPv4()]; dup {
			t.Fatalf("%s and %s both got %s", other, h.Name, h.IPv4())
		}
		seen[h.IPv4()] = h.Name
	}
	if len(seen) != 62 {
		t.Fatalf("%d distinct addresses, want 62", len(seen))
	}
	var ips []string
	for ip := range seen {
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool {
		return len(ips[i]) < len(ips[j]) || (len(ips[i]) == len(ips[j]) && ips[i] < ips[j])
	})
	if ips[0] != "10.20.0.1" || ips[61] != "10.20.0.62" {
		t.Fatalf("addresses span %s..%s, want .1..62 (network and broadcast skipped)", ips[0], ips[61])
	}
}

func seedTagDefs() []ibsim.SeedEADefinition {
	var out []ibsim.SeedEADefinition
	for _, n := range infoblox.TagAttributeNames() {
		out = append(out, ibsim.SeedEADefinition{Name: n})
	}
	return out
}

func TestDuplicateNameConflictsUnlessItIsTheSameRequest(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.30.0.0/24"}}, EADefinitions: seedTagDefs()})
	c := g.client()
	ctx := context.Background()
	h, err := c.CreateHost(ctx, spec("dup.example.com", "10.30.0.0/24", "req-a"))
	if err != nil {
		t.Fatal(err)
	}
	postsBefore := g.count("POST record:host")
	_, err = c.CreateHost(ctx, spec("DUP.example.com", "10.30.0.0/24", "req-b"))
	var ae *infoblox.APIError
	if !infoblox.IsConflict(err) || !errors.As(err, &ae) || ae.Text != "The record 'DUP.example.com' already exists." || infoblox.IsTransient(err) {
		t.Fatalf("duplicate: %v", err)
	}
	if n := g.count("POST record:host") - postsBefore; n != 1 {
		t.Fatalf("a refused POST was sent %d times", n)
	}
	// The same request retried (e.g. after a lost answer) gets its host back.
	again, err := c.CreateHost(ctx, spec("dup.example.com", "10.30.0.0/24", "req-a"))
	if err != nil || again.Ref != h.Ref || again.IPv4() != h.IPv4() {
		t.Fatalf("retry of the same request: %+v %v", again, err)
	}
}

func TestNotFoundAndValidation(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.31.0.0/24"}}})
	c := g.client()
	ctx := context.Background()
	ref := "record:host/" + base64.RawURLEncoding.EncodeToString([]byte("dns.host$999$default.ghost.example.com")) + ":ghost.example.com/default"
	_, err := c.GetHost(ctx, ref)
	var ae *infoblox.APIError
	if !infoblox.IsNotFound(err) || !errors.As(err, &ae) || ae.Status != 404 || ae.Code != infoblox.CodeNotFound {
		t.Fatalf("unknown ref: %v", err)
	}
	if _, err := c.GetNetworkByCIDR(ctx, "10.99.0.0/24", ""); !infoblox.IsNotFound(err) {
		t.Fatalf("unknown network: %v", err)
	}
	if _, err := c.CreateHost(ctx, infoblox.HostSpec{Name: "x.example.com", Network: "10.31.0.0/24"}); err == nil ||
		!strings.Contains(err.Error(), "tags incomplete") {
		t.Fatalf("untagged create: %v", err)
	}
	s := spec("x.example.com", "10.31.0.0/24", "r")
	s.EAs = map[string]string{"SAS-Owner": "me"}
	if _, err := c.CreateHost(ctx, s); err == nil {
		t.Fatal("reserved attribute accepted")
	}
	// A network the grid does not have is the grid's own Proto error.
	_, err = c.CreateHost(ctx, spec("y.example.com", "10.77.0.0/24", "r"))
	if !errors.As(err, &ae) || ae.Code != infoblox.CodeProto || !strings.Contains(ae.Text, "does not match any unique networks") {
		t.Fatalf("missing network: %v", err)
	}
}

func TestBadCredentialsAreUnauthorizedAndNeverLeak(t *testing.T) {
	g := newGrid(t, ibsim.Options{})
	c := g.client(func(cfg *infoblox.Config) { cfg.Credentials.Password = "Wr0ng-But-Secret!" })
	_, err := c.GetNetworkByCIDR(context.Background(), "10.0.0.0/24", "")
	if !infoblox.IsUnauthorized(err) || infoblox.IsTransient(err) {
		t.Fatalf("bad credentials: %v", err)
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "HTML") {
		t.Fatalf("401 error does not say what happened: %v", err)
	}
	if g.count("GET network") != 1 {
		t.Fatalf("a 401 was retried: %v", g.calls)
	}
	assertNoSecret(t, err, "Wr0ng-But-Secret!")
}

func assertNoSecret(t *testing.T, v any, secrets ...string) {
	t.Helper()
	for _, form := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(form, v)
		for _, secret := range append(secrets, gridPass) {
			basic := base64.StdEncoding.EncodeToString([]byte(gridUser + ":" + secret))
			if strings.Contains(s, secret) || strings.Contains(s, basic) {
				t.Fatalf("secret in %s output: %s", form, s)
			}
		}
	}
}

func TestSecretsNeverInErrorsOrConfig(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.32.0.0/30"}}, EADefinitions: seedTagDefs()})
	ctx := context.Background()
	c := g.client(func(cfg *infoblox.Config) { cfg.RetryMax = 1 })

	cfg := infoblox.Config{URL: g.ts.URL, Credentials: infoblox.Credentials{Username: gridUser, Password: gridPass}}
	assertNoSecret(t, cfg)
	assertNoSecret(t, cfg.Credentials)

	var errs []error
	_, err := c.CreateHost(ctx, spec("a.example.com", "10.32.0.0/30", "r1"))
	errs = append(errs, err) // nil: fine
	_, err = c.CreateHost(ctx, spec("b.example.com", "10.32.0.0/30", "r2"))
	_, err2 := c.CreateHost(ctx, spec("c.example.com", "10.32.0.0/30", "r3")) // full
	errs = append(errs, err, err2)
	_, err = c.GetHost(ctx, "record:host/bm9wZQ:nope/default")
	errs = append(errs, err)
	g.sim.SetFailRate(1)
	_, err = c.ListNetworks(ctx, infoblox.NetworkFilter{})
	errs = append(errs, err)
	g.sim.SetFailRate(0)

	// Unreachable grid.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dead, _ := infoblox.New(infoblox.Config{URL: "http://" + addr, Credentials: cfg.Credentials,
		RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	_, err = dead.GetNetworkByCIDR(ctx, "10.0.0.0/24", "")
	if !infoblox.IsTransient(err) {
		t.Fatalf("unreachable grid: %v is not transient", err)
	}
	errs = append(errs, err)

	// Credentials in the URL are refused without echoing them.
	_, err = infoblox.New(infoblox.Config{URL: "https://" + gridUser + ":" + gridPass + "@gm.example.com", Credentials: cfg.Credentials})
	if err == nil {
		t.Fatal("URL with user info accepted")
	}
	errs = append(errs, err)
	for _, e := range errs {
		if e != nil {
			assertNoSecret(t, e)
		}
	}
}

func TestFailRateOneRetriesThenReportsTransient(t *testing.T) {
	g := newGrid(t, ibsim.Options{FailRate: 1, Networks: []ibsim.SeedNetwork{{Network: "10.40.0.0/24"}}, EADefinitions: seedTagDefs()})
	c := g.client(func(cfg *infoblox.Config) { cfg.RetryMax = 3 })
	_, err := c.CreateHost(context.Background(), spec("f.example.com", "10.40.0.0/24", "r"))
	var ae *infoblox.APIError
	if !infoblox.IsTransient(err) || !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("FailRate=1: %v", err)
	}
	if n := g.count("POST record:host"); n != 4 {
		t.Fatalf("POST sent %d times, want 1 + 3 retries", n)
	}
	if len(g.sim.Hosts()) != 0 {
		t.Fatal("a host was created by a failed call")
	}
}

func TestFailRateThirtyPercentStillSucceeds(t *testing.T) {
	g := newGrid(t, ibsim.Options{FailRate: 0.3, Rand: mrand.New(mrand.NewPCG(7, 11)),
		Networks: []ibsim.SeedNetwork{{Network: "10.41.0.0/24"}}, EADefinitions: seedTagDefs()})
	c := g.client(func(cfg *infoblox.Config) { cfg.RetryMax = 8 })
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		h, err := c.CreateHost(ctx, spec(fmt.Sprintf("r%d.example.com", i), "10.41.0.0/24", fmt.Sprintf("req-%d", i)))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if _, err := c.GetHost(ctx, h.Ref); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if err := c.DeleteHost(ctx, h.Ref); err != nil && !errors.Is(err, infoblox.ErrAlreadyGone) {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if len(g.sim.Hosts()) != 0 {
		t.Fatalf("%d hosts left", len(g.sim.Hosts()))
	}
	if g.count("POST record:host") <= 20 {
		t.Fatalf("no retries happened (%d POSTs): is FailRate on?", g.count("POST record:host"))
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.42.0.0/24"}}})
	var once sync.Once
	g.inject = func(w http.ResponseWriter, r *http.Request) bool {
		hit := false
		once.Do(func() {
			hit = true
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		return hit
	}
	start := time.Now()
	if _, err := g.client().GetNetworkByCIDR(context.Background(), "10.42.0.0/24", ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After: 1", d)
	}
	if g.count("GET network") != 2 {
		t.Fatalf("calls %v", g.calls)
	}
}

func TestListNetworksFollowsPages(t *testing.T) {
	var seeds []ibsim.SeedNetwork
	for i := 0; i < 1203; i++ {
		ea := map[string]string{"Site": "a"}
		if i%3 == 0 {
			ea["Site"] = "b"
		}
		seeds = append(seeds, ibsim.SeedNetwork{Network: fmt.Sprintf("10.%d.%d.0/24", 50+i/256, i%256), EAs: ea})
	}
	g := newGrid(t, ibsim.Options{Networks: seeds})
	c := g.client(func(cfg *infoblox.Config) { cfg.PageSize = 250 })
	nets, err := c.ListNetworks(context.Background(), infoblox.NetworkFilter{})
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, n := range nets {
		distinct[n.CIDR] = true
	}
	if len(nets) != 1203 || len(distinct) != 1203 || g.count("GET network") != 5 {
		t.Fatalf("%d networks (%d distinct) in %d calls", len(nets), len(distinct), g.count("GET network"))
	}
	b, err := c.ListNetworks(context.Background(), infoblox.NetworkFilter{NetworkView: "default", EAs: map[string]string{"Site": "b"}})
	if err != nil || len(b) != 401 || b[0].EAs["Site"] != "b" {
		t.Fatalf("filtered: %d %v", len(b), err)
	}
}

func TestStateSurvivesSimulatorRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grid.json")
	opts := ibsim.Options{StatePath: path, Networks: []ibsim.SeedNetwork{{Network: "10.43.0.0/24"}}}
	g := newGrid(t, opts)
	h, err := g.client().CreateHost(context.Background(), spec("keep.example.com", "10.43.0.0/24", "req-keep"))
	if err != nil {
		t.Fatal(err)
	}
	g.ts.Close()

	g2 := newGrid(t, opts)
	c := g2.client()
	got, err := c.GetHost(context.Background(), h.Ref)
	if err != nil || got.IPv4() != "10.43.0.1" || got.EAs[infoblox.AttrRequestID] != "req-keep" {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	next, err := c.CreateHost(context.Background(), spec("next.example.com", "10.43.0.0/24", "req-next"))
	if err != nil || next.IPv4() != "10.43.0.2" {
		t.Fatalf("allocation after restart: %+v %v", next, err)
	}
}

func TestDriftDetection(t *testing.T) {
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.44.0.0/24"}},
		EADefinitions: append(seedTagDefs(), ibsim.SeedEADefinition{Name: "Note"})})
	c := g.client()
	ctx := context.Background()
	want := tags("req-d")
	h, err := c.CreateHost(ctx, infoblox.HostSpec{Name: "d.example.com", Network: "10.44.0.0/24", Tags: want})
	if err != nil {
		t.Fatal(err)
	}
	// Someone edits the host in the grid UI: changes the owner, removes the
	// bundle, adds an attribute of their own.
	g.admin("PUT", h.Ref, map[string]any{
		"extattrs+": map[string]any{infoblox.AttrOwner: map[string]any{"value": "mallory"}, "Note": map[string]any{"value": "mine"}},
		"extattrs-": map[string]any{infoblox.AttrBundle: map[string]any{}},
	})
	got, drift, err := c.ReadManagedHost(ctx, h.Ref, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 2 {
		t.Fatalf("drift %v", drift)
	}
	byField := map[string]infoblox.Drift{}
	for _, d := range drift {
		byField[d.Field] = d
	}
	if d := byField[infoblox.AttrOwner]; d.Kind != infoblox.DriftChanged || d.Want != want.Owner || d.Got != "mallory" {
		t.Fatalf("owner drift %+v", d)
	}
	if d := byField[infoblox.AttrBundle]; d.Kind != infoblox.DriftRemoved || d.Want != "team-a" {
		t.Fatalf("bundle drift %+v", d)
	}
	// Repair by re-asserting the tags; the foreign attribute stays.
	fixed, err := c.UpdateHost(ctx, got.Ref, infoblox.HostUpdate{Tags: &want})
	if err != nil || len(infoblox.CheckDrift(fixed, want)) != 0 || fixed.EAs["Note"] != "mine" {
		t.Fatalf("repair: %+v %v", fixed, err)
	}

	// Renamed outside sas: the reference changes; the read follows it.
	g.admin("PUT", h.Ref, map[string]any{"name": "renamed.example.com"})
	moved, drift, err := c.ReadManagedHost(ctx, h.Ref, want)
	if err != nil || moved.Name != "renamed.example.com" || len(drift) != 1 || drift[0].Kind != infoblox.DriftMoved || drift[0].Got != moved.Ref {
		t.Fatalf("after rename: %+v %v %v", moved, drift, err)
	}

	// Deleted outside sas: the resource is gone.
	g.admin("DELETE", moved.Ref, nil)
	if _, _, err := c.ReadManagedHost(ctx, moved.Ref, want); !infoblox.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	creds := infoblox.Credentials{Username: "u", Password: "p"}
	for _, cfg := range []infoblox.Config{
		{URL: "", Credentials: creds},
		{URL: "ftp://gm", Credentials: creds},
		{URL: "https://gm.example.com"},
	} {
		if _, err := infoblox.New(cfg); err == nil {
			t.Errorf("New(%v) accepted", cfg)
		}
	}
	// A host-only URL gets the WAPI path.
	g := newGrid(t, ibsim.Options{Networks: []ibsim.SeedNetwork{{Network: "10.45.0.0/24"}}})
	c, err := infoblox.New(infoblox.Config{URL: g.ts.URL, Credentials: infoblox.Credentials{Username: gridUser, Password: gridPass}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetNetworkByCIDR(context.Background(), "10.45.0.0/24", ""); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancellationIsNotTransient(t *testing.T) {
	g := newGrid(t, ibsim.Options{Latency: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := g.client().GetNetworkByCIDR(ctx, "10.0.0.0/24", "")
	if err == nil || infoblox.IsTransient(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestSearchOnAnUndefinedAttributeFindsNothing(t *testing.T) {
	g := newGrid(t, ibsim.Options{})
	g.inject = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/wapi/v2.12/record:host") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{ "Error": "AdmConProtoError: Unknown extensible attribute: SAS-Request-ID", "code": "Client.Ibap.Proto", "text": "Unknown extensible attribute: SAS-Request-ID"}`)
		return true
	}
	hosts, err := g.client().FindHostsByEA(context.Background(), infoblox.AttrRequestID, "req-x")
	if err != nil || len(hosts) != 0 {
		t.Fatalf("search on a grid without the definition: %v %v", hosts, err)
	}
	if _, err := g.client().FindHostsByEA(context.Background(), "SAS-Request", "x"); err == nil {
		t.Fatal("a different undefined attribute was swallowed")
	}
}
