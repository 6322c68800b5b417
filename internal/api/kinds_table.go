package api

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The rules requests are checked by. Patterns are published (OpenAPI,
// provider); Check says what is wrong, in the words callers see.
var (
	ruleNetwork = &Rule{
		Pattern: `^([0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}|[a-z0-9][a-z0-9_-]{0,62})$`,
		Help:    "a CIDR such as 10.10.0.0/24, or a network name from the bundle",
		Check:   networkProblem,
	}
	ruleLabel   = &Rule{Pattern: reLabel.String(), MaxLen: 63, Help: "a DNS label (lowercase letters, digits and '-', 1–63 characters)"}
	ruleAppName = &Rule{Pattern: reLabel.String(), MaxLen: 63, Help: "a lowercase name (letters, digits and '-', 1–63 characters)"}
	ruleZone    = &Rule{Pattern: reFQDN, MaxLen: 253, Help: "a DNS name such as sbx.example.internal", Check: fqdnProblem}
	ruleAlias   = &Rule{Pattern: reFQDN, MaxLen: 253, Help: "a fully qualified DNS name such as www.sbx.example.internal", Check: fqdnProblem}
	ruleView    = &Rule{Pattern: reName.String(), Help: "a view name"}
	// MAC addresses in the form Infoblox returns them (lowercase, colons), so
	// what a caller sends is what it reads back: no perpetual diff.
	ruleMAC = &Rule{
		Pattern: `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`,
		Help:    "a MAC address in lowercase colon form, such as 00:50:56:aa:bb:cc",
		Check: func(v string) string {
			if !compiled(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`).MatchString(v) {
				return fmt.Sprintf("%s is not a MAC address in lowercase colon form, such as 00:50:56:aa:bb:cc", quote(v))
			}
			return ""
		},
	}
	ruleComment = &Rule{MaxLen: 256, Help: "printable text of at most 256 characters", Check: func(v string) string {
		if len(v) > 256 || !printable(v) {
			return "comments are printable text of at most 256 characters"
		}
		return ""
	}}
	ruleTicket = &Rule{Pattern: reTicket.String(), Help: "a change ticket id such as CHG0012345", Check: func(v string) string {
		if !reTicket.MatchString(v) {
			return fmt.Sprintf("%s is not a change ticket id such as CHG0012345", quote(v))
		}
		return ""
	}}
	ruleResourceID = &Rule{Pattern: reID.String(), Help: "a resource id such as ipr-0123abcd"}
	ruleBlueprint  = &Rule{Pattern: reName.String(), Help: "a blueprint name from the catalog"}
	ruleProfile    = &Rule{Pattern: reProfile.String(), Help: "an app profile name"}
	ruleProject    = &Rule{Pattern: reName.String(), Help: "a project name"}
	ruleModule     = &Rule{Pattern: reModule.String(), Help: "a module name from the catalog"}
	ruleVersion    = &Rule{Pattern: reVersion.String(), Help: "a semantic version such as 1.2.3"}
	ruleVarName    = &Rule{Pattern: reVarName.String(), Help: "a variable name", Check: func(v string) string {
		if !reVarName.MatchString(v) {
			return "variable names are letters, digits and '_', starting with a letter or '_'"
		}
		return ""
	}}
	ruleVarValue = &Rule{MaxLen: 1024, Help: "printable text of at most 1024 characters", Check: func(v string) string {
		if len(v) > 1024 || !printable(v) {
			return "values are printable text of at most 1024 characters"
		}
		return ""
	}}
)

const reFQDN = `^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`

var changeTicket = Field{Name: "change_ticket", Type: TypeString, Rule: ruleTicket,
	Description: "Change ticket id (e.g. `CHG0012345`) for bundles that require one (`fedramp_prod_restricted`)."}

// The fields an IP reservation may change in place, in its create and its update.
var (
	iprMAC     = Field{Name: "mac", Type: TypeString, Rule: ruleMAC, Mutable: true, Description: "MAC address of the host's interface."}
	iprAliases = Field{Name: "aliases", Type: TypeStrings, Rule: ruleAlias, Max: 20, Unique: true, Mutable: true, Normalize: strings.ToLower,
		Description: "Extra DNS names (FQDNs) for the host."}
	iprComment = Field{Name: "comment", Type: TypeString, Rule: ruleComment, Mutable: true, Description: "Free text stored on the host record."}
)

var ipReservationKind = &Kind{
	Name: KindIPReservation, Path: "ip-reservations", Title: "IP reservation",
	Description: "An Infoblox host record: the next free address in a network and its DNS name.",
	Create: Body{
		New: func() Validator { return &IPReservationRequest{} },
		Fields: []Field{
			{Name: "network", Type: TypeString, Required: true, Rule: ruleNetwork,
				Description: "CIDR in canonical form (`10.10.0.0/24`) or a network name the policy bundle declares (`sbx-app`)."},
			{Name: "hostname", Type: TypeString, Required: true, Rule: ruleLabel, Normalize: strings.ToLower,
				Description: "Host label; with `dns_zone` it forms the FQDN."},
			{Name: "dns_zone", Type: TypeString, Required: true, Rule: ruleZone,
				Normalize:   func(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") },
				Description: "DNS zone the bundle allows in the environment, e.g. `sbx.example.internal`."},
			{Name: "dns_view", Type: TypeString, Rule: ruleView, Description: "Infoblox DNS view (default `default`)."},
			iprMAC, iprAliases, iprComment,
			changeTicket,
		},
		Check: func(v any, f *fieldErrors) {
			r := v.(*IPReservationRequest)
			if len(r.Hostname)+1+len(r.DNSZone) > 253 {
				f.add("/hostname", "hostname.dns_zone is longer than 253 characters")
			}
		},
	},
	Update: Body{
		New:    func() Validator { return &IPReservationUpdate{} },
		Fields: []Field{iprMAC, iprAliases, iprComment, changeTicket}, // the mutable fields, as the create has them
		Check: func(v any, f *fieldErrors) {
			if r := v.(*IPReservationUpdate); r.MAC == nil && r.Aliases == nil && r.Comment == nil {
				f.add("", "nothing to update; send at least one of mac, aliases, comment")
			}
		},
	},
	Delete:   deleteBody,
	Settings: Settings{Workers: 8, StepTimeout: 2 * time.Minute, Deadline: 30 * time.Minute, MaxAttempts: 5},
}

// A Calm app's fields; power_state is the one an update changes in place.
var (
	calmPowerState = Field{Name: "power_state", Type: TypeString, Mutable: true, Rule: &Rule{Enum: []string{CalmRunning, CalmStopped}, Help: "running or stopped"},
		Description: "Power state of the app's VMs: `running` (the default after launch) or `stopped`; changed with Calm's start and stop actions."}
)

// Power states a Calm app can be asked for.
const (
	CalmRunning = "running"
	CalmStopped = "stopped"
)

var calmAppKind = &Kind{
	Name: KindCalmApp, Path: "calm-apps", Title: "Calm app",
	Description: "A Nutanix Calm application launched from a catalog blueprint.",
	Create: Body{
		New: func() Validator { return &CalmAppRequest{} },
		Fields: []Field{
			{Name: "name", Type: TypeString, Required: true, Rule: ruleAppName, Description: "Application name, unique in its project."},
			{Name: "project", Type: TypeString, Required: true, Rule: ruleProject, Description: "Calm project the app is launched in; the bundle says which projects each environment may use."},
			{Name: "blueprint", Type: TypeString, Required: true, Rule: ruleBlueprint, Catalog: CatalogBlueprints,
				Description: "Blueprint from the bundle's catalog."},
			{Name: "profile", Type: TypeString, Rule: ruleProfile, Description: "Blueprint application profile (default `Default`)."},
			{Name: "network", Type: TypeString, Rule: ruleNetwork, Description: "Network name or CIDR for the app's NICs. Give this or `ip_reservation`."},
			{Name: "ip_reservation", Type: TypeString, Rule: ruleResourceID, References: KindIPReservation,
				Description: "Id of an IP reservation of yours (same bundle and environment) whose address and network the app's first VM takes. Give this or `network`."},
			{Name: "size", Type: TypeObject, Description: "What each of the app's VMs gets (the bundle limits it).", Fields: []Field{
				{Name: "vcpus", Type: TypeInteger, Required: true, Min: 1, Max: 64, Description: "vCPUs per VM."},
				{Name: "memory_gib", Type: TypeInteger, Required: true, Min: 1, Max: 1024, Description: "Memory per VM, GiB."},
				{Name: "disk_gib", Type: TypeInteger, Required: true, Min: 1, Max: 16384, Description: "Disk per VM, GiB."},
			}},
			{Name: "variables", Type: TypeMap, Key: ruleVarName, Rule: ruleVarValue, Max: maxVariables, Description: "Runtime variables the blueprint lets a launch set."},
			{Name: "secret_variables", Type: TypeMap, Key: ruleVarName, Rule: ruleVarValue, Max: maxVariables, Secret: true,
				Description: "Secret runtime variables (passwords, keys). Never stored, logged or returned: the gateway keeps a keyed digest and hands the values to the launch through Vault only."},
			calmPowerState,
			changeTicket,
		},
		Check: func(v any, f *fieldErrors) {
			r := v.(*CalmAppRequest)
			switch {
			case r.Network == "" && r.IPReservation == "":
				f.add("/network", "give network or ip_reservation")
			case r.Network != "" && r.IPReservation != "":
				f.add("/ip_reservation", "give network or ip_reservation, not both")
			}
			for name := range r.SecretVariables {
				if _, ok := r.Variables[name]; ok {
					f.add("/secret_variables/"+name, "%s is also in variables; a variable is secret or not", name)
				}
			}
		},
	},
	Update: Body{
		New:    func() Validator { return &CalmAppUpdate{} },
		Fields: []Field{calmPowerState, changeTicket},
		Check: func(v any, f *fieldErrors) {
			if v.(*CalmAppUpdate).PowerState == nil {
				f.add("", "nothing to update; send power_state")
			}
		},
	},
	Delete:   deleteBody,
	Settings: Settings{Workers: 4, StepTimeout: 5 * time.Minute, Deadline: 2 * time.Hour, MaxAttempts: 5},
}

// Bounds on a module run's inputs: one value, and all of them (inputs and
// secret inputs together), serialized as JSON — what is stored, audited,
// given to the policy and written for Terraform.
const (
	MaxModuleInputBytes  = 4 << 10
	MaxModuleInputsBytes = 32 << 10
)

// A module run's fields an update may change.
var (
	moduleVersion = Field{Name: "version", Type: TypeString, Required: true, Mutable: true, Rule: ruleVersion,
		Description: "Module version, one the bundle and the operator's catalog approve."}
	moduleInputs = Field{Name: "inputs", Type: TypeMap, Key: ruleVarName, Max: maxVariables, Mutable: true, MaxValueBytes: MaxModuleInputBytes,
		Description: "The module's inputs (its variables); the operator's catalog says which exist, their types and which are secret. " +
			"Each value is converted to its variable's type and checked by the module's own validation blocks before anything is stored. " +
			moduleInputLimits}
	moduleSecretInputs = Field{Name: "secret_inputs", Type: TypeMap, Key: ruleVarName, Rule: ruleVarValue, Max: maxVariables, Mutable: true, Secret: true,
		MaxValueBytes: MaxModuleInputBytes,
		Description: "The module's secret inputs (its `sensitive` variables, and only those). Never stored, logged or returned: they reach Terraform through its environment only. " +
			"Their values are not kept after a run: an update sends them again. " + moduleInputLimits}
	moduleInputLimits = fmt.Sprintf("Each value at most %d KiB as JSON; inputs and secret_inputs together at most %d KiB.",
		MaxModuleInputBytes>>10, MaxModuleInputsBytes>>10)
	moduleInputSizes = []SizeLimit{{Fields: []string{"inputs", "secret_inputs"}, MaxBytes: MaxModuleInputsBytes}}
)

// optional is f as an update carries it: sent only to change it.
func optional(f Field) Field {
	f.Required = false
	return f
}

var moduleRunKind = &Kind{
	Name: KindModuleRun, Path: "module-runs", Title: "module run",
	Description: "A run of an approved Terraform module from the catalog, planned and judged by the bundle before it is applied.",
	Create: Body{
		New: func() Validator { return &ModuleRunRequest{} },
		Fields: []Field{
			{Name: "name", Type: TypeString, Required: true, Rule: ruleAppName,
				Description: "Name of the run, unique among the module runs of its environment: what an interrupted apply adopts by."},
			{Name: "module", Type: TypeString, Required: true, Rule: ruleModule, Catalog: CatalogModules, Description: "Module from the bundle's catalog."},
			moduleVersion, moduleInputs, moduleSecretInputs,
			changeTicket,
		},
		SizeLimits: moduleInputSizes,
	},
	Update: Body{
		New:        func() Validator { return &ModuleRunUpdate{} },
		Fields:     []Field{optional(moduleVersion), moduleInputs, moduleSecretInputs, changeTicket},
		SizeLimits: moduleInputSizes,
		Check: func(v any, f *fieldErrors) {
			if r := v.(*ModuleRunUpdate); r.Version == "" && r.Inputs == nil && r.SecretInputs == nil {
				f.add("", "nothing to update; send at least one of version, inputs, secret_inputs")
			}
		},
	},
	Delete:   deleteBody,
	Settings: Settings{Workers: 2, StepTimeout: 10 * time.Minute, Deadline: 2 * time.Hour, MaxAttempts: 3, Uninterruptible: true, PoolPerEnvironment: true, MaxUnfinishedPerCaller: 4},
}

var deleteBody = Body{New: func() Validator { return &DeleteRequest{} }, Fields: []Field{changeTicket}}

// Catalogs a field may refer to.
const (
	CatalogBlueprints = "blueprints"
	CatalogModules    = "modules"
)

func networkProblem(v string) string {
	var f fieldErrors
	checkNetwork(&f, "", v)
	if len(f) > 0 {
		return f[0].Message
	}
	return ""
}

func fqdnProblem(v string) string {
	var f fieldErrors
	checkFQDN(&f, "", v, true)
	if len(f) > 0 {
		return f[0].Message
	}
	return ""
}

var patterns sync.Map // pattern -> *regexp.Regexp

func compiled(p string) *regexp.Regexp {
	if re, ok := patterns.Load(p); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(p)
	patterns.Store(p, re)
	return re
}
