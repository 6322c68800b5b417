package policy

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

var reUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestExampleBundlesAllowTheirHappyPath(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	ctx := context.Background()
	cases := []struct {
		bundle, env, kind, action string
		request                   any
	}{
		{"fedramp_sbx_default", "sbx", api.KindIPReservation, api.ActionCreate, sbxIPRequest()},
		{"fedramp_sbx_default", "sbx", api.KindCalmApp, api.ActionCreate, api.CalmAppRequest{
			Name: "demo", Project: "sas-sbx", Blueprint: "linux-vm-sandbox", Network: "10.10.0.0/25",
			Size: api.MachineSize{VCPUs: 2, MemoryGiB: 4, DiskGiB: 50},
		}},
		{"fedramp_sbx_default", "sbx", api.KindModuleRun, api.ActionCreate, &api.ModuleRunRequest{Name: "reg", Module: "platform/service-registration", Version: "2.0.0"}},
		{"fedramp_sbx_default", "sbx", api.KindCalmApp, api.ActionDelete, nil},
		{"fedramp_dev_default", "dev", api.KindIPReservation, api.ActionCreate, api.IPReservationRequest{
			Network: "dev-app", Hostname: "api-01", DNSZone: "dev.example.internal", Aliases: []string{"api.dev.example.internal"},
		}},
		{"fedramp_dev_default", "sbx", api.KindIPReservation, api.ActionCreate, sbxIPRequest()},
		{"fedramp_dev_default", "dev", api.KindCalmApp, api.ActionCreate, api.CalmAppRequest{
			Name: "db", Project: "sas-dev", Blueprint: "postgres-dev", Network: "dev-data", Size: api.MachineSize{VCPUs: 8, MemoryGiB: 32, DiskGiB: 200},
		}},
		{"fedramp_prod_restricted", "prod", api.KindCalmApp, api.ActionCreate, api.CalmAppRequest{
			Name: "ledger", Project: "sas-prod", Blueprint: "postgres-ha-prod", Network: "prod-data",
			Size: api.MachineSize{VCPUs: 8, MemoryGiB: 32, DiskGiB: 600}, ChangeTicket: "CHG0012345", // 3 VMs: 24/96/1800 in all
		}},
		{"fedramp_prod_restricted", "prod", api.KindModuleRun, api.ActionCreate, api.ModuleRunRequest{
			Name: "ledger-window", Module: "platform/maintenance-window", Version: "1.1.0", ChangeTicket: "CHG0012345",
		}},
		{"fedramp_prod_restricted", "prod", api.KindIPReservation, api.ActionRead, nil},
	}
	for _, c := range cases {
		t.Run(c.bundle+"/"+c.env+"/"+c.kind+"/"+c.action, func(t *testing.T) {
			in := Input{Environment: c.env, Kind: c.kind, Action: c.action, Caller: sbxCaller(c.bundle), Request: c.request}
			d, err := e.Evaluate(ctx, c.bundle, in)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allow || len(d.Violations) != 0 {
				t.Fatalf("denied: %+v", d.Violations)
			}
			if d.Bundle != c.bundle || !isRevision(d.Revision, exampleRevision) || !reUUID.MatchString(d.DecisionID) {
				t.Fatalf("decision envelope: %+v", d)
			}
		})
	}
}

func TestSandboxBundleDeniesProdEnvironment(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	d, err := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "prod", sbxIPRequest()))
	if err != nil {
		t.Fatal(err)
	}
	v := mustDeny(t, d, "environment_not_allowed")
	want := `bundle fedramp_sbx_default allows environments [sbx]; "prod" is not one of them`
	if v.Message != want {
		t.Errorf("message = %q, want %q", v.Message, want)
	}
	if !slices.Contains(v.ControlIDs, "AC-3") || !slices.Contains(v.ControlIDs, "AC-6") {
		t.Errorf("control ids = %v", v.ControlIDs)
	}
	if len(d.Violations) != 1 {
		t.Errorf("want only the environment violation, got %+v", d.Violations)
	}
	raw, _ := json.Marshal(d)
	if !strings.Contains(string(raw), `"violations":[{"rule":"environment_not_allowed"`) {
		t.Errorf("wire form: %s", raw)
	}
}

func TestSandboxBundleDeniesOutOfScopeRequests(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	calm := func(mut func(*api.CalmAppRequest)) api.CalmAppRequest {
		r := api.CalmAppRequest{Name: "demo", Project: "sas-sbx", Blueprint: "linux-vm-sandbox", Network: "sbx-app", Size: api.MachineSize{VCPUs: 1, MemoryGiB: 2, DiskGiB: 20}}
		mut(&r)
		return r
	}
	cases := []struct {
		name, kind, rule, path string
		request                any
		controls               []string
	}{
		{"prod network", api.KindIPReservation, "network_not_allowed", "/network",
			map[string]any{"network": "10.30.0.0/24", "hostname": "web-01", "dns_zone": "sbx.example.internal"}, []string{"SC-7"}},
		{"prod network by name", api.KindCalmApp, "network_not_allowed", "/network",
			calm(func(r *api.CalmAppRequest) { r.Network = "prod-app" }), []string{"SC-7"}},
		{"prod blueprint", api.KindCalmApp, "blueprint_not_allowed", "/blueprint",
			calm(func(r *api.CalmAppRequest) { r.Blueprint = "postgres-ha-prod" }), []string{"AC-6"}},
		{"oversize vcpus", api.KindCalmApp, "size_exceeds_limit", "/size/vcpus",
			calm(func(r *api.CalmAppRequest) { r.Size.VCPUs = 16 }), []string{"SC-6"}},
		{"prod zone", api.KindIPReservation, "dns_zone_not_allowed", "/dns_zone",
			map[string]any{"network": "sbx-app", "hostname": "web-01", "dns_zone": "prod.example.internal"}, []string{"AC-3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := Input{Environment: "sbx", Kind: c.kind, Action: api.ActionCreate, Caller: sbxCaller("fedramp_sbx_default"), Request: c.request}
			d, err := e.Evaluate(context.Background(), "fedramp_sbx_default", in)
			if err != nil {
				t.Fatal(err)
			}
			v := mustDeny(t, d, c.rule)
			if v.Path != c.path {
				t.Errorf("path = %q, want %q", v.Path, c.path)
			}
			if !strings.Contains(v.Message, "fedramp_sbx_default") {
				t.Errorf("message does not name the bundle: %q", v.Message)
			}
			for _, id := range c.controls {
				if !slices.Contains(v.ControlIDs, id) {
					t.Errorf("control ids %v lack %s", v.ControlIDs, id)
				}
			}
			if len(d.Violations) != 1 {
				t.Errorf("want exactly one violation, got %+v", d.Violations)
			}
		})
	}
}

func TestProdBundleRequiresChangeTicket(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	in := Input{
		Environment: "prod", Kind: api.KindIPReservation, Action: api.ActionCreate, Caller: sbxCaller("fedramp_prod_restricted"),
		Request: api.IPReservationRequest{Network: "prod-app", Hostname: "pay-01", DNSZone: "prod.example.internal"},
	}
	d, err := e.Evaluate(context.Background(), "fedramp_prod_restricted", in)
	if err != nil {
		t.Fatal(err)
	}
	v := mustDeny(t, d, "change_ticket_required")
	if v.Path != "/change_ticket" || !slices.Contains(v.ControlIDs, "CM-3") {
		t.Errorf("violation = %+v", v)
	}

	in.Request = api.IPReservationRequest{Network: "prod-app", Hostname: "pay-01", DNSZone: "prod.example.internal", ChangeTicket: "CHG0012345"}
	if d, _ := e.Evaluate(context.Background(), "fedramp_prod_restricted", in); !d.Allow {
		t.Fatalf("with a ticket: %+v", d.Violations)
	}

	// Prod allows fewer actions: no self-service Calm app deletion.
	del := Input{Environment: "prod", Kind: api.KindCalmApp, Action: api.ActionDelete, Caller: sbxCaller("fedramp_prod_restricted"),
		Request: map[string]any{"change_ticket": "CHG0012345"}}
	d, _ = e.Evaluate(context.Background(), "fedramp_prod_restricted", del)
	mustDeny(t, d, "action_not_allowed")
}

func TestDevBundleDeniesEscalationToProd(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	in := Input{Environment: "prod", Kind: api.KindCalmApp, Action: api.ActionCreate, Caller: sbxCaller("fedramp_dev_default"),
		Request: api.CalmAppRequest{Name: "x", Project: "sas-dev", Blueprint: "linux-vm-dev", Network: "dev-app", Size: api.MachineSize{VCPUs: 1, MemoryGiB: 1, DiskGiB: 10}}}
	d, _ := e.Evaluate(context.Background(), "fedramp_dev_default", in)
	v := mustDeny(t, d, "environment_not_allowed")
	if !strings.Contains(v.Message, "fedramp_dev_default") || !strings.Contains(v.Message, `"prod"`) {
		t.Errorf("message = %q", v.Message)
	}
}

func TestUnknownBundleDenies(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	d, err := e.Evaluate(context.Background(), "fedramp_nope", ipInput("fedramp_nope", "sbx", sbxIPRequest()))
	if err != nil {
		t.Fatalf("an unknown bundle is a plain deny, not a failure: %v", err)
	}
	v := mustDeny(t, d, RuleBundleUnknown)
	if !strings.Contains(v.Message, `"fedramp_nope"`) || !strings.Contains(v.Message, "fedramp_sbx_default") {
		t.Errorf("message = %q", v.Message)
	}
	if d.DecisionID == "" || d.Bundle != "fedramp_nope" {
		t.Errorf("decision = %+v", d)
	}
}

func TestCallerNotBoundToBundleDenied(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_dev_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, "caller_not_bound")
	if !strings.Contains(v.Message, "sas-bundle-fedramp_sbx_default") {
		t.Errorf("message = %q", v.Message)
	}
}

// Failures must deny, never allow (Atlantis #5980 passed checks on parse
// errors).
func TestBrokenPoliciesDeny(t *testing.T) {
	const header = "package sas.policy\n\n"
	cases := []struct {
		name   string
		files  map[string]string
		atLoad bool   // the bundle fails to load (BundleInfo.Error)
		want   string // in the policy_error message
	}{
		{"syntax error", map[string]string{"policy.rego": header + "default allow := false\nallow if {\n  input.x ==\n}\nviolations := set()\n"}, true, "rego_parse_error"},
		{"undefined reference", map[string]string{"policy.rego": header + "default allow := false\nallow if data.sas.nope.x\nviolations contains x if { x := undefined_fn(1) }\n"}, true, "compile"},
		{"no violations rule", map[string]string{"policy.rego": header + "default allow := true\n"}, true, "no rule violations"},
		{"forbidden builtin http.send", map[string]string{"policy.rego": header + "default allow := false\nallow if http.send({\"method\": \"get\", \"url\": \"http://x\"}).status_code == 200\nviolations := set()\n"}, true, "http.send"},
		{"forbidden builtin opa.runtime", map[string]string{"policy.rego": header + "default allow := false\nallow if opa.runtime().env.VAULT_TOKEN\nviolations := set()\n"}, true, "opa.runtime"},
		{"package outside root", map[string]string{"policy.rego": header + "default allow := true\nviolations := set()\n", "other.rego": "package other\n\nx := 1\n"}, true, "roots"},
		{"roots not sas", map[string]string{".manifest": `{"revision": "r1", "roots": ["sas", "other"]}`, "policy.rego": header + "default allow := true\nviolations := set()\n"}, true, "roots"},
		{"no revision", map[string]string{".manifest": `{"roots": ["sas"]}`, "policy.rego": header + "default allow := true\nviolations := set()\n"}, true, "revision"},
		{"invalid data", map[string]string{"data.json": strings.Replace(minimalData, "10.10.0.0/24", "10.10.0.0/33", 1), "policy.rego": header + "default allow := true\nviolations := set()\n"}, true, "cidr"},
		{"IPv4-mapped IPv6 network", map[string]string{"data.json": strings.Replace(minimalData, "10.10.0.0/24", "::ffff:10.10.0.0/120", 1), "policy.rego": header + "default allow := true\nviolations := set()\n"}, true, "IPv4"},
		{"missing data", map[string]string{"data.json": `{"sas": {}}`, "policy.rego": header + "default allow := true\nviolations := set()\n"}, true, "sas.bundle"},
		{"divide by zero", map[string]string{"policy.rego": header + "default allow := false\nallow if 10 / count(input.request) > 1\nviolations := set()\n"}, false, "divide by zero"},
		{"conflicting rules", map[string]string{"policy.rego": header + "allow := true if input.kind\nallow := false if input.action\nviolations := set()\n"}, false, "conflict"},
		{"allow undefined", map[string]string{"policy.rego": header + "allow if input.kind == \"nothing\"\nviolations := set()\n"}, false, "undefined"},
		{"allow not boolean", map[string]string{"policy.rego": header + "allow := \"yes\"\nviolations := set()\n"}, false, "not a boolean"},
		{"violations not a set", map[string]string{"policy.rego": header + "default allow := true\nviolations := \"none\"\n"}, false, "not a set"},
		{"allow false without reason", map[string]string{"policy.rego": header + "default allow := false\nviolations := set()\n"}, false, "without reporting a violation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBundle(t, dir, "broken", c.files)
			e := load(t, Options{Dir: dir})
			info, ok := e.Bundle("broken")
			if !ok {
				t.Fatal("broken bundle not listed")
			}
			if got := info.Error != ""; got != c.atLoad {
				t.Fatalf("load error = %q, want failure at load: %v", info.Error, c.atLoad)
			}
			d, err := e.Evaluate(context.Background(), "broken", ipInput("broken", "sbx", map[string]any{}))
			if d.Allow {
				t.Fatalf("ALLOWED: %+v", d)
			}
			v := mustDeny(t, d, RulePolicyError)
			if !strings.Contains(v.Message, "broken") {
				t.Errorf("policy_error does not name the bundle: %q", v.Message)
			}
			if !strings.Contains(strings.ToLower(v.Message), strings.ToLower(c.want)) {
				t.Errorf("policy_error = %q, want it to mention %q", v.Message, c.want)
			}
			if !errors.Is(err, ErrPolicyFailure) {
				t.Errorf("err = %v, want ErrPolicyFailure", err)
			}
		})
	}
}

func TestAllowTrueWithViolationsDenies(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "contradictory", map[string]string{"policy.rego": `package sas.policy

allow := true

violations contains {"rule": "nope", "message": "always", "path": "", "control_ids": ["AC-3"]}

violations contains {"message": "no rule"}
`})
	e := load(t, Options{Dir: dir})
	d, _ := e.Evaluate(context.Background(), "contradictory", ipInput("contradictory", "sbx", nil))
	mustDeny(t, d, "nope")
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, "malformed violation") {
		t.Errorf("message = %q", v.Message)
	}
}

// A bundle whose rules forget the environment check is still confined to
// its declared environments.
func TestEvaluatorEnforcesDeclaredEnvironments(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "permissive", map[string]string{"policy.rego": "package sas.policy\n\nallow := true\n\nviolations := set()\n"})
	e := load(t, Options{Dir: dir})
	d, _ := e.Evaluate(context.Background(), "permissive", ipInput("permissive", "sbx", nil))
	if !d.Allow {
		t.Fatalf("sbx: %+v", d)
	}
	d, _ = e.Evaluate(context.Background(), "permissive", ipInput("permissive", "prod", nil))
	v := mustDeny(t, d, RuleEnvironmentNotAllowed)
	if v.Message != `bundle permissive allows environments [sbx]; "prod" is not one of them` {
		t.Errorf("message = %q", v.Message)
	}
}

func TestBundlesDescribeData(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	infos := e.Bundles()
	var names []string
	for _, b := range infos {
		names = append(names, b.Name)
		if b.Error != "" {
			t.Errorf("%s: %s", b.Name, b.Error)
		}
	}
	if want := []string{"fedramp_dev_default", "fedramp_prod_restricted", "fedramp_sbx_default"}; !slices.Equal(names, want) {
		t.Fatalf("bundles = %v", names)
	}
	sbx, ok := e.Bundle("fedramp_sbx_default")
	if !ok || !isRevision(sbx.Revision, exampleRevision) || sbx.ManifestRevision != exampleRevision || len(sbx.Digest) != 64 || sbx.Description == "" || sbx.Signed {
		t.Fatalf("info = %+v", sbx)
	}
	if got := sbx.Spec.NetworksIn("sbx"); !slices.Equal(got, []string{"sbx-app", "sbx-data"}) {
		t.Errorf("NetworksIn = %v", got)
	}
	if sbx.Spec.Limits.MaxVCPUs != 2 || sbx.Spec.Networks["sbx-app"].CIDR != "10.10.0.0/24" {
		t.Errorf("spec = %+v", sbx.Spec)
	}
	if envs, _ := sbx.Data["environments"].([]any); len(envs) != 1 || envs[0] != "sbx" {
		t.Errorf("data.environments = %v", sbx.Data["environments"])
	}
	// The copy is the caller's.
	sbx.Data["environments"] = []any{"prod"}
	again, _ := e.Bundle("fedramp_sbx_default")
	if envs, _ := again.Data["environments"].([]any); envs[0] != "sbx" {
		t.Error("changing a BundleInfo changed the evaluator")
	}
	if _, err := json.Marshal(again); err != nil {
		t.Error(err)
	}
}

func TestLoadRefusesUnusableConfiguration(t *testing.T) {
	ctx := context.Background()
	if _, err := Load(ctx, Options{}); err == nil {
		t.Error("no directory: want error")
	}
	if _, err := Load(ctx, Options{Dir: t.TempDir() + "/missing"}); err == nil {
		t.Error("missing directory: want error")
	}
	if _, err := Load(ctx, Options{Dir: t.TempDir()}); err == nil {
		t.Error("empty directory: want error")
	}
}

// A runaway policy is cut off by EvalTimeout and denies.
func TestEvaluationTimeoutDenies(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "slow", map[string]string{"policy.rego": `package sas.policy

default allow := false

allow if {
	some i in numbers.range(1, 20000)
	some j in numbers.range(1, 20000)
	i * j == -1
}

violations := set()
`})
	e := load(t, Options{Dir: dir, EvalTimeout: 50 * time.Millisecond})
	start := time.Now()
	d, err := e.Evaluate(context.Background(), "slow", ipInput("slow", "sbx", nil))
	if !errors.Is(err, ErrPolicyFailure) {
		t.Fatalf("err = %v", err)
	}
	mustDeny(t, d, RulePolicyError)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("evaluation ran %v past a 50ms timeout", elapsed)
	}
}

// The input the policy sees carries the kinds table's schema and, for an
// existing resource, the resource as stored (its own bundle and environment).
func TestInputCarriesSchemaAndStoredResource(t *testing.T) {
	v, err := inputValue(Input{Kind: api.KindIPReservation, Action: api.ActionDelete, Schema: api.PolicySchema(api.KindIPReservation),
		Resource: &Resource{ID: "ipr-1", Bundle: "fedramp_prod_restricted", Environment: "prod", Spec: map[string]any{"hostname": "db-01"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := v.String()
	for _, want := range []string{`"schema": {"mutable": ["mac", "aliases", "comment"], "required": ["network", "hostname", "dns_zone"]}`,
		`"resource": {"bundle": "fedramp_prod_restricted", "environment": "prod", "id": "ipr-1", "spec": {"hostname": "db-01"}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("input %s lacks %s", got, want)
		}
	}
}
