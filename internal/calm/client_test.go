package calm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/calm"
	calmsim "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/sim/simtls"
)

const (
	calmUser = "sas-orchestrator"
	calmPass = "Pr1sm-Central-Pa55word!"
	secret   = "Adm1n-S3cret-Never-Returned"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// prism is a simulator behind an httptest server, with a recorder in front
// that counts calls, keeps every answer and can inject answers.
type prism struct {
	t     *testing.T
	sim   *calmsim.Server
	ts    *httptest.Server
	clock *fakeClock
	opts  calmsim.Options

	mu      sync.Mutex
	calls   map[string]int // "METHOD /path-with-uuids-as-{id}"
	bodies  [][]byte       // requests and answers, for leak checks
	inject  func(w http.ResponseWriter, r *http.Request) bool
	handler http.Handler
}

func newPrism(t *testing.T, mod func(*calmsim.Options)) *prism {
	t.Helper()
	p := &prism{t: t, clock: &fakeClock{t: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}, calls: map[string]int{}}
	p.opts = calmsim.Options{Users: map[string]string{calmUser: calmPass}, Clock: p.clock.Now}
	if mod != nil {
		mod(&p.opts)
	}
	sim, err := calmsim.New(p.opts)
	if err != nil {
		t.Fatal(err)
	}
	p.sim, p.handler = sim, sim
	p.ts = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.ts.Close)
	return p
}

func (p *prism) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	p.mu.Lock()
	p.calls[r.Method+" "+shape(r.URL.Path)]++
	p.bodies = append(p.bodies, body)
	inject, h := p.inject, p.handler
	p.mu.Unlock()
	if inject != nil && inject(w, r) {
		return
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	p.mu.Lock()
	p.bodies = append(p.bodies, rec.Body.Bytes())
	p.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// shape replaces uuids in a path by {id}.
func shape(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, calm.APIPath), "/")
	for i, s := range parts {
		if len(s) == 36 && strings.Count(s, "-") == 4 {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

func (p *prism) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

func (p *prism) setInject(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	p.inject = f
	p.mu.Unlock()
}

// restart replaces the simulator by a fresh one on the same options and
// state file: what a Prism restart looks like to the client.
func (p *prism) restart() {
	p.t.Helper()
	sim, err := calmsim.New(p.opts)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.sim, p.handler = sim, sim
	p.mu.Unlock()
}

func (p *prism) client(mod ...func(*calm.Config)) *calm.Client {
	p.t.Helper()
	cfg := calm.Config{BaseURL: p.ts.URL, Username: calmUser, Password: calmPass,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := calm.New(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func bg() context.Context { return context.Background() }

// launch launches name from project/blueprint and returns the blueprint
// uuid and request id.
func launch(t *testing.T, c *calm.Client, project, blueprint, name string, vars ...calm.Variable) (string, string) {
	t.Helper()
	bp, err := c.BlueprintByName(bg(), project, blueprint)
	if err != nil {
		t.Fatal(err)
	}
	rid, err := c.SimpleLaunch(bg(), bp.UUID, calm.LaunchSpec{AppName: name, AppDescription: "test app", Variables: vars})
	if err != nil {
		t.Fatal(err)
	}
	return bp.UUID, rid
}

// launchRunning launches and moves the clock until the app runs.
func launchRunning(t *testing.T, p *prism, c *calm.Client, project, blueprint, name string, vars ...calm.Variable) *calm.App {
	t.Helper()
	bp, rid := launch(t, c, project, blueprint, name, vars...)
	p.clock.Advance(calmsim.DefaultLaunchTime)
	st, err := c.PendingLaunch(bg(), bp, rid)
	if err != nil || !st.Succeeded() {
		t.Fatalf("launch: %+v %v", st, err)
	}
	p.clock.Advance(calmsim.DefaultProvisionTime)
	app, err := c.App(bg(), st.AppUUID)
	if err != nil || app.State != "running" {
		t.Fatalf("app: %+v %v", app, err)
	}
	return app
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]calm.Config{
		"no URL":           {Username: "u", Password: "p"},
		"relative URL":     {BaseURL: "pc.example.com:9440", Username: "u", Password: "p"},
		"ftp":              {BaseURL: "ftp://pc.example.com", Username: "u", Password: "p"},
		"userinfo":         {BaseURL: "https://u:p@pc.example.com:9440", Username: "u", Password: "p"},
		"no password":      {BaseURL: "https://pc.example.com:9440", Username: "u"},
		"CA is not PEM":    {BaseURL: "https://pc.example.com:9440", Username: "u", Password: "p", CACertPEM: []byte("nope")},
		"no credentials":   {BaseURL: "https://pc.example.com:9440"},
		"only a user name": {BaseURL: "https://pc.example.com:9440", Username: "u"},
	} {
		if _, err := calm.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "p@") {
			t.Errorf("%s: error leaks the URL's password: %v", name, err)
		}
	}
	cfg := calm.Config{BaseURL: "https://pc.example.com:9440", Username: "u", Password: "hunter2", APIKey: "k3y"}
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg); strings.Contains(s, "hunter2") || strings.Contains(s, "k3y") {
		t.Fatalf("Config prints a credential: %s", s)
	}
	// The API path is appended once, whether or not it is given.
	p := newPrism(t, nil)
	for _, base := range []string{p.ts.URL, p.ts.URL + "/", p.ts.URL + calm.APIPath, p.ts.URL + calm.APIPath + "/"} {
		c := p.client(func(c *calm.Config) { c.BaseURL = base })
		if _, err := c.ListProjects(bg(), ""); err != nil {
			t.Errorf("%s: %v", base, err)
		}
	}
}

func TestProjectsAndBlueprints(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	projects, err := c.ListProjects(bg(), "")
	if err != nil || len(projects) != 3 || projects[1].Name != "sas-dev" || len(projects[1].Environments) != 1 ||
		projects[1].Environments[0].Name != "sas-dev" {
		t.Fatalf("projects %+v %v", projects, err)
	}
	bp, err := c.BlueprintByName(bg(), "sas-prod", "postgres-ha-prod")
	if err != nil || bp.Project != "sas-prod" || !bp.Active() || len(bp.Profiles) != 2 || bp.Profiles[1].Name != "HA" {
		t.Fatalf("blueprint %+v %v", bp, err)
	}
	got, err := c.Blueprint(bg(), bp.UUID)
	if err != nil || got.Name != bp.Name || got.ProjectUUID != bp.ProjectUUID || len(got.Raw) == 0 {
		t.Fatalf("Blueprint %+v %v", got, err)
	}
	// The same name in two projects: the project decides.
	sbx, err := c.BlueprintByName(bg(), "sas-sbx", "linux-vm-sandbox")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := c.BlueprintByName(bg(), "sas-dev", "linux-vm-sandbox")
	if err != nil || dev.UUID == sbx.UUID {
		t.Fatalf("dev %+v %v", dev, err)
	}
	if _, err := c.BlueprintByName(bg(), "", "linux-vm-sandbox"); err == nil || calm.IsNotFound(err) {
		t.Fatalf("ambiguous name: %v", err)
	}
	if _, err := c.BlueprintByName(bg(), "sas-prod", "linux-vm-sandbox"); !calm.IsNotFound(err) {
		t.Fatalf("wrong project: %v", err)
	}
	if _, err := c.Blueprint(bg(), "00000000-0000-4000-8000-000000000000"); !calm.IsNotFound(err) {
		t.Fatalf("unknown uuid: %v", err)
	}
	eds, err := c.RuntimeEditables(bg(), bp.UUID)
	if err != nil || len(eds) != 2 || eds[0].Profile.Name != "Default" || eds[1].Profile.Name != "HA" {
		t.Fatalf("editables %+v %v", eds, err)
	}
	v, ok := eds[1].Variable("VCPUS")
	pw, _ := eds[0].Variable("ADMIN_PASSWORD")
	if !ok || v.Value != "8" || v.UUID == "" || v.Context != "app_profile.HA.variable" || pw.Type != "SECRET" {
		t.Fatalf("VCPUS %+v, ADMIN_PASSWORD %+v", v, pw)
	}
	if _, ok := eds[0].Variable("IMAGE"); ok {
		t.Fatal("a fixed variable is editable")
	}
}

func TestPaging(t *testing.T) {
	seed := calmsim.Seed{Projects: []calmsim.SeedProject{{Name: "big"}, {Name: "exact"}}}
	for i := 0; i < 263; i++ {
		seed.Projects[0].Blueprints = append(seed.Projects[0].Blueprints, calmsim.SeedBlueprint{Name: fmt.Sprintf("bp-%03d", i)})
	}
	for i := 0; i < 250; i++ {
		seed.Projects[1].Blueprints = append(seed.Projects[1].Blueprints, calmsim.SeedBlueprint{Name: fmt.Sprintf("ex-%03d", i)})
	}
	p := newPrism(t, func(o *calmsim.Options) { o.Seed = &seed })
	cases := []struct {
		pageSize int
		filter   string
		want     int
		calls    int
	}{
		{0, "", 513, 3},    // 250 + 250 + 13
		{1000, "", 513, 3}, // capped at 250
		{100, calm.Filter("project_name", calm.OpEqual, "big").String(), 263, 3},
		{125, calm.Filter("project_name", calm.OpEqual, "exact").String(), 250, 2}, // ends exactly on total_matches
		{250, calm.Filter("project_name", calm.OpEqual, "exact").String(), 250, 1},
		{7, calm.Filter("name", calm.OpEqual, "bp-007").String(), 1, 1},
		{7, calm.Filter("name", calm.OpEqual, "none").String(), 0, 1},
	}
	for _, cs := range cases {
		before := p.count("POST /blueprints/list")
		bps, err := p.client(func(c *calm.Config) { c.PageSize = cs.pageSize }).ListBlueprints(bg(), cs.filter)
		if err != nil {
			t.Fatal(err)
		}
		if len(bps) != cs.want {
			t.Errorf("page %d %q: %d blueprints, want %d", cs.pageSize, cs.filter, len(bps), cs.want)
		}
		if n := p.count("POST /blueprints/list") - before; n != cs.calls {
			t.Errorf("page %d %q: %d calls, want %d", cs.pageSize, cs.filter, n, cs.calls)
		}
		seen := map[string]bool{}
		for _, b := range bps {
			if seen[b.UUID] {
				t.Fatalf("page %d: %s twice", cs.pageSize, b.Name)
			}
			seen[b.UUID] = true
		}
	}
}

func TestFIQLBuilder(t *testing.T) {
	f := calm.Filter("name", calm.OpEqual, "a;b,c(d)=e!f g*[h]|é")
	if f.String() != "name==a%3Bb%2Cc%28d%29%3De%21f%20g%2A%5Bh%5D%7C%C3%A9" {
		t.Fatalf("escaped %s", f)
	}
	a, b, c := calm.Filter("x", "==", "1"), calm.Filter("y", "!=", "2"), calm.Filter("z", "=cs=", "3")
	for got, want := range map[string]string{
		a.And(b).String():                 "x==1;y!=2",
		a.Or(b).String():                  "x==1,y!=2",
		a.Or(b).And(c).String():           "(x==1,y!=2);z=cs=3",
		c.And(a.Or(b)).String():           "z=cs=3;(x==1,y!=2)",
		a.And(b).Or(c).String():           "x==1;y!=2,z=cs=3",
		a.And(calm.FIQL{}).String():       "x==1",
		calm.FIQL{}.And(a, b).String():    "x==1;y!=2",
		calm.FIQL{}.Or(a).And(b).String(): "x==1;y!=2",
		a.Or(b).And(a.Or(c)).String():     "(x==1,y!=2);(x==1,z=cs=3)",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if !(calm.FIQL{}).IsZero() || a.IsZero() {
		t.Error("IsZero")
	}

	// Against Calm: odd names are found exactly, and AND/OR mean what they say.
	odd := "odd;name,(with) specials*"
	seed := calmsim.DefaultSeed()
	seed.Projects[0].Blueprints = append(seed.Projects[0].Blueprints, calmsim.SeedBlueprint{Name: odd},
		calmsim.SeedBlueprint{Name: "odd"})
	p := newPrism(t, func(o *calmsim.Options) { o.Seed = &seed })
	cl := p.client()
	bps, err := cl.ListBlueprints(bg(), calm.Filter("name", calm.OpEqual, odd).String())
	if err != nil || len(bps) != 1 || bps[0].Name != odd {
		t.Fatalf("odd name: %+v %v", bps, err)
	}
	if bp, err := cl.BlueprintByName(bg(), "sas-sbx", odd); err != nil || bp.Name != odd {
		t.Fatalf("BlueprintByName: %v", err)
	}
	sandboxOrProd := calm.Filter("project_name", calm.OpEqual, "sas-sbx").Or(calm.Filter("project_name", calm.OpEqual, "sas-prod"))
	active := calm.Filter("state", calm.OpEqual, "ACTIVE")
	bps, err = cl.ListBlueprints(bg(), sandboxOrProd.And(active).String())
	if err != nil || len(bps) != 6 { // sbx: 2 active + 2 odd ones; prod: 2
		t.Fatalf("(sbx,prod);ACTIVE: %d %v", len(bps), err)
	}
	bps, err = cl.ListBlueprints(bg(), active.And(calm.Filter("name", calm.OpContains, "sandbox")).String())
	if err != nil || len(bps) != 4 {
		t.Fatalf("ACTIVE;name=cs=sandbox: %d %v", len(bps), err)
	}
	_, err = cl.ListBlueprints(bg(), "colour==blue")
	var ae *calm.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Error(), "colour") || !calm.IsPermanent(err) {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestLaunchToRunning(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	bp, rid := launch(t, c, "sas-dev", "web-stack-sandbox", "shop-01",
		calm.Variable{Name: "VCPUS", Value: "2"}, calm.Variable{Name: "MEMORY_GIB", Value: "4"},
		calm.Variable{Name: "IP_ADDRESS", Value: "10.20.0.50"}, calm.Variable{Name: "OWNER_EMAIL", Value: "dev@example.com"},
		calm.Variable{Name: "ADMIN_PASSWORD", Value: secret})
	if p.count("GET /blueprints/{id}/runtime_editables") != 1 {
		t.Error("SimpleLaunch did not read the runtime editables")
	}
	// The variables went out with the uuids and contexts Calm expects.
	p.mu.Lock()
	var sent []byte
	for _, b := range p.bodies {
		if bytes.Contains(b, []byte(`"app_name":"shop-01"`)) && bytes.HasPrefix(b, []byte(`{"spec":`)) {
			sent = b
		}
	}
	p.mu.Unlock()
	if !bytes.Contains(sent, []byte(`"context":"app_profile.Default.variable"`)) || !bytes.Contains(sent, []byte(`"uuid":`)) {
		t.Fatalf("launch body %s", sent)
	}

	st, err := c.PendingLaunch(bg(), bp, rid)
	if err != nil || !st.Running() || st.Succeeded() || st.AppName != "shop-01" || st.BlueprintName != "web-stack-sandbox" {
		t.Fatalf("pending %+v %v", st, err)
	}
	p.clock.Advance(time.Second)
	st, err = c.PendingLaunch(bg(), bp, rid)
	if err != nil || !st.Succeeded() || st.AppUUID == "" || st.Failed() {
		t.Fatalf("pending %+v %v", st, err)
	}
	app, err := c.App(bg(), st.AppUUID)
	if err != nil || app.State != "provisioning" {
		t.Fatalf("app %+v %v", app, err)
	}
	if !app.Created.Equal(p.clock.Now()) {
		t.Errorf("created %v, now %v", app.Created, p.clock.Now())
	}
	p.clock.Advance(2 * time.Second)
	app, err = c.App(bg(), st.AppUUID)
	if err != nil {
		t.Fatal(err)
	}
	if app.State != "running" || app.Name != "shop-01" || app.Project != "sas-dev" || app.BlueprintName != "web-stack-sandbox" ||
		app.BlueprintUUID != bp || app.Profile != "Default" || app.Description != "test app" || app.Owner != calmUser {
		t.Fatalf("app %+v", app)
	}
	if app.Variables["OWNER_EMAIL"] != "dev@example.com" || app.Variables["VCPUS"] != "2" || app.Variables["DISK_GIB"] != "20" {
		t.Fatalf("variables %v", app.Variables)
	}
	if _, ok := app.Variables["ADMIN_PASSWORD"]; ok {
		t.Fatal("a secret is among the variables")
	}
	if len(app.VMs) != 2 {
		t.Fatalf("VMs %+v", app.VMs)
	}
	web, svc := app.VMs[0], app.VMs[1]
	if web.Name != "shop-01-web-0" || web.UUID == "" || len(web.Addresses) != 1 || web.Addresses[0] != "10.20.0.50" ||
		web.PowerState != "ON" || web.VCPUs != 2 || web.MemoryGiB != 4 || web.DiskGiB != 20 {
		t.Fatalf("web VM %+v", web)
	}
	if svc.Name != "shop-01-app-0" || svc.Addresses[0] != "10.20.0.2" {
		t.Fatalf("app VM %+v", svc)
	}
	byName, err := c.AppByName(bg(), "sas-dev", "shop-01")
	if err != nil || byName.UUID != app.UUID {
		t.Fatalf("AppByName %+v %v", byName, err)
	}
	if _, err := c.AppByName(bg(), "sas-sbx", "shop-01"); !calm.IsNotFound(err) {
		t.Fatalf("other project: %v", err)
	}
	runlogs, err := c.Runlogs(bg(), app.UUID, "")
	if err != nil || len(runlogs) != 2 || runlogs[0].Action != "action_create" || !runlogs[0].Terminal() || runlogs[0].Failed() {
		t.Fatalf("runlogs %+v %v", runlogs, err)
	}
	out, err := c.RunlogOutput(bg(), app.UUID, runlogs[0].UUID)
	if err != nil || !strings.Contains(out, "Created VM shop-01-web-0") {
		t.Fatalf("output %q %v", out, err)
	}
	// A second profile, chosen by name, with its own sizing.
	pg := launchRunning(t, p, c, "sas-dev", "postgres-dev", "pg-ha", calm.Variable{Name: "DISK_GIB", Value: "250"})
	if pg.Profile != "Default" || len(pg.VMs) != 1 || pg.VMs[0].DiskGiB != 250 {
		t.Fatalf("postgres %+v", pg)
	}
	bpPG, _ := c.BlueprintByName(bg(), "sas-dev", "postgres-dev")
	rid, err = c.SimpleLaunch(bg(), bpPG.UUID, calm.LaunchSpec{AppName: "pg-ha-2", ProfileName: "HA"})
	if err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Second)
	st, _ = c.PendingLaunch(bg(), bpPG.UUID, rid)
	ha, err := c.App(bg(), st.AppUUID)
	if err != nil || ha.Profile != "HA" || len(ha.VMs) != 3 {
		t.Fatalf("HA app %+v %v", ha, err)
	}
}

func TestLaunchRefusalsCarryCalmsMessage(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	draft, err := c.BlueprintByName(bg(), "sas-sbx", "draft-sandbox")
	if err != nil || draft.Active() || draft.State != "DRAFT" {
		t.Fatalf("draft %+v %v", draft, err)
	}
	_, err = c.SimpleLaunch(bg(), draft.UUID, calm.LaunchSpec{AppName: "nope"})
	var ae *calm.APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Reason() != calmsim.ReasonInvalidState ||
		!strings.Contains(err.Error(), "DRAFT") || !strings.Contains(err.Error(), "draft-sandbox") ||
		calm.IsTransient(err) || !calm.IsPermanent(err) || ae.State != "ERROR" || ae.Code != 422 || ae.Kind != "blueprint" {
		t.Fatalf("DRAFT launch: %#v", err)
	}
	if p.count("POST /blueprints/{id}/simple_launch") != 1 {
		t.Fatal("a refused launch was retried")
	}
	bp, _ := c.BlueprintByName(bg(), "sas-sbx", "linux-vm-sandbox")
	for name, spec := range map[string]calm.LaunchSpec{
		"COLOUR":               {AppName: "x", Variables: []calm.Variable{{Name: "COLOUR", Value: "red"}}},
		"not runtime editable": {AppName: "x", Variables: []calm.Variable{{Name: "IMAGE", Value: "mine"}}},
		"Gold":                 {AppName: "x", ProfileName: "Gold"},
		"positive integer":     {AppName: "x", Variables: []calm.Variable{{Name: "VCPUS", Value: "-1"}}},
	} {
		_, err := c.SimpleLaunch(bg(), bp.UUID, spec)
		if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.SimpleLaunch(bg(), bp.UUID, calm.LaunchSpec{}); err == nil {
		t.Error("a launch without an app name")
	}
	if _, err := c.SimpleLaunch(bg(), "00000000-0000-4000-8000-000000000000", calm.LaunchSpec{AppName: "x"}); !calm.IsNotFound(err) {
		t.Errorf("unknown blueprint: %v", err)
	}
}

func TestDuplicateNameIsAConflict(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	launch(t, c, "sas-dev", "linux-vm-dev", "dup")
	bp, _ := c.BlueprintByName(bg(), "sas-dev", "postgres-dev")
	_, err := c.SimpleLaunch(bg(), bp.UUID, calm.LaunchSpec{AppName: "dup"})
	if !calm.IsConflict(err) || !strings.Contains(err.Error(), `"dup"`) || calm.IsTransient(err) {
		t.Fatalf("duplicate: %v", err)
	}
	// Another project may use the name.
	launch(t, c, "sas-sbx", "linux-vm-sandbox", "dup")
}

func TestFailureInjectionSurfaces(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	p.sim.FailNextLaunches(1, "project sas-dev quota exceeded: 0 vCPUs left")
	bp, rid := launch(t, c, "sas-dev", "linux-vm-dev", "f1")
	p.clock.Advance(time.Second)
	st, err := c.PendingLaunch(bg(), bp, rid)
	if err != nil || !st.Failed() || st.Running() || st.AppUUID != "" || st.Message != "project sas-dev quota exceeded: 0 vCPUs left" {
		t.Fatalf("failed launch %+v %v", st, err)
	}
	if _, err := c.AppByName(bg(), "sas-dev", "f1"); !calm.IsNotFound(err) {
		t.Fatalf("failed launch made an app: %v", err)
	}
	p.sim.FailNextProvisions(1, "cluster out of storage")
	bp, rid = launch(t, c, "sas-dev", "linux-vm-dev", "f1")
	p.clock.Advance(time.Second)
	st, _ = c.PendingLaunch(bg(), bp, rid)
	p.clock.Advance(2 * time.Second)
	app, err := c.App(bg(), st.AppUUID)
	if err != nil || app.State != "error" {
		t.Fatalf("app %+v %v", app, err)
	}
	runlogs, err := c.Runlogs(bg(), app.UUID, "")
	if err != nil || len(runlogs) == 0 || !runlogs[0].Failed() || runlogs[0].State != "FAILURE" {
		t.Fatalf("runlogs %+v %v", runlogs, err)
	}
	out, err := c.RunlogOutput(bg(), app.UUID, runlogs[0].UUID)
	if err != nil || !strings.Contains(out, "cluster out of storage") {
		t.Fatalf("output %q %v", out, err)
	}
	for _, s := range []string{"failure", "failed", "FAILURE"} {
		if !(&calm.LaunchStatus{State: s}).Failed() {
			t.Errorf("%s is not Failed", s)
		}
	}
}

func TestActionsWithRunlogs(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	app := launchRunning(t, p, c, "sas-dev", "k8s-worker-pool-dev", "pool")
	if len(app.VMs) != 3 {
		t.Fatalf("VMs %d", len(app.VMs))
	}
	stop, err := c.RunAction(bg(), app.UUID, "stop")
	if err != nil || stop == "" {
		t.Fatal(err)
	}
	if a, _ := c.App(bg(), app.UUID); a.State != "stopping" {
		t.Fatalf("state %s", a.State)
	}
	tree, err := c.Runlogs(bg(), app.UUID, stop)
	if err != nil || len(tree) != 2 || tree[0].UUID != stop || tree[0].State != "RUNNING" || tree[1].RootUUID != stop ||
		tree[1].Type != "task_runlog" || tree[0].Terminal() {
		t.Fatalf("stop tree %+v %v", tree, err)
	}
	_, err = c.RunAction(bg(), app.UUID, calm.ActionRestart)
	if !strings.Contains(fmt.Sprint(err), "stopping") || calm.IsTransient(err) {
		t.Fatalf("restart while stopping: %v", err)
	}
	p.clock.Advance(time.Second)
	a, _ := c.App(bg(), app.UUID)
	if a.State != "stopped" || a.VMs[0].PowerState != "OFF" || a.VMs[2].PowerState != "OFF" {
		t.Fatalf("stopped app %+v", a)
	}
	if tree, _ = c.Runlogs(bg(), app.UUID, stop); tree[0].State != "SUCCESS" || !tree[0].Terminal() {
		t.Fatalf("stop runlog %+v", tree[0])
	}
	start, err := c.RunAction(bg(), app.UUID, calm.ActionStart)
	if err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Second)
	restart, err := c.RunAction(bg(), app.UUID, "restart")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ = c.App(bg(), app.UUID); a.State != "restarting" || a.VMs[1].PowerState != "ON" {
		t.Fatalf("restarting %+v", a)
	}
	p.clock.Advance(time.Second)
	all, err := c.Runlogs(bg(), app.UUID, "")
	if err != nil || len(all) != 8 { // create, stop, start, restart: root and task each
		t.Fatalf("all runlogs %d %v", len(all), err)
	}
	var actions []string
	for _, r := range all {
		if r.Type == "action_runlog" {
			actions = append(actions, r.Action)
		}
	}
	if strings.Join(actions, " ") != "action_create action_stop action_start action_restart" {
		t.Fatalf("actions %v", actions)
	}
	out, err := c.RunlogOutput(bg(), app.UUID, restart)
	if err != nil || !strings.Contains(out, "Restart VMs: pool-worker-2") {
		t.Fatalf("restart output %q %v", out, err)
	}
	if start == stop || start == restart {
		t.Fatal("runlog uuids repeat")
	}
	if _, err := c.RunAction(bg(), app.UUID, "dance"); err == nil {
		t.Fatal("unknown action ran")
	}
}

func TestDeleteAndSoftDelete(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	app := launchRunning(t, p, c, "sas-dev", "linux-vm-dev", "gone")
	kept := launchRunning(t, p, c, "sas-dev", "linux-vm-dev", "kept")
	rl, err := c.DeleteApp(bg(), app.UUID, false)
	if err != nil || rl == "" {
		t.Fatal(err)
	}
	if a, _ := c.App(bg(), app.UUID); a.State != "deleting" {
		t.Fatalf("state %s", a.State)
	}
	if again, err := c.DeleteApp(bg(), app.UUID, false); err != nil || again != rl {
		t.Fatalf("retried delete: %s %v (first %s)", again, err, rl)
	}
	if _, err := c.DeleteApp(bg(), kept.UUID, true); err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Second)
	a, err := c.App(bg(), app.UUID)
	if err != nil || !a.Deleted() || len(a.VMs) != 0 {
		t.Fatalf("deleted app %+v %v", a, err)
	}
	if _, err := c.DeleteApp(bg(), app.UUID, false); !calm.IsNotFound(err) {
		t.Fatalf("delete of a deleted app: %v", err)
	}
	if _, err := c.AppByName(bg(), "sas-dev", "gone"); !calm.IsNotFound(err) {
		t.Fatalf("AppByName found a deleted app: %v", err)
	}
	all, _ := c.ListApps(bg(), "")
	live, _ := c.ListApps(bg(), calm.Filter("state", calm.OpNotEqual, "deleted").String())
	if len(all) != 2 || len(live) != 0 {
		t.Fatalf("all %d live %d", len(all), len(live))
	}
	snaps := p.sim.Apps()
	if !snaps[1].SoftDeleted || !snaps[1].VMs[0].Exists || snaps[0].VMs[0].Exists {
		t.Fatalf("soft delete touched the VMs: %+v", snaps)
	}
	tree, _ := c.Runlogs(bg(), app.UUID, rl)
	if len(tree) != 2 || tree[0].Action != "action_delete" || tree[0].State != "SUCCESS" {
		t.Fatalf("delete runlogs %+v", tree)
	}
	if _, err := c.App(bg(), "00000000-0000-4000-8000-000000000000"); !calm.IsNotFound(err) {
		t.Fatalf("unknown app: %v", err)
	}
	if err := p.sim.PurgeAppOutOfBand(app.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.App(bg(), app.UUID); !calm.IsNotFound(err) {
		t.Fatalf("vanished app: %v", err)
	}
}

func TestSecretsNeverReturnedNorStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calm.json")
	p := newPrism(t, func(o *calmsim.Options) { o.StatePath = path })
	c := p.client()
	app := launchRunning(t, p, c, "sas-prod", "linux-vm-prod", "vault-host", calm.Variable{Name: "ADMIN_PASSWORD", Value: secret})
	if _, err := c.ListApps(bg(), ""); err != nil {
		t.Fatal(err)
	}
	bp, _ := c.BlueprintByName(bg(), "sas-prod", "linux-vm-prod")
	if _, err := c.RuntimeEditables(bg(), bp.UUID); err != nil {
		t.Fatal(err)
	}
	rls, _ := c.Runlogs(bg(), app.UUID, "")
	if _, err := c.RunlogOutput(bg(), app.UUID, rls[0].UUID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(app.Raw, []byte(secret)) {
		t.Fatal("GET returned the secret")
	}
	p.mu.Lock()
	answers := 0
	for i, b := range p.bodies {
		if bytes.Contains(b, []byte(secret)) && !bytes.Contains(b, []byte(`"simple_launch"`)) && !bytes.Contains(b, []byte(`"app_name"`)) {
			t.Errorf("body %d holds the secret: %.300s", i, b)
		}
		answers++
	}
	p.mu.Unlock()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(calmPass)) {
		t.Fatal("the state file holds a secret in clear")
	}
	if snap := p.sim.Apps()[0]; snap.SecretHashes["ADMIN_PASSWORD"] != calmsim.SecretSHA256(secret) {
		t.Fatalf("the secret did not arrive: %v", snap.SecretHashes)
	}
}

func TestRestartMidLaunchPreservesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calm.json")
	p := newPrism(t, func(o *calmsim.Options) { o.StatePath = path })
	c := p.client()
	running := launchRunning(t, p, c, "sas-dev", "linux-vm-dev", "before")
	if _, err := c.RunAction(bg(), running.UUID, "stop"); err != nil {
		t.Fatal(err)
	}
	bp, rid := launch(t, c, "sas-dev", "web-stack-sandbox", "during", calm.Variable{Name: "OWNER_EMAIL", Value: "x@example.com"})
	p.clock.Advance(400 * time.Millisecond)
	p.restart()
	if st, err := c.PendingLaunch(bg(), bp, rid); err != nil || !st.Running() {
		t.Fatalf("after restart: %+v %v", st, err)
	}
	if a, err := c.App(bg(), running.UUID); err != nil || a.State != "stopping" || a.VMs[0].Addresses[0] != running.VMs[0].Addresses[0] {
		t.Fatalf("app across restart: %+v %v", a, err)
	}
	p.clock.Advance(600 * time.Millisecond)
	st, err := c.PendingLaunch(bg(), bp, rid)
	if err != nil || !st.Succeeded() {
		t.Fatalf("launch after restart: %+v %v", st, err)
	}
	p.clock.Advance(time.Second)
	p.restart()
	app, err := c.App(bg(), st.AppUUID)
	if err != nil || app.State != "provisioning" || app.Variables["OWNER_EMAIL"] != "x@example.com" || len(app.VMs) != 2 {
		t.Fatalf("provisioning app across restart: %+v %v", app, err)
	}
	p.clock.Advance(time.Second)
	p.restart()
	if app, _ = c.App(bg(), st.AppUUID); app.State != "running" {
		t.Fatalf("state %s", app.State)
	}
	if a, _ := c.App(bg(), running.UUID); a.State != "stopped" {
		t.Fatalf("stopped app: %s", a.State)
	}
	rls, err := c.Runlogs(bg(), running.UUID, "")
	if err != nil || len(rls) != 4 || rls[2].Action != "action_stop" || rls[2].State != "SUCCESS" {
		t.Fatalf("runlogs across restarts %+v %v", rls, err)
	}
	if !app.Created.Equal(p.clock.Now().Add(-2 * time.Second)) {
		t.Errorf("created %v", app.Created)
	}
}

func TestBadCredentialsAreClearAndNeverLeak(t *testing.T) {
	p := newPrism(t, nil)
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})
	c := p.client(func(c *calm.Config) { c.Password = "Wr0ng-Pa55word-XYZ"; c.Logger = logger })
	_, err := c.ListProjects(bg(), "")
	var ae *calm.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "Calm refused the credentials (401)") ||
		!calm.IsUnauthorized(err) || calm.IsTransient(err) || !calm.IsPermanent(err) {
		t.Fatalf("401: %v", err)
	}
	if strings.Contains(err.Error(), "Wr0ng") || strings.Contains(err.Error(), "<html") || strings.Contains(logs.String(), "Wr0ng") {
		t.Fatalf("leak: %v / %s", err, logs.String())
	}
	if p.count("POST /projects/list") != 1 {
		t.Fatal("a 401 was retried")
	}
	// An API key the simulator knows works; one it does not is refused.
	p2 := newPrism(t, func(o *calmsim.Options) { o.APIKeys = map[string]string{"ci": "ci-k3y"} })
	if _, err := p2.client(func(c *calm.Config) { c.Username, c.Password, c.APIKey = "", "", "ci-k3y" }).ListProjects(bg(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.client(func(c *calm.Config) { c.APIKey = "nope" }).ListProjects(bg(), ""); !calm.IsUnauthorized(err) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	p := newPrism(t, nil)
	var once sync.Once
	p.setInject(func(w http.ResponseWriter, r *http.Request) bool {
		hit := false
		once.Do(func() {
			hit = true
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html><title>503 Service Unavailable</title></html>")
		})
		return hit
	})
	var logs bytes.Buffer
	c := p.client(func(c *calm.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	})
	start := time.Now()
	if _, err := c.ListProjects(bg(), ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After: 1", d)
	}
	if p.count("POST /projects/list") != 2 || !strings.Contains(logs.String(), "retrying Calm call") || strings.Contains(logs.String(), calmPass) {
		t.Fatalf("calls %v, logs %s", p.calls, logs.String())
	}

	// The simulator's own FailRate: retries run out, the error is transient
	// and carries Calm's Retry-After.
	p2 := newPrism(t, func(o *calmsim.Options) {
		o.FailRate, o.RetryAfter = 1, time.Second
		o.Rand = mrand.New(mrand.NewPCG(7, 11)) // the same failures every run
	})
	c2 := p2.client(func(c *calm.Config) { c.RetryMax = 1; c.RetryAfterMax = 50 * time.Millisecond })
	_, err := c2.ListProjects(bg(), "")
	var ae *calm.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.RetryAfter != time.Second || !calm.IsTransient(err) ||
		!strings.Contains(ae.Text, "503 Service Unavailable") || p2.count("POST /projects/list") != 2 {
		t.Fatalf("503s: %v (%d calls)", err, p2.count("POST /projects/list"))
	}
	// Half the calls failing: every call still gets through.
	p2.sim.SetFailRate(0.5)
	c3 := p2.client(func(c *calm.Config) { c.RetryMax = 12; c.RetryAfterMax = time.Millisecond })
	for i := 0; i < 10; i++ {
		if _, err := c3.ListProjects(bg(), ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTLSTrustsOnlyTheGivenCA(t *testing.T) {
	b, err := simtls.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := calmsim.New(calmsim.Options{Users: map[string]string{calmUser: calmPass}, TLSConfig: b.ServerConfig})
	if err != nil {
		t.Fatal(err)
	}
	root, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	mk := func(mod func(*calm.Config)) *calm.Client {
		cfg := calm.Config{BaseURL: root, Username: calmUser, Password: calmPass, RetryMax: -1}
		mod(&cfg)
		c, err := calm.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	trusted := mk(func(c *calm.Config) { c.CACertPEM = b.CAPEM })
	if ps, err := trusted.ListProjects(bg(), ""); err != nil || len(ps) != 3 {
		t.Fatalf("trusted: %v", err)
	}
	_, err = mk(func(*calm.Config) {}).ListProjects(bg(), "")
	var te *calm.TransportError
	if err == nil || !errors.As(err, &te) || calm.IsTransient(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted CA: %v", err)
	}
	other, _ := simtls.SelfSigned()
	if _, err := mk(func(c *calm.Config) { c.CACertPEM = other.CAPEM }).ListProjects(bg(), ""); err == nil || calm.IsTransient(err) {
		t.Fatalf("another CA: %v", err)
	}
	if _, err := mk(func(c *calm.Config) { c.InsecureSkipVerify = true }).ListProjects(bg(), ""); err != nil {
		t.Fatalf("InsecureSkipVerify: %v", err)
	}
}

func TestConcurrentLaunchesGetDistinctAddresses(t *testing.T) {
	p := newPrism(t, nil)
	c := p.client()
	bp, err := c.BlueprintByName(bg(), "sas-dev", "web-stack-sandbox")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			vars := []calm.Variable{{Name: "NETWORK", Value: "10.20.8.0/26"}}
			if i == 0 {
				vars = append(vars, calm.Variable{Name: "IP_ADDRESS", Value: "10.20.8.60"})
			}
			if _, err := c.SimpleLaunch(bg(), bp.UUID, calm.LaunchSpec{AppName: fmt.Sprintf("par-%02d", i), Variables: vars}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p.clock.Advance(time.Minute)
	apps, err := c.ListApps(bg(), calm.Filter("name", calm.OpContains, "par-").String())
	if err != nil || len(apps) != 24 {
		t.Fatalf("%d apps %v", len(apps), err)
	}
	seen := map[string]string{}
	for _, a := range apps {
		for _, v := range a.VMs {
			for _, ip := range v.Addresses {
				if other, dup := seen[ip]; dup {
					t.Fatalf("%s given to %s and %s", ip, other, v.Name)
				}
				seen[ip] = v.Name
			}
		}
	}
	if len(seen) != 48 || seen["10.20.8.60"] != "par-00-web-0" {
		t.Fatalf("%d addresses, 10.20.8.60 went to %q", len(seen), seen["10.20.8.60"])
	}
	// The address the first launch pinned is now taken.
	_, err = c.SimpleLaunch(bg(), bp.UUID, calm.LaunchSpec{AppName: "late", Variables: []calm.Variable{
		{Name: "NETWORK", Value: "10.20.8.0/26"}, {Name: "IP_ADDRESS", Value: "10.20.8.60"}}})
	if !calm.IsConflict(err) || !strings.Contains(err.Error(), "par-00") {
		t.Fatalf("taken address: %v", err)
	}
}

func TestContextIsHonoured(t *testing.T) {
	p := newPrism(t, func(o *calmsim.Options) { o.Latency = 2 * time.Second })
	c := p.client()
	ctx, cancel := context.WithTimeout(bg(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ListProjects(ctx, "")
	if err == nil || time.Since(start) > time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
	ctx2, cancel2 := context.WithCancel(bg())
	cancel2()
	if _, err := c.App(ctx2, "00000000-0000-4000-8000-000000000000"); err == nil || calm.IsTransient(err) {
		t.Fatalf("cancelled: %v", err)
	}
}
