# The one source of every example bundle's policy.rego: edit it here, then
# `make docs` copies it into examples/bundles/*/ (a test fails on drift).
# Bundles differ only in data.json (and the Rego tests of that data).

# METADATA
# title: sas provisioning policy
# description: |
#   Decides whether a request about an IP reservation, Calm app or module
#   run (create, read, update, delete, or cancel of an unfinished operation)
#   may proceed under this bundle. The rules are generic: everything the
#   bundle allows — environments, actions, networks, DNS zones, blueprints
#   and their app profiles, modules, size limits, change tickets — is
#   declared in data.json (data.sas.bundle). The gateway reads
#   data.sas.policy.allow and data.sas.policy.violations; allow is true only
#   when no rule reports a violation.
package sas.policy

spec := data.sas.bundle

# --- input, normalised so that missing fields never make a rule silently undefined

bundle_name := object.get(input, "bundle", "")

environment := object.get(input, "environment", "")

kind := object.get(input, "kind", "")

action := object.get(input, "action", "")

caller := object.get(input, "caller", {})

request := input.request if {
	is_object(input.request)
} else := {}

mutating_actions := {"create", "update", "delete"}

# --- the action whose rules apply
#
# Every caller-facing action is judged, reads and cancels included. A read
# is judged as itself. A cancel of an unfinished operation (input.request:
# {"cancels": "create"|"update"|"delete", "operation_id": ..., optional
# "change_ticket", and for a create the create's fields under "spec") follows
# the rules of the action it stops: cancelling a create undoes it
# (compensation deletes what it made), so it needs what a delete of that kind
# needs in that environment; cancelling an update or a delete needs what that
# update or delete needs. Bundles never list "cancel" in actions: it is
# derived from what they list, so there is nothing more to keep in sync.
cancelled := {
	"create": {"judged_as": "delete", "why": "cancelling a create undoes it with a delete"},
	"update": {"judged_as": "update", "why": "cancelling an update needs what the update needs"},
	"delete": {"judged_as": "delete", "why": "cancelling a delete needs what the delete needs"},
}

cancels := object.get(request, "cancels", "")

cancel := cancelled[cancels] if input.action == "cancel"

# judged_action is the action whose rules apply: the action itself, or for
# a cancel the action it stands for (undefined for a cancel of nothing known,
# which rule cancel_target_unknown reports).
judged_action := action if action != "cancel"

judged_action := cancel.judged_as

# doing says what the request does, for messages: "create a calm_app",
# "cancel the create of a calm_app".
doing := sprintf("cancel the %s of a %s", [cancels, kind]) if {
	input.action == "cancel"
} else := sprintf("%s a %s", [action, kind])

# --- the decision

default allow := false

allow if count(violations) == 0

# --- helpers
#
# Rules specific to one kind or action test input.kind / input.action
# directly (not the normalised kind/action below) so that OPA's rule index
# skips them for other requests.

# fmt_list renders ["a", "b"] as "[a, b]".
fmt_list(xs) := sprintf("[%s]", [concat(", ", xs)])

field(path) := object.get(request, split(path, "/"), null)

present(path) if {
	v := field(path)
	v != null
	v != ""
}

# Fields a create must carry, from the gateway's kinds table (input.schema):
# the gateway's schema checks them too, the policy does not rely on it (a
# missing field must not skip a rule), and keeps no copy of its own.
schema := object.get(input, "schema", null)

required_fields := object.get(schema, "required", []) if is_object(schema)

environment_allowed if environment in spec.environments

allowed_actions := object.get(object.get(spec.actions, environment, {}), kind, [])

# Networks usable in the requested environment.
env_networks[name] := n if {
	some name, n in spec.networks
	environment in n.environments
}

env_zones contains zone if {
	some zone, z in spec.dns_zones
	environment in z.environments
}

# A network may be named ("sbx-app") or given as a CIDR equal to or inside a
# declared network ("10.10.0.0/24", "10.10.0.128/25").
network_matches(requested, name, _) if requested == name

network_matches(requested, _, n) if requested == n.cidr

network_matches(requested, _, n) if {
	net.cidr_is_valid(requested)
	net.cidr_contains(n.cidr, requested)
}

# The declared networks the request names or falls inside, in any environment.
requested_networks contains name if {
	is_string(request.network)
	some name, n in spec.networks
	network_matches(request.network, name, n)
}

described_networks(networks) := sort([sprintf("%s (%s)", [name, n.cidr]) | some name, n in networks])

ticket := object.get(request, "change_ticket", "")

dns_label_pattern := `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`

# --- who and where

violations contains {
	"rule": "environment_not_allowed",
	"message": sprintf("bundle %s allows environments %s; %q is not one of them", [bundle_name, fmt_list(spec.environments), environment]),
	"path": "",
	"control_ids": ["AC-3", "AC-6"],
} if {
	not environment_allowed
}

violations contains {
	"rule": "caller_not_bound",
	"message": sprintf("caller %q is not bound to bundle %s: its Vault token needs policy sas-bundle-%s", [object.get(caller, "owner", ""), bundle_name, bundle_name]),
	"path": "",
	"control_ids": ["AC-2", "AC-3"],
} if {
	not bundle_name in object.get(caller, "bundles", [])
}

violations contains {
	"rule": "action_not_allowed",
	"message": sprintf("bundle %s allows %s actions %s in %s; %q is not one of them", [bundle_name, kind, fmt_list(allowed_actions), environment, action]),
	"path": "",
	"control_ids": ["AC-3", "AC-6", "CM-5"],
} if {
	environment_allowed
	action != "cancel"
	not action in allowed_actions
}

violations contains {
	"rule": "action_not_allowed",
	"message": sprintf("bundle %s allows %s actions %s in %s; %s, and %q is not one of them", [bundle_name, kind, fmt_list(allowed_actions), environment, cancel.why, cancel.judged_as]),
	"path": "",
	"control_ids": ["AC-3", "AC-6", "CM-5"],
} if {
	input.action == "cancel"
	environment_allowed
	judged := cancel.judged_as
	not judged in allowed_actions
}

violations contains {
	"rule": "cancel_target_unknown",
	"message": sprintf("a cancel names the action of the operation it stops in cancels (one of %s); %s is not one of them", [fmt_list(sort(object.keys(cancelled))), json.marshal(cancels)]),
	"path": "/cancels",
	"control_ids": ["SI-10"],
} if {
	input.action == "cancel"
	not cancelled[cancels]
}

# --- change control

violations contains {
	"rule": "change_ticket_required",
	"message": sprintf("bundle %s requires a change ticket (change_ticket, matching %s) to %s in %s%s", [bundle_name, spec.change_ticket_pattern, doing, environment, ticket_reason]),
	"path": "/change_ticket",
	"control_ids": ["CM-3", "CM-5"],
} if {
	spec.requires_change_ticket
	judged_action in mutating_actions
	ticket == ""
}

ticket_reason := sprintf(": %s", [cancel.why]) if {
	input.action == "cancel"
} else := ""

violations contains {
	"rule": "change_ticket_invalid",
	"message": sprintf("bundle %s expects change tickets matching %s; %q does not", [bundle_name, spec.change_ticket_pattern, ticket]),
	"path": "/change_ticket",
	"control_ids": ["CM-3"],
} if {
	ticket != ""
	spec.change_ticket_pattern != ""
	not regex.match(spec.change_ticket_pattern, ticket)
}

# --- request shape

violations contains {
	"rule": "field_required",
	"message": sprintf("bundle %s needs %s to %s", [bundle_name, path, doing]),
	"path": concat("", ["/", path]),
	"control_ids": ["SI-10"],
} if {
	input.action == "create"
	some path in required_fields
	not present(path)
}

violations contains {
	"rule": "schema_missing",
	"message": sprintf("the request to %s a %s carries no schema from the gateway's kinds table; refusing rather than skipping the field rules", [action, kind]),
	"path": "",
	"control_ids": ["SI-10"],
} if {
	input.action == "create"
	not is_object(schema)
}

# --- networks (IP reservations and Calm apps)

violations contains {
	"rule": "network_not_allowed",
	"message": sprintf("bundle %s allows networks %s in %s; %q is neither one of them nor inside one", [bundle_name, fmt_list(described_networks(env_networks)), environment, request.network]),
	"path": "/network",
	"control_ids": ["AC-3", "SC-7"],
} if {
	environment_allowed
	is_string(request.network)
	request.network != ""
	count(requested_networks) == 0
}

violations contains {
	"rule": "network_environment_mismatch",
	"message": sprintf("bundle %s allows network %q only in environments %s, not in %s", [bundle_name, request.network, fmt_list(envs), environment]),
	"path": "/network",
	"control_ids": ["AC-3", "SC-7"],
} if {
	environment_allowed
	count(requested_networks) > 0
	count(requested_networks & object.keys(env_networks)) == 0
	envs := sort({e | some name in requested_networks; some e in spec.networks[name].environments})
}

# --- DNS (IP reservations)

violations contains {
	"rule": "hostname_invalid",
	"message": sprintf("hostname %q is not a DNS label (lowercase letters, digits and '-', 1-63 characters)", [request.hostname]),
	"path": "/hostname",
	"control_ids": ["SI-10"],
} if {
	input.kind == "ip_reservation"
	is_string(request.hostname)
	request.hostname != ""
	not regex.match(dns_label_pattern, request.hostname)
}

violations contains {
	"rule": "dns_zone_not_allowed",
	"message": sprintf("bundle %s allows DNS zones %s in %s; %q is not one of them", [bundle_name, fmt_list(sort(env_zones)), environment, request.dns_zone]),
	"path": "/dns_zone",
	"control_ids": ["AC-3", "SC-20"],
} if {
	input.kind == "ip_reservation"
	environment_allowed
	is_string(request.dns_zone)
	request.dns_zone != ""
	not trim_suffix(lower(request.dns_zone), ".") in env_zones
}

violations contains {
	"rule": "dns_view_not_allowed",
	"message": sprintf("bundle %s allows DNS views %s; %q is not one of them", [bundle_name, fmt_list(spec.dns_views), request.dns_view]),
	"path": "/dns_view",
	"control_ids": ["AC-3", "SC-20"],
} if {
	input.kind == "ip_reservation"
	is_string(request.dns_view)
	request.dns_view != ""
	not request.dns_view in spec.dns_views
}

violations contains {
	"rule": "too_many_aliases",
	"message": sprintf("bundle %s allows at most %d aliases; the request has %d", [bundle_name, spec.limits.max_aliases, count(request.aliases)]),
	"path": "/aliases",
	"control_ids": ["CM-6"],
} if {
	input.kind == "ip_reservation"
	is_array(request.aliases)
	count(request.aliases) > spec.limits.max_aliases
}

violations contains {
	"rule": "alias_not_allowed",
	"message": sprintf("alias %q must be a name in one of the DNS zones %s that bundle %s allows in %s", [alias, fmt_list(sort(env_zones)), bundle_name, environment]),
	"path": sprintf("/aliases/%d", [i]),
	"control_ids": ["AC-3", "SC-20"],
} if {
	input.kind == "ip_reservation"
	environment_allowed
	is_array(request.aliases)
	some i, alias in request.aliases
	not alias_in_zone(alias)
}

alias_in_zone(alias) if {
	is_string(alias)
	name := trim_suffix(lower(alias), ".")
	some zone in env_zones
	endswith(name, concat("", [".", zone]))
	labels := split(trim_suffix(name, concat("", [".", zone])), ".")
	every label in labels {
		regex.match(dns_label_pattern, label)
	}
}

# --- Calm apps

violations contains {
	"rule": "blueprint_not_allowed",
	"message": sprintf("bundle %s allows %s-level blueprints %s; %q is not one of them", [bundle_name, concat("/", spec.blueprint_levels), fmt_list(sort(object.keys(spec.blueprints))), request.blueprint]),
	"path": "/blueprint",
	"control_ids": ["AC-3", "AC-6", "CM-7"],
} if {
	input.kind == "calm_app"
	is_string(request.blueprint)
	request.blueprint != ""
	not allowed_blueprint(request.blueprint)
}

allowed_blueprint(name) if spec.blueprints[name].level in spec.blueprint_levels

# Runtime variables a caller may set, in the clear or as secrets; sas sets
# the blueprint contract's own (size, network, address, request id) itself.
violations contains {
	"rule": "variable_not_allowed",
	"message": sprintf("bundle %s lets callers set Calm %s %s; %q is not one of them", [bundle_name, l.field, fmt_list(sort(l.allowed)), name]),
	"path": concat("/", ["", l.field, name]),
	"control_ids": ["AC-3", "CM-7"],
} if {
	input.kind == "calm_app"
	some l in [
		{"field": "variables", "allowed": object.get(spec, "calm_variables", [])},
		{"field": "secret_variables", "allowed": object.get(spec, "calm_secret_variables", [])},
	]
	some name, _ in object.get(request, l.field, {})
	not name in l.allowed
}

# Calm projects the bundle lets an environment launch apps in.
env_projects contains name if {
	some name, p in object.get(spec, "calm_projects", {})
	environment in p.environments
}

violations contains {
	"rule": "project_not_allowed",
	"message": sprintf("bundle %s lets %s launch Calm apps in projects %s; %q is not one of them", [bundle_name, environment, fmt_list(sort(env_projects)), request.project]),
	"path": "/project",
	"control_ids": ["AC-3", "AC-6"],
} if {
	input.kind == "calm_app"
	action == "create"
	environment_allowed
	is_string(request.project)
	not request.project in env_projects
}

size_limits := [
	{"field": "vcpus", "limit": "max_vcpus", "total": "max_total_vcpus", "unit": "vCPUs"},
	{"field": "memory_gib", "limit": "max_memory_gib", "total": "max_total_memory_gib", "unit": "GiB of memory"},
	{"field": "disk_gib", "limit": "max_disk_gib", "total": "max_total_disk_gib", "unit": "GiB of disk"},
]

violations contains {
	"rule": "size_exceeds_limit",
	"message": sprintf("bundle %s allows at most %d %s; the request asks for %v", [bundle_name, max, l.unit, requested]),
	"path": concat("", ["/size/", l.field]),
	"control_ids": ["AC-6", "SC-6"],
} if {
	input.kind == "calm_app"
	some l in size_limits
	requested := object.get(request, ["size", l.field], 0)
	max := spec.limits[l.limit]
	not within(requested, max)
}

within(n, max) if {
	is_number(n)
	n <= max
}

# A launch runs one of its blueprint's app profiles; a request without one
# asks for Default. The bundle declares, per blueprint, the profiles it
# allows and how many VMs each runs (every VM gets the requested size).
calm_profile := "Default" if {
	not present("profile")
} else := request.profile

blueprint_profiles := object.get(object.get(spec.blueprints, request.blueprint, {}), "profiles", {})

profile_asked := json.marshal(calm_profile) if {
	present("profile")
} else := sprintf("%s (what a request without a profile asks for)", [json.marshal(calm_profile)])

violations contains {
	"rule": "profile_not_allowed",
	"message": sprintf("bundle %s allows blueprint %s with profiles %s; %s is not one of them", [bundle_name, request.blueprint, fmt_list(sort(object.keys(blueprint_profiles))), profile_asked]),
	"path": "/profile",
	"control_ids": ["AC-3", "CM-7"],
} if {
	input.kind == "calm_app"
	input.action == "create"
	is_string(request.blueprint)
	allowed_blueprint(request.blueprint)
	not blueprint_profiles[calm_profile]
}

# What the whole app takes: each VM's size times the profile's VMs, within
# the bundle's per-app totals (the per-VM limits above apply as well).
violations contains {
	"rule": "total_size_exceeds_limit",
	"message": sprintf("bundle %s allows at most %d %s per Calm app in all; profile %s of blueprint %s runs %d VMs, so %v each is %v in all (at most %d each fits)", [bundle_name, max, l.unit, calm_profile, request.blueprint, vms, requested, vms * requested, floor(max / vms)]),
	"path": concat("", ["/size/", l.field]),
	"control_ids": ["AC-6", "SC-6"],
} if {
	input.kind == "calm_app"
	input.action == "create"
	vms := blueprint_profiles[calm_profile].vms
	some l in size_limits
	requested := object.get(request, ["size", l.field], 0)
	within(requested, spec.limits[l.limit]) # else size_exceeds_limit says it
	max := spec.limits[l.total]
	vms * requested > max
}

# --- module runs

violations contains {
	"rule": "module_not_allowed",
	"message": sprintf("bundle %s allows modules %s; %q is not one of them", [bundle_name, fmt_list(sort(object.keys(spec.modules))), request.module]),
	"path": "/module",
	"control_ids": ["AC-3", "CM-7"],
} if {
	input.kind == "module_run"
	is_string(request.module)
	request.module != ""
	not spec.modules[request.module]
}

violations contains {
	"rule": "module_version_not_allowed",
	"message": sprintf("bundle %s allows module %s at versions %s; %q is not one of them", [bundle_name, run_module, fmt_list(spec.modules[run_module].versions), request.version]),
	"path": "/version",
	"control_ids": ["CM-2", "CM-7"],
} if {
	input.kind == "module_run"
	is_string(request.version)
	request.version != ""
	not request.version in spec.modules[run_module].versions
}

# The module a run runs: a create names it; an update runs the stored
# resource's module (its body carries only what changes).
run_module := object.get(request, "module", object.get(object.get(object.get(input, "resource", {}), "spec", {}), "module", ""))

# A module run's saved plan, judged before it is applied (input.plan):
# only the resource types the bundle approves for the module, no more
# resources than its limit, and nothing destroyed or replaced except by a
# delete (or where the bundle allows replacements for the module).
plan_changes := object.get(object.get(input, "plan", {}), "resource_changes", [])

module_spec := object.get(spec.modules, run_module, {})

violations contains {
	"rule": "module_resource_type_not_allowed",
	"message": sprintf("the plan of module %s would manage %s (%s); bundle %s approves only %s for it", [request.module, c.type, c.address, bundle_name, fmt_list(sort(module_spec.resource_types))]),
	"path": "/module",
	"control_ids": ["CM-7", "CM-3"],
} if {
	input.kind == "module_run"
	some c in plan_changes
	is_array(module_spec.resource_types)
	not c.type in module_spec.resource_types
}

violations contains {
	"rule": "module_destroy_not_allowed",
	"message": sprintf("the plan of module %s would %s %s; bundle %s lets a module run destroy or replace resources only when it is deleted", [request.module, concat("/", c.actions), c.address, bundle_name]),
	"path": "/inputs",
	"control_ids": ["CM-3", "CP-9"],
} if {
	input.kind == "module_run"
	action != "delete"
	not module_spec.allow_replace
	some c in plan_changes
	"delete" in c.actions
}

violations contains {
	"rule": "module_too_many_resources",
	"message": sprintf("the plan of module %s would manage %d resources; bundle %s allows at most %d per module run", [request.module, count(plan_changes), bundle_name, spec.limits.max_module_resources]),
	"path": "/inputs",
	"control_ids": ["SC-6", "CM-7"],
} if {
	input.kind == "module_run"
	is_number(spec.limits.max_module_resources)
	count(plan_changes) > spec.limits.max_module_resources
}

violations contains {
	"rule": "module_version_required",
	"message": sprintf("bundle %s requires a pinned module version (one of %s) in %s", [bundle_name, fmt_list(spec.modules[request.module].versions), environment]),
	"path": "/version",
	"control_ids": ["CM-2"],
} if {
	input.kind == "module_run"
	action in {"create", "update"}
	spec.require_module_version
	spec.modules[request.module]
	object.get(request, "version", "") == ""
}
