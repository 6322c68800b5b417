package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// withBlueprints is minimalData with a Calm catalog: one blueprint and the
// per-app totals, changed by mut.
func withBlueprints(t *testing.T, mut func(bundle map[string]any)) map[string]any {
	t.Helper()
	var data map[string]any
	if err := json.Unmarshal([]byte(minimalData), &data); err != nil {
		t.Fatal(err)
	}
	b := data["sas"].(map[string]any)["bundle"].(map[string]any)
	b["blueprints"] = map[string]any{"web-stack-sandbox": map[string]any{"level": "sandbox",
		"profiles": map[string]any{"Default": map[string]any{"vms": 2}}}}
	l := b["limits"].(map[string]any)
	l["max_total_vcpus"], l["max_total_memory_gib"], l["max_total_disk_gib"] = 4, 8, 80
	if mut != nil {
		mut(b)
	}
	return data
}

func blueprint(b map[string]any) map[string]any {
	return b["blueprints"].(map[string]any)["web-stack-sandbox"].(map[string]any)
}

func limits(b map[string]any) map[string]any { return b["limits"].(map[string]any) }

// Profiles and per-app totals are part of the declaration: a bundle that
// lacks them, or declares what no launch could satisfy, does not load (and
// so denies everything), with an error naming the field.
func TestBundleSpecValidatesProfilesAndTotals(t *testing.T) {
	if _, _, err := parseSpec(withBlueprints(t, nil)); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	cases := []struct {
		name string
		mut  func(b map[string]any)
		want string
	}{
		{"no profiles", func(b map[string]any) { delete(blueprint(b), "profiles") },
			`blueprints.web-stack-sandbox.profiles: at least one app profile is required, e.g. {"Default": {"vms": 1}}`},
		{"empty profiles", func(b map[string]any) { blueprint(b)["profiles"] = map[string]any{} }, "at least one app profile"},
		{"zero VMs", func(b map[string]any) { blueprint(b)["profiles"] = map[string]any{"HA": map[string]any{}} },
			"blueprints.web-stack-sandbox.profiles.HA.vms: 0; a profile runs at least one VM"},
		{"profile name a request cannot carry", func(b map[string]any) {
			blueprint(b)["profiles"] = map[string]any{"HA/../x": map[string]any{"vms": 1}}
		}, `blueprints.web-stack-sandbox.profiles: "HA/../x" is not an app profile name`},
		{"more VMs than the totals allow at the smallest size", func(b map[string]any) {
			blueprint(b)["profiles"] = map[string]any{"Big": map[string]any{"vms": 5}}
		}, "blueprints.web-stack-sandbox.profiles.Big.vms: 5 VMs exceed limits.max_total_vcpus 4"},
		{"totals missing", func(b map[string]any) { delete(limits(b), "max_total_memory_gib") },
			"limits.max_total_memory_gib: required when the bundle declares blueprints"},
		{"total below the per-VM limit", func(b map[string]any) { limits(b)["max_total_disk_gib"] = 40 },
			"limits.max_total_disk_gib: 40 is below max_disk_gib 50"},
		{"negative total", func(b map[string]any) { limits(b)["max_total_vcpus"] = -1 }, "limits.max_total_vcpus: -1 is negative"},
		{"cancel declared", func(b map[string]any) {
			b["actions"] = map[string]any{"sbx": map[string]any{"calm_app": []any{"create", "cancel"}}}
		}, `actions.sbx.calm_app: "cancel" is not declared: a cancel follows the rules of the action it stops`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseSpec(withBlueprints(t, c.mut))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	// Without blueprints the totals may be left out (a bundle for IP
	// reservations only).
	if _, _, err := parseSpec(withBlueprints(t, func(b map[string]any) {
		b["blueprints"] = map[string]any{}
		delete(limits(b), "max_total_vcpus")
	})); err != nil {
		t.Errorf("bundle without blueprints and totals: %v", err)
	}
}

// The example bundles declare the profiles the Calm simulator's blueprints
// have (internal/sim/calm DefaultSeed) with their VM counts, and the
// catalog shows the per-app totals.
func TestExampleBundlesDeclareProfilesAndTotals(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	want := map[string]map[string]map[string]int{
		"fedramp_sbx_default": {"linux-vm-sandbox": {"Default": 1}, "web-stack-sandbox": {"Default": 2}},
		"fedramp_dev_default": {"linux-vm-sandbox": {"Default": 1}, "web-stack-sandbox": {"Default": 2}, "linux-vm-dev": {"Default": 1},
			"postgres-dev": {"Default": 1, "HA": 3}, "k8s-worker-pool-dev": {"Default": 3}},
		"fedramp_prod_restricted": {"linux-vm-prod": {"Default": 1}, "postgres-ha-prod": {"Default": 3, "HA": 3}},
	}
	for bundle, bps := range want {
		info, _ := e.Bundle(bundle)
		if len(info.Spec.Blueprints) != len(bps) {
			t.Errorf("%s: blueprints %v, want %v", bundle, info.Spec.CatalogNames(api.CatalogBlueprints), bps)
		}
		for bp, profiles := range bps {
			got := map[string]int{}
			for name, p := range info.Spec.Blueprints[bp].Profiles {
				got[name] = p.VMs
			}
			if !equalCounts(got, profiles) {
				t.Errorf("%s: %s profiles %v, want %v", bundle, bp, got, profiles)
			}
		}
		c := info.Catalog(info.Spec.Environments[0])
		if c.Limits["max_total_vcpus"] != info.Spec.Limits.MaxTotalVCPUs || c.Limits["max_total_vcpus"] == 0 ||
			c.Limits["max_total_memory_gib"] == 0 || c.Limits["max_total_disk_gib"] == 0 {
			t.Errorf("%s: catalog limits %v lack the per-app totals", bundle, c.Limits)
		}
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Reads and cancels are judged with the input the gateway builds from
// ReadRequest and CancelRequest: a read wherever the bundle lists read, a
// cancel as the action it stops.
func TestCancelAndReadAreJudged(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	stored := &Resource{ID: "ipr-0001", Bundle: "fedramp_prod_restricted", Environment: "prod", Spec: map[string]any{"hostname": "pay-01"}}
	prodIP := api.IPReservationRequest{Network: "prod-app", Hostname: "pay-01", DNSZone: "prod.example.internal", ChangeTicket: "CHG0012345"}
	cases := []struct {
		name, bundle, env, kind, action string
		request                         any
		resource                        *Resource
		deny                            string // "" = allowed
		message                         string
	}{
		{"sbx read", "fedramp_sbx_default", "sbx", api.KindCalmApp, api.ActionRead, ReadRequest{ID: "app-0001", Refresh: true}, stored, "", ""},
		{"prod read of an operation log", "fedramp_prod_restricted", "prod", api.KindModuleRun, api.ActionRead,
			ReadRequest{OperationID: "op-0001", Log: true}, nil, "", ""},
		{"sbx cancel of a create", "fedramp_sbx_default", "sbx", api.KindCalmApp, api.ActionCancel,
			CancelRequest{Cancels: api.ActionCreate, OperationID: "op-0001", Spec: map[string]any{"blueprint": "linux-vm-sandbox"}}, nil, "", ""},
		{"prod cancel of a create without ticket", "fedramp_prod_restricted", "prod", api.KindIPReservation, api.ActionCancel,
			CancelRequest{Cancels: api.ActionCreate, OperationID: "op-0001", Spec: prodIP}, nil, "change_ticket_required",
			"bundle fedramp_prod_restricted requires a change ticket (change_ticket, matching ^CHG[0-9]{7}$) to cancel the create of a ip_reservation in prod: cancelling a create undoes it with a delete"},
		{"prod cancel of a create with ticket", "fedramp_prod_restricted", "prod", api.KindIPReservation, api.ActionCancel,
			CancelRequest{Cancels: api.ActionCreate, OperationID: "op-0001", ChangeTicket: "CHG7654321", Spec: prodIP}, nil, "", ""},
		{"prod cancel of a Calm app create", "fedramp_prod_restricted", "prod", api.KindCalmApp, api.ActionCancel,
			CancelRequest{Cancels: api.ActionCreate, OperationID: "op-0001", ChangeTicket: "CHG7654321"}, nil, "action_not_allowed",
			`bundle fedramp_prod_restricted allows calm_app actions [create, read, update] in prod; cancelling a create undoes it with a delete, and "delete" is not one of them`},
		{"prod cancel of a delete", "fedramp_prod_restricted", "prod", api.KindIPReservation, api.ActionCancel,
			CancelRequest{Cancels: api.ActionDelete, OperationID: "op-0001", ChangeTicket: "CHG7654321"}, stored, "", ""},
		{"cancel of nothing known", "fedramp_sbx_default", "sbx", api.KindCalmApp, api.ActionCancel,
			CancelRequest{OperationID: "op-0001"}, nil, "cancel_target_unknown", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Evaluate(context.Background(), c.bundle, Input{Environment: c.env, Kind: c.kind, Action: c.action,
				Caller: sbxCaller(c.bundle), Request: c.request, Resource: c.resource})
			if err != nil {
				t.Fatal(err)
			}
			if c.deny == "" {
				if !d.Allow {
					t.Fatalf("denied: %+v", d.Violations)
				}
				return
			}
			v := mustDeny(t, d, c.deny)
			if len(d.Violations) != 1 {
				t.Errorf("want only %s, got %+v", c.deny, d.Violations)
			}
			if c.message != "" && v.Message != c.message {
				t.Errorf("message = %q\n want %q", v.Message, c.message)
			}
		})
	}
}

// A Calm app's profile is governed: an undeclared one is denied naming the
// allowed ones, and the VMs it runs times the size stay within the totals.
func TestCalmProfilesAreGoverned(t *testing.T) {
	e := load(t, Options{Dir: examplesDir})
	dev := func(profile string, size api.MachineSize) Input {
		return Input{Environment: "dev", Kind: api.KindCalmApp, Action: api.ActionCreate, Caller: sbxCaller("fedramp_dev_default"),
			Request: api.CalmAppRequest{Name: "db", Project: "sas-dev", Blueprint: "postgres-dev", Profile: profile, Network: "dev-data", Size: size}}
	}
	d, _ := e.Evaluate(context.Background(), "fedramp_dev_default", dev("HA", api.MachineSize{VCPUs: 4, MemoryGiB: 16, DiskGiB: 300}))
	if !d.Allow {
		t.Fatalf("HA within the totals denied: %+v", d.Violations)
	}
	d, _ = e.Evaluate(context.Background(), "fedramp_dev_default", dev("Huge", api.MachineSize{VCPUs: 1, MemoryGiB: 1, DiskGiB: 1}))
	if v := mustDeny(t, d, "profile_not_allowed"); v.Path != "/profile" ||
		v.Message != `bundle fedramp_dev_default allows blueprint postgres-dev with profiles [Default, HA]; "Huge" is not one of them` {
		t.Errorf("violation = %+v", v)
	}
	d, _ = e.Evaluate(context.Background(), "fedramp_dev_default", dev("HA", api.MachineSize{VCPUs: 6, MemoryGiB: 16, DiskGiB: 300}))
	if v := mustDeny(t, d, "total_size_exceeds_limit"); v.Path != "/size/vcpus" || len(d.Violations) != 1 ||
		!strings.Contains(v.Message, "runs 3 VMs, so 6 each is 18 in all (at most 5 each fits)") {
		t.Errorf("violations = %+v", d.Violations)
	}
}
