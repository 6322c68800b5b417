package sas.policy_test

import data.sas.policy

# --- fixtures

caller := {
	"owner": "bob",
	"entity_id": "6f1c2a9e-0000-4000-8000-000000000002",
	"bundles": ["fedramp_dev_default"],
	"policies": ["default", "sas-bundle-fedramp_dev_default"],
}

envelope(env, kind, action, request) := {
	"bundle": "fedramp_dev_default",
	"environment": env,
	"kind": kind,
	"action": action,
	"caller": caller,
	"request": request,
	"schema": object.get(data.sas.kinds, kind, {"required": [], "mutable": []}), # as the gateway sends it, from its kinds table
}

ip_request := {
	"network": "dev-app",
	"hostname": "api-01",
	"dns_zone": "dev.example.internal",
	"aliases": ["api.dev.example.internal", "api-v2.dev.example.internal"],
	"mac": "52:54:00:12:34:56",
}

calm_request := {
	"name": "orders-db",
	"project": "sas-dev",
	"blueprint": "postgres-dev",
	"network": "10.20.1.0/24",
	"size": {"vcpus": 8, "memory_gib": 32, "disk_gib": 500},
	"variables": {"pg_version": "16"},
}

module_request := {"name": "rotate-demo", "module": "platform/secret-rotation", "version": "1.0.0"}

ip := envelope("dev", "ip_reservation", "create", ip_request)

calm := envelope("dev", "calm_app", "create", calm_request)

module := envelope("dev", "module_run", "create", module_request)

with_request(inp, fields) := object.union(inp, {"request": fields})

in_env(inp, env) := object.union(inp, {"environment": env})

violations_for(inp) := vs if {
	vs := policy.violations with input as inp
}

rules_for(inp) := {v.rule | some v in violations_for(inp)}

violation(inp, rule) := v if {
	some v in violations_for(inp)
	v.rule == rule
}

denied(inp) if {
	not policy.allow with input as inp
}

# --- happy paths

test_dev_ip_reservation_allowed if {
	policy.allow with input as ip
	count(violations_for(ip)) == 0
}

test_dev_calm_app_at_the_size_limit_allowed if {
	policy.allow with input as calm
}

test_dev_module_run_allowed if {
	policy.allow with input as module
}

test_sandbox_blueprint_allowed_in_dev if {
	policy.allow with input as with_request(calm, {"blueprint": "linux-vm-sandbox"})
}

test_ci_subnet_inside_cidr_allowed if {
	policy.allow with input as with_request(ip, {"network": "10.20.9.0/24"})
}

test_sbx_with_sbx_network_and_zone_allowed if {
	inp := in_env(with_request(ip, {"network": "sbx-app", "dns_zone": "sbx.example.internal", "aliases": []}), "sbx")
	policy.allow with input as inp
}

test_delete_allowed_without_ticket if {
	policy.allow with input as envelope("dev", "calm_app", "delete", {})
}

# --- escalation

test_prod_environment_denied if {
	inp := in_env(calm, "prod")
	denied(inp)
	v := violation(inp, "environment_not_allowed")
	v.message == `bundle fedramp_dev_default allows environments [dev, sbx]; "prod" is not one of them`
	v.control_ids == ["AC-3", "AC-6"]
	rules_for(inp) == {"environment_not_allowed"}
}

test_prod_network_denied if {
	inp := with_request(ip, {"network": "10.30.0.0/24"})
	v := violation(inp, "network_not_allowed")
	v.path == "/network"
}

test_prod_blueprint_denied if {
	inp := with_request(calm, {"blueprint": "linux-vm-prod"})
	v := violation(inp, "blueprint_not_allowed")
	v.path == "/blueprint"
	contains(v.message, "sandbox/dev-level")
}

test_prod_zone_denied if {
	violation(with_request(ip, {"dns_zone": "prod.example.internal"}), "dns_zone_not_allowed").path == "/dns_zone"
}

# --- environment separation inside the bundle

test_dev_network_in_sbx_denied if {
	inp := in_env(with_request(ip, {"dns_zone": "sbx.example.internal", "aliases": []}), "sbx")
	v := violation(inp, "network_environment_mismatch")
	v.path == "/network"
	v.message == `bundle fedramp_dev_default allows network "dev-app" only in environments [dev], not in sbx`
	rules_for(inp) == {"network_environment_mismatch"}
}

test_sbx_cidr_in_dev_denied if {
	"network_environment_mismatch" in rules_for(with_request(ip, {"network": "10.10.0.0/25"}))
}

test_sbx_zone_in_dev_denied if {
	inp := with_request(ip, {"dns_zone": "sbx.example.internal", "aliases": []})
	rules_for(inp) == {"dns_zone_not_allowed"}
}

test_alias_in_other_environment_zone_denied if {
	inp := with_request(ip, {"aliases": ["api.sbx.example.internal"]})
	violation(inp, "alias_not_allowed").path == "/aliases/0"
}

# --- limits and catalog

test_oversize_calm_app_denied if {
	inp := with_request(calm, {"size": {"vcpus": 9, "memory_gib": 33, "disk_gib": 501}})
	paths := {v.path | some v in violations_for(inp); v.rule == "size_exceeds_limit"}
	paths == {"/size/vcpus", "/size/memory_gib", "/size/disk_gib"}
}

test_too_many_aliases_denied if {
	aliases := [sprintf("a%d.dev.example.internal", [i]) | some i in numbers.range(1, 6)]
	rules_for(with_request(ip, {"aliases": aliases})) == {"too_many_aliases"}
}

test_unknown_module_denied if {
	violation(with_request(module, {"module": "compute/gpu-node"}), "module_not_allowed").path == "/module"
}

test_module_version_denied if {
	violation(with_request(module, {"version": "2.0.0"}), "module_version_not_allowed").path == "/version"
}

test_caller_bound_to_other_bundle_denied if {
	inp := object.union(ip, {"caller": {"bundles": ["fedramp_sbx_default"]}})
	rules_for(inp) == {"caller_not_bound"}
}

# --- reads and cancels

test_reads_allowed_in_both_environments if {
	every env in ["dev", "sbx"] {
		policy.allow with input as envelope(env, "calm_app", "read", {"id": "app-0001", "refresh": true})
		policy.allow with input as envelope(env, "module_run", "read", {"id": "", "operation_id": "op-0001", "log": true})
	}
}

cancel_of(env, kind, cancels, fields) := envelope(env, kind, "cancel", object.union({"cancels": cancels, "operation_id": "op-0001"}, fields))

test_cancel_of_a_create_allowed_without_ticket if {
	policy.allow with input as cancel_of("dev", "calm_app", "create", {"spec": calm_request})
	policy.allow with input as cancel_of("sbx", "ip_reservation", "create", {})
}

test_cancel_of_a_create_in_prod_denied if {
	inp := cancel_of("prod", "calm_app", "create", {"spec": calm_request})
	rules_for(inp) == {"environment_not_allowed"}
}

# --- Calm app profiles and what a whole app takes

ha := with_request(calm, {"profile": "HA", "size": {"vcpus": 4, "memory_gib": 16, "disk_gib": 300}})

test_ha_profile_within_totals_allowed if {
	policy.allow with input as ha
}

test_ha_profile_at_the_per_vm_limit_over_every_total_denied if {
	inp := with_request(ha, {"size": {"vcpus": 8, "memory_gib": 32, "disk_gib": 500}})
	paths := {v.path | some v in violations_for(inp); v.rule == "total_size_exceeds_limit"}
	paths == {"/size/vcpus", "/size/memory_gib", "/size/disk_gib"}
	rules_for(inp) == {"total_size_exceeds_limit"}
	some v in violations_for(inp)
	v.path == "/size/vcpus"
	v.message == "bundle fedramp_dev_default allows at most 16 vCPUs per Calm app in all; profile HA of blueprint postgres-dev runs 3 VMs, so 8 each is 24 in all (at most 5 each fits)"
}

# The Default profile of a pool is three VMs too: no profile is no escape.
test_default_profile_of_a_pool_counts_its_vms if {
	pool := with_request(calm, {"blueprint": "k8s-worker-pool-dev", "variables": {}, "size": {"vcpus": 4, "memory_gib": 16, "disk_gib": 100}})
	policy.allow with input as pool
	rules_for(with_request(pool, {"size": {"vcpus": 6}})) == {"total_size_exceeds_limit"}
}

test_ha_profile_of_a_single_vm_blueprint_denied if {
	inp := with_request(calm, {"blueprint": "k8s-worker-pool-dev", "profile": "HA", "size": {"vcpus": 4, "memory_gib": 16, "disk_gib": 100}})
	v := violation(inp, "profile_not_allowed")
	v.path == "/profile"
	v.message == `bundle fedramp_dev_default allows blueprint k8s-worker-pool-dev with profiles [Default]; "HA" is not one of them`
}

# A blueprint without a Default profile needs one named (a bundle declaring
# one, added with `with`: it merges into the bundle's blueprints).
test_absent_profile_of_a_blueprint_without_default_denied if {
	blueprints := {"postgres-ha-only-dev": {"level": "dev", "profiles": {"HA": {"vms": 3}}}}
	inp := with_request(calm, {"blueprint": "postgres-ha-only-dev", "size": {"vcpus": 4, "memory_gib": 16, "disk_gib": 300}})
	vs := policy.violations with input as inp with data.sas.bundle.blueprints as blueprints
	{v.rule | some v in vs} == {"profile_not_allowed"}
	some v in vs
	v.path == "/profile"
	v.message == `bundle fedramp_dev_default allows blueprint postgres-ha-only-dev with profiles [HA]; "Default" (what a request without a profile asks for) is not one of them`
	policy.allow with input as with_request(inp, {"profile": "HA"}) with data.sas.bundle.blueprints as blueprints
}
