package calm_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/sim/simtls"
)

const (
	user = "sas-orchestrator"
	pass = "Calm-Pa55word-Never-Logged!"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

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

type env struct {
	t     *testing.T
	sim   *calm.Server
	ts    *httptest.Server
	clock *fakeClock
	opts  calm.Options
}

func newEnv(t *testing.T, mod func(*calm.Options)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock()}
	e.opts = calm.Options{Users: map[string]string{user: pass}, Clock: e.clock.Now}
	if mod != nil {
		mod(&e.opts)
	}
	sim, err := calm.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.ts = httptest.NewServer(sim)
	t.Cleanup(e.ts.Close)
	return e
}

// restart replaces the simulator by a new one on the same options (and
// state file), keeping the clock.
func (e *env) restart() {
	e.t.Helper()
	sim, err := calm.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.sim = sim
	e.ts.Config.Handler = sim
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (e *env) call(method, path string, body any) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case json.RawMessage: // sent as is, even when it is not valid JSON
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.ts.URL+calm.BasePath+path, rd)
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// ok fails the test unless the answer is 200.
func (a answer) ok(t *testing.T) answer {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, short(a.raw))
	}
	return a
}

// vendorError checks Calm's error body and returns its first message.
func (a answer) vendorError(t *testing.T, status int) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, short(a.raw))
	}
	if a.body["state"] != "ERROR" || a.body["api_version"] != "3.1" || int(a.body["code"].(float64)) != status {
		t.Fatalf("not Calm's error body: %s", a.raw)
	}
	ml := a.body["message_list"].([]any)
	m := ml[0].(map[string]any)
	if m["reason"] == "" || m["details"] == nil {
		t.Fatalf("message without reason or details: %s", a.raw)
	}
	return m["message"].(string)
}

func short(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// dig walks maps and lists: dig(v, "status", "resources", 0, "name").
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := dig(v, path...).(string); return s }

func (e *env) bp(project, name string) string {
	e.t.Helper()
	id, _, ok := e.sim.Blueprint(project, name)
	if !ok {
		e.t.Fatalf("no blueprint %s/%s", project, name)
	}
	return id
}

func launchBody(name, profile string, vars map[string]string) map[string]any {
	var list []any
	for _, k := range sortedKeys(vars) {
		list = append(list, map[string]any{"name": k, "value": map[string]any{"value": vars[k]}})
	}
	return map[string]any{"spec": map[string]any{
		"app_name": name, "app_description": "made by a test",
		"app_profile_reference": map[string]any{"kind": "app_profile", "name": profile},
		"runtime_editables":     map[string]any{"variable_list": list},
	}}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// launch launches and returns the request id.
func (e *env) launch(project, bp, name string, vars map[string]string) string {
	e.t.Helper()
	a := e.call("POST", "/blueprints/"+e.bp(project, bp)+"/simple_launch", launchBody(name, "Default", vars)).ok(e.t)
	return str(a.body, "status", "request_id")
}

// launchApp launches and moves the clock until the app runs; it returns the app uuid.
func (e *env) launchApp(project, bp, name string, vars map[string]string) string {
	e.t.Helper()
	rid := e.launch(project, bp, name, vars)
	e.clock.Advance(calm.DefaultLaunchTime)
	p := e.call("GET", "/blueprints/"+e.bp(project, bp)+"/pending_launches/"+rid, nil).ok(e.t)
	if str(p.body, "status", "state") != "success" {
		e.t.Fatalf("launch: %s", p.raw)
	}
	e.clock.Advance(calm.DefaultProvisionTime)
	return str(p.body, "status", "application_uuid")
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, func(o *calm.Options) { o.APIKeys = map[string]string{"ci-bot": "k3y-value"} })
	for name, set := range map[string]func(*http.Request){
		"none":           func(*http.Request) {},
		"wrong password": func(r *http.Request) { r.SetBasicAuth(user, "nope") },
		"unknown user":   func(r *http.Request) { r.SetBasicAuth("mallory", pass) },
		"wrong api key":  func(r *http.Request) { r.Header.Set("X-Ntnx-Api-Key", "k3y-valu") },
	} {
		req, _ := http.NewRequest("POST", e.ts.URL+calm.BasePath+"/projects/list", strings.NewReader("{}"))
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="Intent Gateway"` {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
		if json.Valid(raw) || strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Errorf("%s: 401 body is JSON: %s", name, raw)
		}
	}
	req, _ := http.NewRequest("POST", e.ts.URL+calm.BasePath+"/projects/list", strings.NewReader("{}"))
	req.Header.Set("X-Ntnx-Api-Key", "k3y-value")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("api key: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := calm.New(calm.Options{}); err == nil {
		t.Error("New without users or keys")
	}
	if _, err := calm.New(calm.Options{Users: map[string]string{"a": ""}}); err == nil {
		t.Error("New with an empty password")
	}
	if _, err := calm.New(calm.Options{Users: map[string]string{"a": "b"}, FailRate: 2}); err == nil {
		t.Error("New with FailRate 2")
	}
}

func TestDefaultSeed(t *testing.T) {
	e := newEnv(t, nil)
	projects := e.call("POST", "/projects/list", map[string]any{"kind": "project"}).ok(t)
	var names []string
	for _, p := range projects.body["entities"].([]any) {
		names = append(names, str(p, "status", "name"))
		envs := dig(p, "spec", "resources", "environment_reference_list").([]any)
		if len(envs) != 1 || str(envs[0], "name") != str(p, "status", "name") {
			t.Errorf("project %s environments %v", str(p, "status", "name"), envs)
		}
	}
	if strings.Join(names, " ") != "sas-sbx sas-dev sas-prod" {
		t.Fatalf("projects %v", names)
	}
	envs := e.call("POST", "/environments/list", map[string]any{"filter": "project_name==sas-dev"}).ok(t)
	if dig(envs.body, "metadata", "total_matches") != 1.0 || str(envs.body, "entities", 0, "status", "name") != "sas-dev" {
		t.Fatalf("environments %s", envs.raw)
	}

	want := map[string][]string{
		"sas-sbx":  {"linux-vm-sandbox", "web-stack-sandbox", "draft-sandbox"},
		"sas-dev":  {"linux-vm-sandbox", "web-stack-sandbox", "linux-vm-dev", "postgres-dev", "k8s-worker-pool-dev"},
		"sas-prod": {"linux-vm-prod", "postgres-ha-prod"},
	}
	vms := map[string]int{"web-stack-sandbox": 2, "k8s-worker-pool-dev": 3, "postgres-ha-prod": 3}
	for project := range want {
		l := e.call("POST", "/blueprints/list", map[string]any{"filter": "project_name==" + project}).ok(t)
		var got []string
		for _, b := range l.body["entities"].([]any) {
			name := str(b, "status", "name")
			got = append(got, name)
			state := str(b, "status", "state")
			if (name == "draft-sandbox") != (state == "DRAFT") || (state != "DRAFT" && state != "ACTIVE") {
				t.Errorf("%s/%s is %s", project, name, state)
			}
			if str(b, "metadata", "project_reference", "name") != project {
				t.Errorf("%s project_reference %v", name, dig(b, "metadata", "project_reference"))
			}
			if len(dig(b, "status", "resources", "app_profile_list").([]any)) == 0 {
				t.Errorf("%s: the list entry names no profiles", name)
			}
			full := e.call("GET", "/blueprints/"+str(b, "metadata", "uuid"), nil).ok(t)
			profiles := dig(full.body, "status", "resources", "app_profile_list").([]any)
			if str(profiles[0], "name") != "Default" {
				t.Errorf("%s first profile %v", name, str(profiles[0], "name"))
			}
			if strings.HasPrefix(name, "postgres") && (len(profiles) != 2 || str(profiles[1], "name") != "HA") {
				t.Errorf("%s profiles %d", name, len(profiles))
			}
			n := 0
			for _, d := range dig(profiles[0], "deployment_create_list").([]any) {
				var r int
				fmt.Sscan(str(d, "min_replicas"), &r)
				n += r
			}
			if w := vms[name]; (w == 0 && n != 1) || (w != 0 && n != w) {
				t.Errorf("%s has %d VMs", name, n)
			}
			vars := map[string]map[string]any{}
			for _, v := range dig(profiles[0], "variable_list").([]any) {
				vars[str(v, "name")] = v.(map[string]any)
			}
			for _, v := range []string{"VCPUS", "MEMORY_GIB", "DISK_GIB", "NETWORK", "IP_ADDRESS", "OWNER_EMAIL", "ADMIN_PASSWORD"} {
				if vars[v] == nil {
					t.Errorf("%s lacks %s", name, v)
				}
			}
			if vars["ADMIN_PASSWORD"]["type"] != "SECRET" || vars["VCPUS"]["value_type"] != "INT" || vars["VCPUS"]["value"] == "" {
				t.Errorf("%s variables %v", name, vars)
			}
		}
		if strings.Join(got, " ") != strings.Join(want[project], " ") {
			t.Errorf("%s blueprints %v", project, got)
		}
	}

	// Seeding again (a restart on the same state file) creates nothing new.
	dir := t.TempDir()
	path := filepath.Join(dir, "calm.json")
	opts := calm.Options{Users: map[string]string{user: pass}, StatePath: path}
	s1, err := calm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	id1, _, _ := s1.Blueprint("sas-dev", "postgres-dev")
	s2, err := calm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	id2, _, _ := s2.Blueprint("sas-dev", "postgres-dev")
	raw, _ := os.ReadFile(path)
	if id1 != id2 || strings.Count(string(raw), `"name": "postgres-dev"`) != 1 {
		t.Fatalf("reseeding duplicated: %s vs %s", id1, id2)
	}
	// The seed is JSON, so an operator's config can carry one.
	seedJSON, _ := json.Marshal(calm.DefaultSeed())
	var back calm.Seed
	if err := json.Unmarshal(seedJSON, &back); err != nil || len(back.Projects) != 3 {
		t.Fatalf("seed round trip: %v", err)
	}
}

func TestListingPagingAndSorting(t *testing.T) {
	seed := calm.Seed{Projects: []calm.SeedProject{{Name: "big"}}}
	for i := 0; i < 263; i++ {
		seed.Projects[0].Blueprints = append(seed.Projects[0].Blueprints, calm.SeedBlueprint{Name: fmt.Sprintf("bp-%03d", i)})
	}
	e := newEnv(t, func(o *calm.Options) { o.Seed = &seed })
	l := e.call("POST", "/blueprints/list", map[string]any{}).ok(t)
	if n := len(l.body["entities"].([]any)); n != calm.DefaultListLength || dig(l.body, "metadata", "total_matches") != 263.0 ||
		dig(l.body, "metadata", "length") != 20.0 || dig(l.body, "metadata", "kind") != "blueprint" {
		t.Fatalf("default page: %d %v", n, l.body["metadata"])
	}
	l = e.call("POST", "/blueprints/list", map[string]any{"length": 1000}).ok(t)
	if n := len(l.body["entities"].([]any)); n != calm.MaxListLength {
		t.Fatalf("length 1000 served %d", n)
	}
	l = e.call("POST", "/blueprints/list", map[string]any{"length": 250, "offset": 250}).ok(t)
	if n := len(l.body["entities"].([]any)); n != 13 || str(l.body, "entities", 0, "status", "name") != "bp-250" {
		t.Fatalf("second page: %d", n)
	}
	l = e.call("POST", "/blueprints/list", map[string]any{"offset": 300}).ok(t)
	if len(l.body["entities"].([]any)) != 0 {
		t.Fatal("past the end")
	}
	l = e.call("POST", "/blueprints/list", map[string]any{"length": 2, "sort_attribute": "name", "sort_order": "DESCENDING"}).ok(t)
	if str(l.body, "entities", 0, "status", "name") != "bp-262" {
		t.Fatalf("sorted %s", l.raw)
	}
	for body, field := range map[string]string{
		`{"length":-1}`:               "length",
		`{"offset":-5}`:               "offset",
		`{"sort_attribute":"colour"}`: "sort_attribute",
		`{"sort_order":"UP"}`:         "sort_order",
		`{"length":"ten"}`:            "length",
		`{"filter":"colour==red"}`:    "filter",
	} {
		a := e.call("POST", "/blueprints/list", json.RawMessage(body))
		a.vendorError(t, 400)
		if str(a.body, "message_list", 0, "details", "field") != field {
			t.Errorf("%s: %s", body, a.raw)
		}
	}
	e.call("POST", "/blueprints/list", json.RawMessage(`{"filter":`)).vendorError(t, 400)
	e.call("GET", "/blueprints/list", nil).vendorError(t, 405)
	e.call("POST", "/vms/list", nil).vendorError(t, 404)
}

func TestFiltersOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	count := func(kind, filter string) int {
		t.Helper()
		a := e.call("POST", "/"+kind+"/list", map[string]any{"filter": filter}).ok(t)
		return int(dig(a.body, "metadata", "total_matches").(float64))
	}
	for filter, want := range map[string]int{
		"name==linux-vm-sandbox":                               2,
		"name==linux-vm-sandbox;project_name==sas-dev":         1,
		"state==DRAFT":                                         1,
		"state!=DRAFT;project_name==sas-sbx":                   2,
		"project_name==sas-prod,name==draft-sandbox":           3,
		"name=cs=postgres":                                     2,
		"(name==.*[p|P][r|R][o|O][d|D].*)":                     2,
		"name==linux-vm-sandbox;state!=DELETED":                2,
		"project_reference==" + projectUUID(e, "sas-prod"):     2,
		"name==postgres-dev,name==linux-vm-dev;state==DRAFT":   1,
		"(name==postgres-dev,name==linux-vm-dev);state==DRAFT": 0,
	} {
		if got := count("blueprints", filter); got != want {
			t.Errorf("%q: %d, want %d", filter, got, want)
		}
	}
	a := e.call("POST", "/apps/list", map[string]any{"filter": "name==x;colour==red"})
	if msg := a.vendorError(t, 400); !strings.Contains(msg, "colour") {
		t.Errorf("message %q does not name the attribute", msg)
	}
}

func projectUUID(e *env, name string) string {
	a := e.call("POST", "/projects/list", map[string]any{"filter": "name==" + name}).ok(e.t)
	return str(a.body, "entities", 0, "metadata", "uuid")
}

func TestLaunchLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	bp := e.bp("sas-dev", "web-stack-sandbox")
	rid := e.launch("sas-dev", "web-stack-sandbox", "web-01", map[string]string{
		"VCPUS": "2", "MEMORY_GIB": "4", "OWNER_EMAIL": "dev@example.com", "ADMIN_PASSWORD": "Tr0ub4dor&3",
	})
	p := e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid, nil).ok(t)
	if str(p.body, "status", "state") != "running" || str(p.body, "status", "app_name") != "web-01" ||
		str(p.body, "status", "bp_name") != "web-stack-sandbox" || str(p.body, "status", "bp_uuid") != bp ||
		dig(p.body, "status", "application_uuid") != nil {
		t.Fatalf("pending: %s", p.raw)
	}
	if n := dig(e.call("POST", "/apps/list", nil).ok(t).body, "metadata", "total_matches"); n != 0.0 {
		t.Fatalf("the app exists before its launch succeeded: %v", n)
	}
	e.clock.Advance(time.Second)
	p = e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid, nil).ok(t)
	id := str(p.body, "status", "application_uuid")
	if str(p.body, "status", "state") != "success" || id == "" {
		t.Fatalf("pending: %s", p.raw)
	}
	app := e.call("GET", "/apps/"+id, nil).ok(t)
	if str(app.body, "status", "state") != "provisioning" || str(app.body, "metadata", "kind") != "app" ||
		str(app.body, "metadata", "project_reference", "name") != "sas-dev" ||
		str(app.body, "metadata", "owner_reference", "name") != user ||
		str(app.body, "status", "resources", "app_blueprint_reference", "name") != "web-stack-sandbox" ||
		str(app.body, "status", "resources", "app_profile_config_reference", "name") != "Default" ||
		str(app.body, "spec", "description") != "made by a test" {
		t.Fatalf("app: %s", app.raw)
	}
	ct := str(app.body, "metadata", "creation_time")
	if ct != fmt.Sprint(e.clock.Now().UnixMicro()) {
		t.Errorf("creation_time %s", ct)
	}
	deps := dig(app.body, "status", "resources", "deployment_list").([]any)
	if len(deps) != 2 || str(deps[0], "name") != "web" || str(deps[1], "name") != "app" {
		t.Fatalf("deployments %v", deps)
	}
	el := dig(deps[0], "substrate_configuration", "element_list", 0)
	if str(el, "instance_name") != "web-01-web-0" || str(el, "address") != "10.20.0.2" || str(el, "instance_id") == "" ||
		dig(el, "create_spec", "resources", "num_sockets") != 2.0 || dig(el, "create_spec", "resources", "memory_size_mib") != 4096.0 ||
		dig(el, "create_spec", "resources", "power_state") != "OFF" {
		t.Fatalf("element %v", el)
	}
	var pd map[string]any
	if err := json.Unmarshal([]byte(str(el, "platform_data")), &pd); err != nil ||
		str(pd, "status", "resources", "nic_list", 0, "ip_endpoint_list", 0, "ip") != "10.20.0.2" {
		t.Fatalf("platform_data %v %v", pd, err)
	}
	if a2 := str(deps[1], "substrate_configuration", "element_list", 0, "address"); a2 != "10.20.0.3" {
		t.Errorf("second VM at %s", a2)
	}
	vars := map[string]map[string]any{}
	for _, v := range dig(app.body, "status", "resources", "variable_list").([]any) {
		vars[str(v, "name")] = v.(map[string]any)
	}
	if vars["VCPUS"]["value"] != "2" || vars["OWNER_EMAIL"]["value"] != "dev@example.com" || vars["DISK_GIB"]["value"] != "20" ||
		vars["ADMIN_PASSWORD"]["value"] != "" || dig(vars["ADMIN_PASSWORD"], "attrs", "is_secret_modified") != true {
		t.Fatalf("variables %v", vars)
	}
	if bytes.Contains(app.raw, []byte("Tr0ub4dor")) {
		t.Fatal("the secret came back")
	}
	runlogs := e.call("POST", "/apps/"+id+"/app_runlogs/list", map[string]any{"filter": "type==action_runlog"}).ok(t)
	root := str(runlogs.body, "entities", 0, "metadata", "uuid")
	if str(runlogs.body, "entities", 0, "status", "action_reference", "name") != "action_create" ||
		str(runlogs.body, "entities", 0, "status", "state") != "RUNNING" ||
		str(runlogs.body, "entities", 0, "status", "root_reference", "uuid") != root {
		t.Fatalf("runlogs %s", runlogs.raw)
	}

	e.clock.Advance(2 * time.Second)
	app = e.call("GET", "/apps/"+id, nil).ok(t)
	if str(app.body, "status", "state") != "running" ||
		dig(app.body, "status", "resources", "deployment_list", 0, "substrate_configuration", "element_list", 0, "create_spec", "resources", "power_state") != "ON" {
		t.Fatalf("after provisioning: %s", str(app.body, "status", "state"))
	}
	tree := e.call("POST", "/apps/"+id+"/app_runlogs/list", map[string]any{"filter": "root_reference==" + root}).ok(t)
	if dig(tree.body, "metadata", "total_matches") != 2.0 {
		t.Fatalf("runlog tree %s", tree.raw)
	}
	for _, r := range tree.body["entities"].([]any) {
		if str(r, "status", "state") != "SUCCESS" {
			t.Errorf("runlog %v", r)
		}
	}
	out := e.call("GET", "/apps/"+id+"/app_runlogs/"+root+"/output", nil).ok(t)
	if !strings.Contains(str(out.body, "status", "output_list", 0, "output"), "Created VM web-01-web-0") ||
		str(out.body, "status", "runlog_state") != "SUCCESS" || str(out.body, "output_list", 0, "output") == "" {
		t.Fatalf("output %s", out.raw)
	}

	// Listing: apps by blueprint and project, with the entity shape of GET.
	l := e.call("POST", "/apps/list", map[string]any{"filter": "blueprint_name==web-stack-sandbox;project_name==sas-dev;state!=deleted"}).ok(t)
	if dig(l.body, "metadata", "total_matches") != 1.0 || str(l.body, "entities", 0, "status", "resources", "deployment_list", 1, "name") != "app" {
		t.Fatalf("list %s", l.raw)
	}
	// A calm-dsl style launch by uuids, with the value's odd context key.
	edit := e.call("GET", "/blueprints/"+bp+"/runtime_editables", nil).ok(t)
	prof := dig(edit.body, "resources", 0, "app_profile_reference").(map[string]any)
	var vcpus map[string]any
	for _, v := range dig(edit.body, "resources", 0, "runtime_editables", "variable_list").([]any) {
		if str(v, "name") == "VCPUS" {
			vcpus = v.(map[string]any)
		}
		if str(v, "name") == "IMAGE" {
			t.Error("a fixed variable is listed as runtime editable")
		}
		if str(v, "context") != "app_profile.Default.variable" || dig(v, "value", "value") == nil {
			t.Errorf("editable %v", v)
		}
	}
	a := e.call("POST", "/blueprints/"+bp+"/simple_launch", map[string]any{"spec": map[string]any{
		"app_name": "web-02", "app_profile_reference": prof,
		"runtime_editables": map[string]any{"variable_list": []any{map[string]any{
			"uuid": vcpus["uuid"], "value": map[string]any{"value": 1, "context": "app_profile.Default.variable"}}}},
	}}).ok(t)
	if str(a.body, "status", "request_id") == "" {
		t.Fatalf("launch by uuid: %s", a.raw)
	}
}

func TestLaunchRefusals(t *testing.T) {
	e := newEnv(t, nil)
	bp := e.bp("sas-sbx", "linux-vm-sandbox")
	draft := e.bp("sas-sbx", "draft-sandbox")
	msg := e.call("POST", "/blueprints/"+draft+"/simple_launch", launchBody("x", "Default", nil)).vendorError(t, 422)
	if !strings.Contains(msg, "DRAFT") || !strings.Contains(msg, "draft-sandbox") || !strings.Contains(msg, "ACTIVE") {
		t.Errorf("DRAFT message %q", msg)
	}
	cases := []struct {
		body   any
		status int
		want   string // in the message
		field  string
	}{
		{launchBody("", "Default", nil), 422, "app_name", "spec.app_name"},
		{launchBody("x", "Gold", nil), 422, "Gold", "spec.app_profile_reference"},
		{launchBody("x", "Default", map[string]string{"COLOUR": "red"}), 422, "COLOUR", "spec.runtime_editables.variable_list[0]"},
		{launchBody("x", "Default", map[string]string{"IMAGE": "evil"}), 422, "not runtime editable", "spec.runtime_editables.variable_list[0]"},
		{launchBody("x", "Default", map[string]string{"VCPUS": "two"}), 422, "VCPUS must be a positive integer", "spec.runtime_editables.variable_list[0].value"},
		{launchBody("x", "Default", map[string]string{"NETWORK": "10.1.2.3/24"}), 422, "host bits", "spec.runtime_editables.variable_list[0].value"},
		{launchBody("x", "Default", map[string]string{"IP_ADDRESS": "10.99.0.5"}), 422, "not in NETWORK", ""},
		{launchBody("x", "Default", map[string]string{"IP_ADDRESS": "banana"}), 422, "IPv4", "spec.runtime_editables.variable_list[0].value"},
		{map[string]any{}, 422, "spec is required", "spec"},
		{map[string]any{"spec": map[string]any{"app_name": "x"}}, 422, "app_profile_reference", "spec.app_profile_reference"},
		{map[string]any{"spec": map[string]any{"app_name": 7}}, 400, "spec.app_name", "spec.app_name"},
		{json.RawMessage(`{"spec":`), 400, "not valid JSON", ""},
	}
	for i, c := range cases {
		a := e.call("POST", "/blueprints/"+bp+"/simple_launch", c.body)
		msg := a.vendorError(t, c.status)
		if !strings.Contains(msg, c.want) {
			t.Errorf("case %d: message %q lacks %q", i, msg, c.want)
		}
		if f := str(a.body, "message_list", 0, "details", "field"); f != c.field {
			t.Errorf("case %d: field %q, want %q", i, f, c.field)
		}
	}
	e.call("POST", "/blueprints/00000000-0000-4000-8000-000000000000/simple_launch", launchBody("x", "Default", nil)).vendorError(t, 404)
	a := e.call("GET", "/blueprints/not-a-uuid", nil)
	a.vendorError(t, 400)
	if str(a.body, "message_list", 0, "reason") != calm.ReasonInvalidUUID {
		t.Errorf("reason %s", a.raw)
	}
	a = e.call("GET", "/apps/00000000-0000-4000-8000-000000000000", nil)
	a.vendorError(t, 404)
	if str(a.body, "message_list", 0, "reason") != calm.ReasonNotFound || str(a.body, "kind") != "app" {
		t.Errorf("404 body %s", a.raw)
	}
	e.call("GET", "/blueprints/"+bp+"/pending_launches/00000000-0000-4000-8000-000000000000", nil).vendorError(t, 404)
	if len(e.sim.Apps()) != 0 {
		t.Fatal("a refused launch made an app")
	}
}

func TestDuplicateAppNames(t *testing.T) {
	e := newEnv(t, nil)
	e.launch("sas-dev", "linux-vm-dev", "db-01", nil)
	// Taken while the first launch is still pending...
	msg := e.call("POST", "/blueprints/"+e.bp("sas-dev", "postgres-dev")+"/simple_launch", launchBody("db-01", "Default", nil)).vendorError(t, 409)
	if !strings.Contains(msg, `"db-01"`) || !strings.Contains(msg, "sas-dev") {
		t.Errorf("message %q", msg)
	}
	e.clock.Advance(3 * time.Second)
	// ...and once it exists; another project may use the name.
	e.call("POST", "/blueprints/"+e.bp("sas-dev", "linux-vm-sandbox")+"/simple_launch", launchBody("db-01", "Default", nil)).vendorError(t, 409)
	e.launch("sas-sbx", "linux-vm-sandbox", "db-01", nil)
	// Deleted apps free their name.
	id := e.sim.Apps()[0].UUID
	e.call("DELETE", "/apps/"+id, nil).ok(t)
	e.call("POST", "/blueprints/"+e.bp("sas-dev", "linux-vm-dev")+"/simple_launch", launchBody("db-01", "Default", nil)).vendorError(t, 409)
	e.clock.Advance(time.Second)
	e.launch("sas-dev", "linux-vm-dev", "db-01", nil)
}

func TestFailureInjection(t *testing.T) {
	e := newEnv(t, nil)
	bp := e.bp("sas-dev", "linux-vm-dev")
	e.sim.FailNextLaunches(1, "quota exceeded in project sas-dev")
	rid := e.launch("sas-dev", "linux-vm-dev", "f-1", nil)
	e.clock.Advance(time.Second)
	p := e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid, nil).ok(t)
	if str(p.body, "status", "state") != "failure" || str(p.body, "status", "message_list", 0, "message") != "quota exceeded in project sas-dev" ||
		dig(p.body, "status", "application_uuid") != nil {
		t.Fatalf("failed launch %s", p.raw)
	}
	if len(e.sim.Apps()) != 0 {
		t.Fatal("a failed launch made an app")
	}
	// The name is free again and the next launch is not affected.
	e.sim.FailNextProvisions(1, "image rocky-9 not found on cluster")
	id := e.launchApp("sas-dev", "linux-vm-dev", "f-1", nil)
	app := e.call("GET", "/apps/"+id, nil).ok(t)
	if str(app.body, "status", "state") != "error" {
		t.Fatalf("state %s", str(app.body, "status", "state"))
	}
	rl := e.call("POST", "/apps/"+id+"/app_runlogs/list", map[string]any{"filter": "type==action_runlog;state==FAILURE"}).ok(t)
	root := str(rl.body, "entities", 0, "metadata", "uuid")
	out := e.call("GET", "/apps/"+id+"/app_runlogs/"+root+"/output", nil).ok(t)
	if !strings.Contains(str(out.body, "status", "output_list", 0, "output"), "image rocky-9 not found on cluster") ||
		dig(out.body, "status", "exit_code") != 1.0 {
		t.Fatalf("output %s", out.raw)
	}
	if id2 := e.launchApp("sas-dev", "linux-vm-dev", "f-2", nil); str(e.call("GET", "/apps/"+id2, nil).body, "status", "state") != "running" {
		t.Fatal("the failure injection did not stop at one")
	}
	// Seed flags and the fail rate.
	seed := calm.DefaultSeed()
	seed.Projects[0].Blueprints[0].FailLaunches = true
	seed.Projects[0].Blueprints[0].FailMessage = "blueprint broken on purpose"
	e2 := newEnv(t, func(o *calm.Options) { o.Seed = &seed })
	rid = e2.launch("sas-sbx", "linux-vm-sandbox", "x", nil)
	e2.clock.Advance(time.Second)
	p = e2.call("GET", "/blueprints/"+e2.bp("sas-sbx", "linux-vm-sandbox")+"/pending_launches/"+rid, nil).ok(t)
	if str(p.body, "status", "message_list", 0, "message") != "blueprint broken on purpose" {
		t.Fatalf("seed flag: %s", p.raw)
	}
	e3 := newEnv(t, func(o *calm.Options) { o.LaunchFailRate = 1 })
	rid = e3.launch("sas-sbx", "linux-vm-sandbox", "y", nil)
	e3.clock.Advance(time.Second)
	if st := str(e3.call("GET", "/blueprints/"+e3.bp("sas-sbx", "linux-vm-sandbox")+"/pending_launches/"+rid, nil).body, "status", "state"); st != "failure" {
		t.Fatalf("LaunchFailRate 1: %s", st)
	}
}

func TestActions(t *testing.T) {
	e := newEnv(t, nil)
	id := e.launchApp("sas-dev", "k8s-worker-pool-dev", "pool-1", nil)
	power := func() []string {
		var out []string
		for _, v := range e.sim.Apps()[0].VMs {
			out = append(out, v.PowerState)
		}
		return out
	}
	if strings.Join(power(), ",") != "ON,ON,ON" {
		t.Fatalf("power %v", power())
	}
	msg := e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_start"}).vendorError(t, 422)
	if !strings.Contains(msg, "running") || !strings.Contains(msg, "stopped") {
		t.Errorf("message %q", msg)
	}
	a := e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_stop"}).ok(t)
	rl := str(a.body, "runlog_uuid")
	if rl == "" {
		t.Fatalf("no top-level runlog_uuid: %s", a.raw)
	}
	if s := e.sim.Apps()[0].State; s != "stopping" {
		t.Fatalf("state %s", s)
	}
	msg = e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_restart"}).vendorError(t, 422)
	if !strings.Contains(msg, "stopping") {
		t.Errorf("message %q", msg)
	}
	e.clock.Advance(time.Second)
	if s := e.sim.Apps()[0].State; s != "stopped" || strings.Join(power(), ",") != "OFF,OFF,OFF" {
		t.Fatalf("state %s power %v", s, power())
	}
	tree := e.call("POST", "/apps/"+id+"/app_runlogs/list", map[string]any{"filter": "root_reference==" + rl}).ok(t)
	if dig(tree.body, "metadata", "total_matches") != 2.0 || str(tree.body, "entities", 0, "status", "action_reference", "name") != "action_stop" {
		t.Fatalf("tree %s", tree.raw)
	}
	// Start by action uuid, as listed in the app's action_list.
	app := e.call("GET", "/apps/"+id, nil).ok(t)
	var startUUID string
	for _, act := range dig(app.body, "status", "resources", "action_list").([]any) {
		if str(act, "name") == "action_start" {
			startUUID = str(act, "uuid")
		}
	}
	a = e.call("POST", "/apps/"+id+"/actions/"+startUUID+"/run", map[string]any{}).ok(t)
	if str(a.body, "status", "runlog_uuid") == "" || e.sim.Apps()[0].State != "starting" {
		t.Fatalf("start by uuid: %s", a.raw)
	}
	e.clock.Advance(time.Second)
	e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_restart"}).ok(t)
	if s := e.sim.Apps()[0].State; s != "restarting" || strings.Join(power(), ",") != "ON,ON,ON" {
		t.Fatalf("restart: %s %v", s, power())
	}
	e.clock.Advance(time.Second)
	if s := e.sim.Apps()[0].State; s != "running" {
		t.Fatalf("after restart %s", s)
	}
	e.call("POST", "/apps/"+id+"/actions/00000000-0000-4000-8000-000000000000/run", map[string]any{}).vendorError(t, 404)
	e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_dance"}).vendorError(t, 422)
	e.call("POST", "/apps/"+id+"/actions/run", map[string]any{}).vendorError(t, 422)
	e.call("GET", "/apps/"+id+"/actions/run", nil).vendorError(t, 405)
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	hard := e.launchApp("sas-dev", "linux-vm-dev", "hard", nil)
	soft := e.launchApp("sas-dev", "linux-vm-dev", "soft", nil)
	d := e.call("DELETE", "/apps/"+hard, nil).ok(t)
	rl := str(d.body, "status", "runlog_uuid")
	if rl == "" || str(d.body, "status", "ergon_task_uuid") == "" {
		t.Fatalf("delete: %s", d.raw)
	}
	if s := str(e.call("GET", "/apps/"+hard, nil).ok(t).body, "status", "state"); s != "deleting" {
		t.Fatalf("state %s", s)
	}
	// A retried DELETE while deleting gets the same runlog.
	if again := str(e.call("DELETE", "/apps/"+hard, nil).ok(t).body, "status", "runlog_uuid"); again != rl {
		t.Fatalf("second delete runlog %s, first %s", again, rl)
	}
	e.call("DELETE", "/apps/"+soft+"?type=soft", nil).ok(t)
	e.call("DELETE", "/apps/"+soft+"?type=hard", nil).vendorError(t, 400)
	e.clock.Advance(time.Second)
	got := e.call("GET", "/apps/"+hard, nil).ok(t)
	if str(got.body, "status", "state") != "deleted" ||
		len(dig(got.body, "status", "resources", "deployment_list", 0, "substrate_configuration", "element_list").([]any)) != 0 {
		t.Fatalf("deleted app: %s", got.raw)
	}
	msg := e.call("DELETE", "/apps/"+hard, nil).vendorError(t, 404)
	if !strings.Contains(msg, "already deleted") {
		t.Errorf("message %q", msg)
	}
	l := e.call("POST", "/apps/list", map[string]any{"filter": "state==deleted"}).ok(t)
	if dig(l.body, "metadata", "total_matches") != 2.0 {
		t.Fatalf("deleted apps are still listed: %s", l.raw)
	}
	if dig(e.call("POST", "/apps/list", map[string]any{"filter": "state!=deleted"}).ok(t).body, "metadata", "total_matches") != 0.0 {
		t.Fatal("state!=deleted")
	}
	apps := e.sim.Apps()
	if !apps[1].SoftDeleted || apps[0].SoftDeleted || !apps[1].VMs[0].Exists || apps[0].VMs[0].Exists ||
		apps[1].VMs[0].PowerState != "ON" {
		t.Fatalf("snapshots %+v", apps)
	}
	// The hard-deleted app's address is free again; the soft-deleted one's VM keeps its own.
	id := e.launchApp("sas-dev", "linux-vm-dev", "next", nil)
	for _, a := range e.sim.Apps() {
		if a.UUID == id && a.VMs[0].Address != apps[0].VMs[0].Address {
			t.Errorf("new app at %s, freed address was %s (soft-deleted holds %s)", a.VMs[0].Address, apps[0].VMs[0].Address, apps[1].VMs[0].Address)
		}
	}
	// Deleting while provisioning aborts the create runlog.
	rid := e.launch("sas-dev", "linux-vm-dev", "short-lived", nil)
	e.clock.Advance(time.Second)
	p := e.call("GET", "/blueprints/"+e.bp("sas-dev", "linux-vm-dev")+"/pending_launches/"+rid, nil).ok(t)
	sl := str(p.body, "status", "application_uuid")
	e.call("DELETE", "/apps/"+sl, nil).ok(t)
	rls := e.call("POST", "/apps/"+sl+"/app_runlogs/list", map[string]any{"filter": "action_name==action_create;type==action_runlog"}).ok(t)
	if str(rls.body, "entities", 0, "status", "state") != "ABORTED" {
		t.Fatalf("create runlog %s", rls.raw)
	}
}

func TestHideDeletedApps(t *testing.T) {
	e := newEnv(t, func(o *calm.Options) { o.HideDeletedApps = true })
	id := e.launchApp("sas-sbx", "linux-vm-sandbox", "gone", nil)
	e.call("DELETE", "/apps/"+id, nil).ok(t)
	e.clock.Advance(time.Second)
	if n := dig(e.call("POST", "/apps/list", nil).ok(t).body, "metadata", "total_matches"); n != 0.0 {
		t.Fatalf("listed %v", n)
	}
	if n := dig(e.call("POST", "/apps/list", map[string]any{"filter": "_state==deleted"}).ok(t).body, "metadata", "total_matches"); n != 1.0 {
		t.Fatalf("asked for: %v", n)
	}
}

func TestSecretsAndRestartMidLaunch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "calm.json")
	const secret = "S3cret-Admin-Passw0rd-xyzzy"
	e := newEnv(t, func(o *calm.Options) { o.StatePath = path })
	bp := e.bp("sas-prod", "postgres-ha-prod")
	rid := e.launch("sas-prod", "postgres-ha-prod", "pg-prod-1", map[string]string{"ADMIN_PASSWORD": secret, "DISK_GIB": "300"})
	e.clock.Advance(500 * time.Millisecond)

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(pass)) {
		t.Fatal("the state file holds a secret in clear")
	}
	if !bytes.Contains(raw, []byte(calm.SecretSHA256(secret))) {
		t.Fatal("the state file lacks the secret's hash")
	}

	e.restart() // mid-launch
	p := e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid, nil).ok(t)
	if str(p.body, "status", "state") != "running" {
		t.Fatalf("after restart: %s", p.raw)
	}
	e.clock.Advance(500 * time.Millisecond)
	p = e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid, nil).ok(t)
	id := str(p.body, "status", "application_uuid")
	e.clock.Advance(time.Second)
	e.restart() // mid-provisioning
	if s := str(e.call("GET", "/apps/"+id, nil).ok(t).body, "status", "state"); s != "provisioning" {
		t.Fatalf("state %s", s)
	}
	e.clock.Advance(time.Second)
	e.restart()
	apps := e.sim.Apps()
	if len(apps) != 1 || apps[0].State != "running" || len(apps[0].VMs) != 3 || apps[0].VMs[2].DiskGiB != 300 ||
		apps[0].SecretHashes["ADMIN_PASSWORD"] != calm.SecretSHA256(secret) || apps[0].Variables["ADMIN_PASSWORD"] != "" {
		t.Fatalf("after restarts: %+v", apps)
	}
	// No GET or list ever returns it.
	for _, a := range []answer{
		e.call("GET", "/apps/"+id, nil), e.call("POST", "/apps/list", nil),
		e.call("GET", "/blueprints/"+bp, nil), e.call("GET", "/blueprints/"+bp+"/runtime_editables", nil),
		e.call("POST", "/apps/"+id+"/app_runlogs/list", nil),
	} {
		if bytes.Contains(a.ok(t).raw, []byte(secret)) {
			t.Fatalf("secret returned: %s", a.raw)
		}
	}
	if err := os.WriteFile(path, []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := calm.New(e.opts); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}

func TestConcurrentLaunchesNeverShareAnAddress(t *testing.T) {
	seed := calm.Seed{Projects: []calm.SeedProject{{Name: "p", Network: "10.50.0.0/26",
		Blueprints: []calm.SeedBlueprint{{Name: "pair", Deployments: []calm.SeedDeployment{{Name: "vm", Replicas: 2}}}}}}}
	e := newEnv(t, func(o *calm.Options) { o.Seed = &seed })
	bp := e.bp("p", "pair")
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, _ := json.Marshal(launchBody(fmt.Sprintf("app-%02d", i), "Default", nil))
			req, _ := http.NewRequest("POST", e.ts.URL+calm.BasePath+"/blueprints/"+bp+"/simple_launch", bytes.NewReader(b))
			req.SetBasicAuth(user, pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}(i)
	}
	wg.Wait()
	ok, full := 0, 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 409:
			full++
		default:
			t.Errorf("status %d", s)
		}
	}
	// A /26 has 61 usable addresses: 30 apps of two VMs fit, the rest are refused.
	if ok != 30 || full != 10 {
		t.Fatalf("%d launched, %d refused", ok, full)
	}
	e.clock.Advance(time.Minute)
	seen := map[string]string{}
	for _, a := range e.sim.Apps() {
		for _, v := range a.VMs {
			if other, dup := seen[v.Address]; dup {
				t.Fatalf("%s given to %s and %s", v.Address, other, v.Name)
			}
			seen[v.Address] = v.Name
		}
	}
}

func TestOutOfBandChanges(t *testing.T) {
	e := newEnv(t, nil)
	id := e.launchApp("sas-dev", "linux-vm-dev", "drift", map[string]string{"OWNER_EMAIL": "a@example.com"})
	desc, vcpus, off := "edited in Prism", 6, "OFF"
	if err := e.sim.ChangeAppOutOfBand(id, calm.AppChange{Description: &desc, VCPUs: &vcpus, PowerState: &off,
		Variables: map[string]string{"OWNER_EMAIL": "b@example.com"}}); err != nil {
		t.Fatal(err)
	}
	app := e.call("GET", "/apps/"+id, nil).ok(t)
	el := dig(app.body, "status", "resources", "deployment_list", 0, "substrate_configuration", "element_list", 0)
	if str(app.body, "status", "description") != desc || dig(el, "create_spec", "resources", "num_sockets") != 6.0 ||
		dig(el, "create_spec", "resources", "power_state") != "OFF" || str(app.body, "status", "state") != "running" {
		t.Fatalf("after change: %s", app.raw)
	}
	if e.sim.Apps()[0].Variables["OWNER_EMAIL"] != "b@example.com" {
		t.Fatal("variable not changed")
	}
	if err := e.sim.ChangeAppOutOfBand(id, calm.AppChange{Variables: map[string]string{"NOPE": "x", "OWNER_EMAIL": "c"}}); err == nil ||
		e.sim.Apps()[0].Variables["OWNER_EMAIL"] != "b@example.com" {
		t.Fatalf("unknown variable: %v", err)
	}
	if err := e.sim.SetAppState(id, "stopped"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetAppState(id, "sleeping"); err == nil {
		t.Fatal("bogus state accepted")
	}
	e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_start"}).ok(t)
	if err := e.sim.DeleteAppOutOfBand(id); err != nil {
		t.Fatal(err)
	}
	if s := str(e.call("GET", "/apps/"+id, nil).ok(t).body, "status", "state"); s != "deleted" {
		t.Fatalf("state %s", s)
	}
	if err := e.sim.PurgeAppOutOfBand(id); err != nil {
		t.Fatal(err)
	}
	e.call("GET", "/apps/"+id, nil).vendorError(t, 404)
	if len(e.sim.Apps()) != 0 {
		t.Fatal("purged app still in Apps")
	}
	if err := e.sim.SetAppState(id, "running"); err == nil {
		t.Fatal("changed a vanished app")
	}
}

func TestFailRateLatencyAndTLS(t *testing.T) {
	e := newEnv(t, func(o *calm.Options) { o.FailRate = 1; o.RetryAfter = 1500 * time.Millisecond })
	a := e.call("POST", "/projects/list", nil)
	if a.status != 503 || a.header.Get("Retry-After") != "2" || json.Valid(a.raw) {
		t.Fatalf("503: %d %v %s", a.status, a.header, a.raw)
	}
	e.sim.SetFailRate(0)
	e.sim.SetLatency(50 * time.Millisecond)
	start := time.Now()
	e.call("POST", "/projects/list", nil).ok(t)
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("latency not applied")
	}

	b, err := simtls.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := calm.New(calm.Options{Users: map[string]string{user: pass}, TLSConfig: b.ServerConfig})
	if err != nil {
		t.Fatal(err)
	}
	root, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if !strings.HasPrefix(root, "https://127.0.0.1:") || sim.URL() != root {
		t.Fatalf("root %s", root)
	}
	if _, err := sim.Start("127.0.0.1:0"); err == nil {
		t.Fatal("started twice")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", root+calm.BasePath+"/projects/list", strings.NewReader("{}"))
	req.SetBasicAuth(user, pass)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https: %d", resp.StatusCode)
	}
}
