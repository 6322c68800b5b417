// Package policyset generates HCP Terraform policy sets from the gateway's
// policy bundles, so a workspace's plan-time policy and the gateway's
// decision can never disagree: each bundle's data (environments, networks,
// zones, blueprints and their profiles, modules, limits) is written into an OPA set (Rego over
// `terraform show -json`, policies.hcl) and a Sentinel set (tfplan/v2,
// sentinel.hcl, tests with mocks). `make docs` regenerates
// examples/policy-sets/; a test fails when they are stale.
package policyset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/sas-platform/terraform-provider-sas/internal/policy"
)

// bundleData is what both sets check, from one bundle.
type bundleData struct {
	Name         string              `json:"name"`
	Revision     string              `json:"revision"`
	Environments []string            `json:"environments"`
	Networks     map[string]netData  `json:"networks"`
	Zones        map[string][]string `json:"zones"`
	Blueprints   []string            `json:"blueprints"`
	// Profiles maps blueprint → app profile → the VMs it runs.
	Profiles          map[string]map[string]int `json:"profiles"`
	Modules           map[string][]string       `json:"modules"`
	MaxVCPUs          int                       `json:"max_vcpus"`
	MaxMemoryGiB      int                       `json:"max_memory_gib"`
	MaxDiskGiB        int                       `json:"max_disk_gib"`
	MaxTotalVCPUs     int                       `json:"max_total_vcpus"`
	MaxTotalMemoryGiB int                       `json:"max_total_memory_gib"`
	MaxTotalDiskGiB   int                       `json:"max_total_disk_gib"`
	MaxAliases        int                       `json:"max_aliases"`
}

type netData struct {
	CIDR         string   `json:"cidr"`
	Environments []string `json:"environments"`
}

func dataOf(b policy.BundleInfo) bundleData {
	s := b.Spec
	d := bundleData{Name: b.Name, Revision: b.ManifestRevision, Environments: slices.Sorted(slices.Values(s.Environments)),
		Networks: map[string]netData{}, Zones: map[string][]string{}, Modules: map[string][]string{}, Profiles: map[string]map[string]int{},
		Blueprints: s.CatalogNames("blueprints"), MaxVCPUs: s.Limits.MaxVCPUs, MaxMemoryGiB: s.Limits.MaxMemoryGiB,
		MaxDiskGiB: s.Limits.MaxDiskGiB, MaxTotalVCPUs: s.Limits.MaxTotalVCPUs, MaxTotalMemoryGiB: s.Limits.MaxTotalMemoryGiB,
		MaxTotalDiskGiB: s.Limits.MaxTotalDiskGiB, MaxAliases: s.Limits.MaxAliases}
	for name, n := range s.Networks {
		d.Networks[name] = netData{CIDR: n.CIDR, Environments: n.Environments}
	}
	for zone, z := range s.DNSZones {
		d.Zones[zone] = z.Environments
	}
	for name, m := range s.Modules {
		d.Modules[name] = m.Versions
	}
	for name, bp := range s.Blueprints {
		d.Profiles[name] = map[string]int{}
		for p, prof := range bp.Profiles {
			d.Profiles[name][p] = prof.VMs
		}
	}
	if d.Blueprints == nil {
		d.Blueprints = []string{}
	}
	return d
}

// Files returns the generated files of every bundle in bundleDir, by path
// relative to the policy-sets directory.
func Files(bundles []policy.BundleInfo) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, b := range bundles {
		if b.Error != "" {
			return nil, fmt.Errorf("bundle %s does not load: %s", b.Name, b.Error)
		}
		d := dataOf(b)
		js, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, err
		}
		for name, tmpl := range templates {
			var buf bytes.Buffer
			if err := tmpl.Execute(&buf, map[string]any{"B": d, "JSON": string(js), "Header": header(d), "Case": caseOf[name]}); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out[filepath.Join(b.Name, name)] = buf.Bytes()
		}
	}
	return out, nil
}

// Write replaces dir's contents with files.
func Write(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func header(d bundleData) string {
	return fmt.Sprintf("Generated from policy bundle %s (revision %s) by `make docs`; do not edit.", d.Name, d.Revision)
}

// sentinelCase is one Sentinel test: its mock plan and the verdict expected.
type sentinelCase struct {
	Mock, Comment, Resource, Zone string
	Main                          bool
}

var (
	passCase = sentinelCase{Mock: "mock-tfplan-pass.sentinel", Comment: "A plan creating one reservation the bundle allows.",
		Resource: "sas_ip_reservation.ok", Main: true}
	failCase = sentinelCase{Mock: "mock-tfplan-fail.sentinel", Comment: "A plan creating one reservation in a zone no bundle environment allows.",
		Resource: "sas_ip_reservation.denied", Zone: "not-allowed.example.internal"}
)

// caseOf is the Sentinel test a generated file belongs to (zero for the others).
var caseOf = map[string]sentinelCase{
	"sentinel/test/sas/pass.hcl": passCase, "sentinel/test/sas/mock-tfplan-pass.sentinel": passCase,
	"sentinel/test/sas/fail.hcl": failCase, "sentinel/test/sas/mock-tfplan-fail.sentinel": failCase,
}

var templates = map[string]*template.Template{
	"opa/policies.hcl":                            tmpl(opaPoliciesHCL),
	"opa/sas.rego":                                tmpl(opaRego),
	"sentinel/sentinel.hcl":                       tmpl(sentinelHCL),
	"sentinel/sas.sentinel":                       tmpl(sentinelPolicy),
	"sentinel/test/sas/pass.hcl":                  tmpl(sentinelTest),
	"sentinel/test/sas/fail.hcl":                  tmpl(sentinelTest),
	"sentinel/test/sas/mock-tfplan-pass.sentinel": tmpl(sentinelMock),
	"sentinel/test/sas/mock-tfplan-fail.sentinel": tmpl(sentinelMock),
}

func tmpl(s string) *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"indent": func(n int, s string) string { return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n)) },
		// The first network and zone of the bundle's first environment, for the passing mock.
		"firstNetwork": func(d bundleData) string {
			for _, name := range slices.Sorted(maps.Keys(d.Networks)) {
				if slices.Contains(d.Networks[name].Environments, d.Environments[0]) {
					return name
				}
			}
			return ""
		},
		"firstZone": func(d bundleData) string {
			for _, zone := range slices.Sorted(maps.Keys(d.Zones)) {
				if slices.Contains(d.Zones[zone], d.Environments[0]) {
					return zone
				}
			}
			return ""
		},
	}).Parse(s))
}

const opaPoliciesHCL = `# {{.Header}}
policy "sas" {
  query             = "data.terraform.policies.sas.deny"
  enforcement_level = "mandatory"
}
`

// The OPA policy reads what HCP Terraform's OPA integration gives it:
// input.plan is `terraform show -json` of the run's plan.
const opaRego = `# {{.Header}}
#
# Denies a plan whose sas_* resources the gateway's bundle {{.B.Name}} would
# refuse: the provider's environment, networks, DNS zones, blueprints and
# their app profiles, modules, and limits (per VM and, for a Calm app's
# profile's VMs together, per app). The gateway decides again at apply; this makes a
# workspace fail at plan, in HCP Terraform's policy check, for the same reasons.
package terraform.policies.sas

import rego.v1

bundle := {{indent 0 .JSON}}

plan := object.get(input, "plan", input)

environment := env if {
	env := plan.configuration.provider_config.sas.expressions.environment.constant_value
} else := ""

changes contains rc if {
	some rc in plan.resource_changes
	startswith(rc.type, "sas_")
	some action in rc.change.actions
	action in {"create", "update"}
}

deny contains msg if {
	count(changes) > 0
	not environment in bundle.environments
	msg := sprintf("bundle %s allows environments %v; the sas provider is configured for %q", [bundle.name, bundle.environments, environment])
}

env_networks[name] := n if {
	some name, n in bundle.networks
	environment in n.environments
}

network_allowed(network) if env_networks[network]

network_allowed(network) if {
	contains(network, "/")
	some _, n in env_networks
	net.cidr_contains(n.cidr, network)
}

deny contains msg if {
	some rc in changes
	rc.type in {"sas_ip_reservation", "sas_calm_app"}
	network := rc.change.after.network
	is_string(network)
	not network_allowed(network)
	msg := sprintf("%s: bundle %s allows networks %v in %s; %q is neither one of them nor inside one", [rc.address, bundle.name, object.keys(env_networks), environment, network])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_ip_reservation"
	zone := rc.change.after.dns_zone
	not environment in object.get(bundle.zones, zone, [])
	msg := sprintf("%s: DNS zone %q is not one bundle %s allows in %s", [rc.address, zone, bundle.name, environment])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_ip_reservation"
	aliases := object.get(rc.change.after, "aliases", [])
	is_array(aliases)
	count(aliases) > bundle.max_aliases
	msg := sprintf("%s: at most %d aliases under bundle %s", [rc.address, bundle.max_aliases, bundle.name])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_calm_app"
	not rc.change.after.blueprint in bundle.blueprints
	msg := sprintf("%s: blueprint %q is not in bundle %s's catalog %v", [rc.address, rc.change.after.blueprint, bundle.name, bundle.blueprints])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_calm_app"
	some field, limit in {"vcpus": bundle.max_vcpus, "memory_gib": bundle.max_memory_gib, "disk_gib": bundle.max_disk_gib}
	rc.change.after.size[field] > limit
	msg := sprintf("%s: size.%s %d is above bundle %s's limit of %d", [rc.address, field, rc.change.after.size[field], bundle.name, limit])
}

# A launch without a profile asks for Default.
profile(rc) := p if {
	p := rc.change.after.profile
	is_string(p)
	p != ""
} else := "Default"

deny contains msg if {
	some rc in changes
	rc.type == "sas_calm_app"
	profiles := bundle.profiles[rc.change.after.blueprint]
	not profiles[profile(rc)]
	msg := sprintf("%s: bundle %s allows blueprint %s with profiles %v, not %q", [rc.address, bundle.name, rc.change.after.blueprint, sort(object.keys(profiles)), profile(rc)])
}

# The whole app: the profile's VMs times each VM's size.
deny contains msg if {
	some rc in changes
	rc.type == "sas_calm_app"
	vms := bundle.profiles[rc.change.after.blueprint][profile(rc)]
	some field, limit in {"vcpus": bundle.max_total_vcpus, "memory_gib": bundle.max_total_memory_gib, "disk_gib": bundle.max_total_disk_gib}
	is_number(rc.change.after.size[field])
	vms * rc.change.after.size[field] > limit
	msg := sprintf("%s: profile %s of blueprint %s runs %d VMs, so size.%s %d is %d in all, above bundle %s's limit of %d per app", [rc.address, profile(rc), rc.change.after.blueprint, vms, field, rc.change.after.size[field], vms * rc.change.after.size[field], bundle.name, limit])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_module_run"
	not bundle.modules[rc.change.after.module]
	msg := sprintf("%s: module %q is not in bundle %s's catalog %v", [rc.address, rc.change.after.module, bundle.name, object.keys(bundle.modules)])
}

deny contains msg if {
	some rc in changes
	rc.type == "sas_module_run"
	v := object.get(rc.change.after, "version", "")
	v != ""
	not v in object.get(bundle.modules, rc.change.after.module, [v])
	msg := sprintf("%s: module %s has versions %v in bundle %s, not %q", [rc.address, rc.change.after.module, bundle.modules[rc.change.after.module], bundle.name, v])
}
`

const sentinelHCL = `# {{.Header}}
policy "sas" {
  source            = "./sas.sentinel"
  enforcement_level = "hard-mandatory"
}
`

// The Sentinel policy checks the same rules on tfplan/v2.
const sentinelPolicy = `# {{.Header}}
#
# Denies a plan whose sas_* resources bundle {{.B.Name}} would refuse.
import "tfplan/v2" as tfplan
import "strings"
import "sockaddr"

bundle = {{indent 0 .JSON}}

# tfplan/v2's raw is the plan's JSON (terraform show -json): the provider block's environment.
environment = tfplan.raw.configuration.provider_config["sas"].expressions.environment.constant_value else ""

changes = filter tfplan.resource_changes as _, rc {
	strings.has_prefix(rc.type, "sas_") and
	(rc.change.actions contains "create" or rc.change.actions contains "update")
}

env_networks = filter bundle.networks as _, n { n.environments contains environment }

environment_allowed = rule { length(changes) is 0 or bundle.environments contains environment }

network_allowed = func(net) {
	return keys(env_networks) contains net or
		(net contains "/" and any env_networks as _, n { sockaddr.is_contained(n.cidr, net) })
}

networks_allowed = rule {
	all changes as _, rc {
		rc.type not in ["sas_ip_reservation", "sas_calm_app"] or network_allowed(rc.change.after.network)
	}
}

zones_allowed = rule {
	all changes as _, rc {
		rc.type is not "sas_ip_reservation" or
		(bundle.zones[rc.change.after.dns_zone] else []) contains environment
	}
}

blueprints_allowed = rule {
	all changes as _, rc { rc.type is not "sas_calm_app" or bundle.blueprints contains rc.change.after.blueprint }
}

# A launch without a profile asks for Default.
profile_of = func(rc) {
	p = rc.change.after.profile else null
	if p is null or p is "" {
		return "Default"
	}
	return p
}

profiles_allowed = rule {
	all changes as _, rc {
		rc.type is not "sas_calm_app" or
		(bundle.profiles[rc.change.after.blueprint] else {}) contains profile_of(rc)
	}
}

modules_allowed = rule {
	all changes as _, rc { rc.type is not "sas_module_run" or keys(bundle.modules) contains rc.change.after.module }
}

main = rule {
	environment_allowed and networks_allowed and zones_allowed and blueprints_allowed and profiles_allowed and modules_allowed
}
`

const sentinelTest = `# {{.Header}}
mock "tfplan/v2" {
  module {
    source = "{{.Case.Mock}}"
  }
}

test {
  rules = {
    main = {{.Case.Main}}
  }
}
`

const sentinelMock = `# {{.Header}}
# {{.Case.Comment}}
raw = {
	"configuration": {
		"provider_config": {
			"sas": {"expressions": {"environment": {"constant_value": "{{index .B.Environments 0}}"}}},
		},
	},
}

resource_changes = {
	"{{.Case.Resource}}": {
		"address": "{{.Case.Resource}}",
		"type":    "sas_ip_reservation",
		"change":  {"actions": ["create"], "after": {"network": "{{firstNetwork .B}}", "dns_zone": "{{if .Case.Zone}}{{.Case.Zone}}{{else}}{{firstZone .B}}{{end}}", "aliases": []}},
	},
}
`

// DenyOPA evaluates a generated OPA set's policy on a plan (the JSON of
// `terraform show -json`, as HCP Terraform passes it in input.plan) and
// returns its deny messages, sorted.
func DenyOPA(ctx context.Context, regoSource string, planJSON []byte) ([]string, error) {
	var plan any
	if err := json.Unmarshal(planJSON, &plan); err != nil {
		return nil, fmt.Errorf("plan JSON: %w", err)
	}
	q, err := rego.New(rego.Query("data.terraform.policies.sas.deny"), rego.Module("sas.rego", regoSource)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	rs, err := q.Eval(ctx, rego.EvalInput(map[string]any{"plan": plan}))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		for _, e := range r.Expressions {
			vs, _ := e.Value.([]any)
			for _, v := range vs {
				out = append(out, fmt.Sprint(v))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
