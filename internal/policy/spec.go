package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// BundleInfo describes a loaded bundle. It is a copy: changing it does not
// change the evaluator.
type BundleInfo struct {
	Name string `json:"name"`
	// Revision identifies this content of the bundle: the .manifest's
	// revision, "+", and the first 16 hex digits of Digest (e.g.
	// "2025.07.1+3f9a1c2b7e4d5a6b"; "." instead of "+" when the manifest's
	// revision already has a "+"). Two contents never share a Revision on
	// one gateway, even when an edit forgot to bump the .manifest; decisions
	// carry it (api.Decision.Revision) and EvaluateAt judges by it.
	Revision string `json:"revision"`
	// ManifestRevision is the revision the bundle's .manifest declares.
	ManifestRevision string `json:"manifest_revision,omitempty"`
	// Digest is the SHA-256 (hex) of the bundle's files exactly as they were
	// read and compiled: each file's path, length and bytes, sorted by path.
	// A directory and a tarball holding the same files have the same Digest.
	Digest      string    `json:"digest,omitempty"`
	Description string    `json:"description"`
	Signed      bool      `json:"signed"`
	LoadedAt    time.Time `json:"loaded_at"`
	// Error is set when the bundle failed to load; it then denies every
	// request and Data/Spec are empty.
	Error string `json:"error,omitempty"`
	// Data is data.sas.bundle exactly as the bundle declares it (JSON
	// numbers are float64), for GET /v1/bundles/{name}.
	Data map[string]any `json:"data"`
	// Spec is Data decoded into the fields the evaluator and the gateway use.
	Spec BundleSpec `json:"-"`
}

// BundleSpec is the typed form of data.sas.bundle: what a bundle allows.
// Bundles may carry more fields (they stay in BundleInfo.Data); these are
// validated at load, and a bundle whose declaration is invalid denies
// everything.
//
//	{"sas": {"bundle": {
//	  "description": "FedRAMP sandbox default: ...",
//	  "environments": ["sbx"],
//	  "actions": {"sbx": {"ip_reservation": ["create", "read", "update", "delete"], ...}},
//	  "networks": {"sbx-app": {"cidr": "10.10.0.0/24", "environments": ["sbx"], "description": "..."}},
//	  "dns_zones": {"sbx.example.internal": {"environments": ["sbx"], "description": "..."}},
//	  "dns_views": ["default"],
//	  "blueprint_levels": ["sandbox"],
//	  "blueprints": {"web-stack-sandbox": {"level": "sandbox", "description": "...",
//	    "profiles": {"Default": {"vms": 2}}}},
//	  "modules": {"platform/maintenance-window": {"versions": ["1.1.0"], "description": "..."}},
//	  "limits": {"max_vcpus": 2, "max_memory_gib": 4, "max_disk_gib": 50, "max_aliases": 2,
//	    "max_total_vcpus": 4, "max_total_memory_gib": 8, "max_total_disk_gib": 80},
//	  "requires_change_ticket": false,
//	  "change_ticket_pattern": "^CHG[0-9]{7}$",
//	  "require_module_version": false
//	}}}
//
// Actions list create, read, update and delete only. A cancel is never
// declared: it follows the rules of the action it stops (cancelling a create
// undoes it, so it needs what a delete of that kind needs; cancelling an
// update or a delete needs what that update or delete needs), so there is
// nothing more to keep in sync.
//
// A Calm launch asks for one of its blueprint's Profiles (none named means
// "Default"); the profile's VMs each get the requested size, which must stay
// within the per-VM limits (max_vcpus, ...) and, times the VMs, within the
// per-app totals (max_total_vcpus, ...).
type BundleSpec struct {
	Description string `json:"description"`
	// Environments the bundle may be used in.
	Environments []string `json:"environments"`
	// Actions maps environment → kind → allowed actions.
	Actions map[string]map[string][]string `json:"actions"`
	// Networks maps a network name to its CIDR and the environments it serves.
	Networks map[string]Network `json:"networks"`
	// DNSZones maps a zone to the environments it serves.
	DNSZones map[string]DNSZone `json:"dns_zones"`
	DNSViews []string           `json:"dns_views"`
	// BlueprintLevels are the levels of blueprint the bundle allows
	// ("sandbox", "dev", "prod"); every entry of Blueprints has one of them.
	BlueprintLevels []string             `json:"blueprint_levels"`
	Blueprints      map[string]Blueprint `json:"blueprints"`
	// CalmProjects maps a Calm project to the environments whose apps it may hold.
	CalmProjects map[string]CalmProject `json:"calm_projects"`
	// CalmVariables and CalmSecretVariables are the runtime variables a
	// caller may set on a launch, in the clear and as secrets.
	CalmVariables       []string          `json:"calm_variables"`
	CalmSecretVariables []string          `json:"calm_secret_variables"`
	Modules             map[string]Module `json:"modules"`
	Limits              Limits            `json:"limits"`
	// RequiresChangeTicket: create, update and delete need a change_ticket
	// matching ChangeTicketPattern.
	RequiresChangeTicket bool   `json:"requires_change_ticket"`
	ChangeTicketPattern  string `json:"change_ticket_pattern"`
	// RequireModuleVersion: module runs must pin one of the module's versions.
	RequireModuleVersion bool `json:"require_module_version"`
}

// CalmProject is a Calm project a bundle lets apps be launched in.
type CalmProject struct {
	Environments []string `json:"environments"`
	Description  string   `json:"description"`
}

// Network is a network a bundle allows.
type Network struct {
	CIDR         string   `json:"cidr"`
	Environments []string `json:"environments"`
	Description  string   `json:"description,omitempty"`
}

// DNSZone is a DNS zone a bundle allows.
type DNSZone struct {
	Environments []string `json:"environments"`
	Description  string   `json:"description,omitempty"`
}

// Blueprint is a Calm blueprint a bundle allows, with the app profiles a
// launch of it may ask for.
type Blueprint struct {
	Level       string `json:"level"`
	Description string `json:"description,omitempty"`
	// Profiles maps each app profile a launch may ask for to what it runs;
	// at least one. A request without a profile asks for "Default"
	// (api.DefaultCalmProfile), so a blueprint launched without one needs it.
	Profiles map[string]CalmProfile `json:"profiles"`
}

// CalmProfile is an app profile of a blueprint as the bundle governs it.
// It should say what the blueprint's profile in Calm really runs.
type CalmProfile struct {
	// VMs is how many VMs a launch of the profile makes, each of the
	// requested size: the request's size times VMs is what the app takes
	// and must stay within the limits' max_total_*.
	VMs         int    `json:"vms"`
	Description string `json:"description,omitempty"`
}

// Module is a catalog module a bundle allows, at these versions.
type Module struct {
	Versions    []string `json:"versions"`
	Description string   `json:"description,omitempty"`
	// ResourceTypes are the only resource types a run's plan may manage;
	// AllowReplace lets a plan other than a delete's destroy or replace.
	ResourceTypes []string `json:"resource_types,omitempty"`
	AllowReplace  bool     `json:"allow_replace,omitempty"`
}

// Limits cap what one request may ask for.
type Limits struct {
	// MaxVCPUs, MaxMemoryGiB and MaxDiskGiB cap each VM of a Calm app.
	MaxVCPUs     int `json:"max_vcpus"`
	MaxMemoryGiB int `json:"max_memory_gib"`
	MaxDiskGiB   int `json:"max_disk_gib"`
	MaxAliases   int `json:"max_aliases"`
	// MaxTotalVCPUs, MaxTotalMemoryGiB and MaxTotalDiskGiB cap a whole Calm
	// app: the size of each VM times its profile's VMs. Required (and at
	// least the per-VM limit) when the bundle declares blueprints.
	MaxTotalVCPUs     int `json:"max_total_vcpus,omitempty"`
	MaxTotalMemoryGiB int `json:"max_total_memory_gib,omitempty"`
	MaxTotalDiskGiB   int `json:"max_total_disk_gib,omitempty"`
	// MaxModuleResources caps the resources one module run's plan manages.
	MaxModuleResources int `json:"max_module_resources,omitempty"`
}

// AllowsEnvironment reports whether the bundle may be used in env.
func (s BundleSpec) AllowsEnvironment(env string) bool { return slices.Contains(s.Environments, env) }

// AllowedActions returns the actions the bundle allows on kind in env.
func (s BundleSpec) AllowedActions(env, kind string) []string { return s.Actions[env][kind] }

// NetworksIn returns the names of the networks usable in env, sorted.
func (s BundleSpec) NetworksIn(env string) []string {
	var out []string
	for name, n := range s.Networks {
		if slices.Contains(n.Environments, env) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ZonesIn returns the DNS zones usable in env, sorted.
func (s BundleSpec) ZonesIn(env string) []string {
	var out []string
	for name, z := range s.DNSZones {
		if slices.Contains(z.Environments, env) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

var (
	blueprintLevels = []string{"sandbox", "dev", "prod"}
	reZone          = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reCatalogName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_/-]{0,127}$`)
	reSemver        = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]{1,32})?$`)
)

// parseSpec extracts and validates data.sas.bundle. It returns the typed
// spec and the raw object (normalised through encoding/json).
func parseSpec(data map[string]any) (BundleSpec, map[string]any, error) {
	var spec BundleSpec
	sas, _ := data["sas"].(map[string]any)
	rawBundle, ok := sas["bundle"].(map[string]any)
	if !ok {
		return spec, nil, errors.New("data.json: sas.bundle is missing or not an object")
	}
	raw, err := json.Marshal(rawBundle)
	if err != nil {
		return spec, nil, fmt.Errorf("data.json: sas.bundle: %w", err)
	}
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		return spec, nil, fmt.Errorf("data.json: sas.bundle: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&spec); err != nil {
		return spec, nil, fmt.Errorf("data.json: sas.bundle: %w", err)
	}
	for _, key := range []string{"environments", "actions", "networks", "dns_zones", "dns_views", "blueprint_levels", "blueprints", "modules", "limits", "requires_change_ticket"} {
		if _, ok := plain[key]; !ok {
			return spec, nil, fmt.Errorf("data.json: sas.bundle.%s is required", key)
		}
	}
	if err := spec.validate(); err != nil {
		return spec, nil, fmt.Errorf("data.json: sas.bundle.%w", err)
	}
	return spec, plain, nil
}

func (s BundleSpec) validate() error {
	if len(s.Environments) == 0 {
		return errors.New("environments: at least one environment is required")
	}
	if err := subset("environments", s.Environments, api.Environments); err != nil {
		return err
	}
	for env, kinds := range s.Actions {
		if !slices.Contains(s.Environments, env) {
			return fmt.Errorf("actions.%s: environment is not in environments %s", env, fmtList(s.Environments))
		}
		for kind, actions := range kinds {
			if !slices.Contains(api.Kinds, kind) {
				return fmt.Errorf("actions.%s.%s: unknown kind (one of %s)", env, kind, fmtList(api.Kinds))
			}
			if slices.Contains(actions, api.ActionCancel) {
				return fmt.Errorf("actions.%s.%s: %q is not declared: a cancel follows the rules of the action it stops "+
					"(a delete for a create's, else the update or delete itself); list only %s", env, kind, api.ActionCancel, fmtList(api.Actions))
			}
			if err := subset(fmt.Sprintf("actions.%s.%s", env, kind), actions, api.Actions); err != nil {
				return err
			}
		}
	}
	for name, n := range s.Networks {
		p, err := netip.ParsePrefix(n.CIDR)
		if err != nil || p.Masked() != p || !p.Addr().Is4() {
			return fmt.Errorf("networks.%s.cidr: %q is not an IPv4 network CIDR such as 10.10.0.0/24", name, n.CIDR)
		}
		if err := s.envSubset("networks."+name+".environments", n.Environments); err != nil {
			return err
		}
	}
	for zone, z := range s.DNSZones {
		if !reZone.MatchString(zone) {
			return fmt.Errorf("dns_zones: %q is not a lowercase DNS zone name", zone)
		}
		if err := s.envSubset("dns_zones."+zone+".environments", z.Environments); err != nil {
			return err
		}
	}
	if err := subset("blueprint_levels", s.BlueprintLevels, blueprintLevels); err != nil {
		return err
	}
	l := s.Limits
	if l.MaxVCPUs <= 0 || l.MaxMemoryGiB <= 0 || l.MaxDiskGiB <= 0 || l.MaxAliases < 0 {
		return errors.New("limits: max_vcpus, max_memory_gib and max_disk_gib must be positive, max_aliases not negative")
	}
	totals := []struct {
		name         string
		total, perVM int
	}{
		{"max_total_vcpus", l.MaxTotalVCPUs, l.MaxVCPUs},
		{"max_total_memory_gib", l.MaxTotalMemoryGiB, l.MaxMemoryGiB},
		{"max_total_disk_gib", l.MaxTotalDiskGiB, l.MaxDiskGiB},
	}
	for _, t := range totals {
		per := strings.Replace(t.name, "max_total_", "max_", 1)
		switch {
		case t.total < 0:
			return fmt.Errorf("limits.%s: %d is negative", t.name, t.total)
		case t.total == 0 && len(s.Blueprints) > 0:
			return fmt.Errorf("limits.%s: required when the bundle declares blueprints (what one Calm app may take in all, VMs times size)", t.name)
		case t.total > 0 && t.total < t.perVM:
			return fmt.Errorf("limits.%s: %d is below %s %d: one VM at its limit would be refused", t.name, t.total, per, t.perVM)
		}
	}
	profileField, _ := calmProfileRule()
	for _, name := range slices.Sorted(maps.Keys(s.Blueprints)) {
		bp := s.Blueprints[name]
		if !slices.Contains(s.BlueprintLevels, bp.Level) {
			return fmt.Errorf("blueprints.%s.level: %q is not in blueprint_levels %s", name, bp.Level, fmtList(s.BlueprintLevels))
		}
		if len(bp.Profiles) == 0 {
			return fmt.Errorf("blueprints.%s.profiles: at least one app profile is required, e.g. {%q: {\"vms\": 1}} (a request without a profile asks for %s)",
				name, api.DefaultCalmProfile, api.DefaultCalmProfile)
		}
		for _, pn := range slices.Sorted(maps.Keys(bp.Profiles)) {
			field := fmt.Sprintf("blueprints.%s.profiles.%s", name, pn)
			if msg := profileField.CheckValue(pn); msg != "" {
				return fmt.Errorf("blueprints.%s.profiles: %s", name, msg)
			}
			vms := bp.Profiles[pn].VMs
			if vms <= 0 {
				return fmt.Errorf("%s.vms: %d; a profile runs at least one VM", field, vms)
			}
			for _, t := range totals {
				if vms > t.total { // even VMs of the smallest size (1) would exceed it
					return fmt.Errorf("%s.vms: %d VMs exceed limits.%s %d even at the smallest size; no launch of it could be allowed", field, vms, t.name, t.total)
				}
			}
		}
	}
	for name, m := range s.Modules {
		if !reCatalogName.MatchString(name) {
			return fmt.Errorf("modules: %q is not a catalog module name", name)
		}
		if len(m.Versions) == 0 {
			return fmt.Errorf("modules.%s.versions: at least one version is required", name)
		}
		for _, v := range m.Versions {
			if !reSemver.MatchString(v) {
				return fmt.Errorf("modules.%s.versions: %q is not a semantic version", name, v)
			}
		}
	}
	if s.RequiresChangeTicket && s.ChangeTicketPattern == "" {
		return errors.New("change_ticket_pattern: required when requires_change_ticket is true")
	}
	if s.ChangeTicketPattern != "" {
		if _, err := regexp.Compile(s.ChangeTicketPattern); err != nil {
			return fmt.Errorf("change_ticket_pattern: %w", err)
		}
	}
	return nil
}

// calmProfileRule is the kinds table's rule for a Calm app's profile, so a
// bundle can declare only profile names a request could carry.
func calmProfileRule() (*api.Rule, bool) {
	k, ok := api.KindByName(api.KindCalmApp)
	if !ok {
		return nil, false
	}
	f, ok := k.FieldAt(api.ActionCreate, "/profile")
	return f.Rule, ok
}

func (s BundleSpec) envSubset(field string, envs []string) error {
	if len(envs) == 0 {
		return fmt.Errorf("%s: at least one environment is required", field)
	}
	return subset(field, envs, s.Environments)
}

func subset(field string, xs, allowed []string) error {
	for _, x := range xs {
		if !slices.Contains(allowed, x) {
			return fmt.Errorf("%s: %q is not one of %s", field, x, fmtList(allowed))
		}
	}
	return nil
}

// clone returns a deep copy, so callers cannot change the evaluator's view.
func (b BundleInfo) clone() BundleInfo {
	b.Data, _ = deepCopy(b.Data).(map[string]any)
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	return b
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

// parseViolations converts data.sas.policy.violations into api.Violations.
// A malformed entry is still a violation (the request is denied either way)
// and says what was wrong with it.
func parseViolations(bundle string, v any) ([]api.Violation, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("data.sas.policy.violations is %T, not a set", v)
	}
	out := make([]api.Violation, 0, len(items))
	for _, item := range items {
		obj, ok := item.(map[string]any)
		rule, _ := obj["rule"].(string)
		message, _ := obj["message"].(string)
		if !ok || rule == "" || message == "" {
			raw, _ := json.Marshal(item)
			out = append(out, policyError("bundle %s reported a malformed violation (needs rule and message): %s", bundle, raw))
			continue
		}
		path, _ := obj["path"].(string)
		var controls []string
		if ids, ok := obj["control_ids"].([]any); ok {
			for _, id := range ids {
				if s, ok := id.(string); ok {
					controls = append(controls, s)
				}
			}
		}
		out = append(out, api.Violation{Rule: rule, Message: message, Path: path, ControlIDs: controls})
	}
	return out, nil
}

// CatalogNames lists the names of one of the bundle's catalogs
// (api.CatalogBlueprints, api.CatalogModules), sorted.
func (s BundleSpec) CatalogNames(catalog string) []string {
	var names []string
	switch catalog {
	case api.CatalogBlueprints:
		for n := range s.Blueprints {
			names = append(names, n)
		}
	case api.CatalogModules:
		for n := range s.Modules {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Catalog is what may be provisioned under the bundle in env: actions per
// kind, networks, zones, blueprints, modules and limits, as GET /v1/catalog shows it.
func (b BundleInfo) Catalog(env string) api.Catalog {
	s := b.Spec
	c := api.Catalog{Bundle: b.Name, Revision: b.Revision, Environment: env, Actions: map[string][]string{},
		Networks: []api.CatalogNetwork{}, DNSZones: []string{}, Blueprints: []api.CatalogEntry{}, Modules: []api.CatalogModule{},
		Limits:               map[string]int{"max_vcpus": s.Limits.MaxVCPUs, "max_memory_gib": s.Limits.MaxMemoryGiB, "max_disk_gib": s.Limits.MaxDiskGiB, "max_aliases": s.Limits.MaxAliases},
		ChangeTicketRequired: s.RequiresChangeTicket}
	for k, v := range map[string]int{"max_total_vcpus": s.Limits.MaxTotalVCPUs, "max_total_memory_gib": s.Limits.MaxTotalMemoryGiB, "max_total_disk_gib": s.Limits.MaxTotalDiskGiB} {
		if v > 0 {
			c.Limits[k] = v
		}
	}
	if !s.AllowsEnvironment(env) {
		return c // nothing may be provisioned here under this bundle
	}
	for _, kind := range api.Kinds {
		if acts := s.AllowedActions(env, kind); len(acts) > 0 {
			c.Actions[kind] = acts
		}
	}
	for _, n := range s.NetworksIn(env) {
		c.Networks = append(c.Networks, api.CatalogNetwork{Name: n, CIDR: s.Networks[n].CIDR, Description: s.Networks[n].Description})
	}
	c.DNSZones = append(c.DNSZones, s.ZonesIn(env)...)
	for _, name := range s.CatalogNames(api.CatalogBlueprints) {
		bp := s.Blueprints[name]
		c.Blueprints = append(c.Blueprints, api.CatalogEntry{Name: name, Level: bp.Level, Description: bp.Description})
	}
	for _, name := range s.CatalogNames(api.CatalogModules) {
		m := s.Modules[name]
		c.Modules = append(c.Modules, api.CatalogModule{Name: name, Versions: m.Versions, Description: m.Description})
	}
	return c
}
