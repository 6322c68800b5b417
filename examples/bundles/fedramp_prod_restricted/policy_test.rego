package sas.policy_test

import data.sas.policy

# --- fixtures

caller := {
	"owner": "carol",
	"entity_id": "6f1c2a9e-0000-4000-8000-000000000003",
	"bundles": ["fedramp_dev_default", "fedramp_prod_restricted"],
	"policies": ["default", "sas-bundle-fedramp_dev_default", "sas-bundle-fedramp_prod_restricted"],
}

envelope(kind, action, request) := {
	"bundle": "fedramp_prod_restricted",
	"environment": "prod",
	"kind": kind,
	"action": action,
	"caller": caller,
	"request": request,
	"schema": object.get(data.sas.kinds, kind, {"required": [], "mutable": []}), # as the gateway sends it, from its kinds table
}

ip_request := {
	"network": "prod-app",
	"hostname": "pay-01",
	"dns_zone": "prod.example.internal",
	"aliases": ["payments.prod.example.internal"],
	"change_ticket": "CHG0012345",
}

calm_request := {
	"name": "ledger-db",
	"project": "sas-prod",
	"blueprint": "postgres-ha-prod",
	"network": "prod-data",
	"size": {"vcpus": 8, "memory_gib": 32, "disk_gib": 600},
	"change_ticket": "CHG0012345",
}

module_request := {"name": "ledger-window", "module": "platform/maintenance-window", "version": "1.1.0", "change_ticket": "CHG0012345"}

ip := envelope("ip_reservation", "create", ip_request)

calm := envelope("calm_app", "create", calm_request)

module := envelope("module_run", "create", module_request)

with_request(inp, fields) := object.union(inp, {"request": fields})

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

test_prod_ip_reservation_with_ticket_allowed if {
	policy.allow with input as ip
	count(violations_for(ip)) == 0
}

test_prod_calm_app_with_ticket_allowed if {
	policy.allow with input as calm
}

test_prod_module_run_pinned_with_ticket_allowed if {
	policy.allow with input as module
}

test_read_needs_no_ticket if {
	policy.allow with input as envelope("calm_app", "read", {})
}

test_ip_reservation_delete_with_ticket_allowed if {
	policy.allow with input as envelope("ip_reservation", "delete", {"change_ticket": "CHG7654321"})
}

test_update_with_ticket_allowed if {
	policy.allow with input as envelope("ip_reservation", "update", {"comment": "owner change", "change_ticket": "CHG0000001"})
}

# --- change control

test_create_without_ticket_denied if {
	inp := envelope("calm_app", "create", object.remove(calm_request, ["change_ticket"]))
	denied(inp)
	v := violation(inp, "change_ticket_required")
	v.path == "/change_ticket"
	v.control_ids == ["CM-3", "CM-5"]
	contains(v.message, "fedramp_prod_restricted")
	rules_for(inp) == {"change_ticket_required"}
}

test_update_without_ticket_denied if {
	inp := envelope("ip_reservation", "update", {"comment": "x"})
	violation(inp, "change_ticket_required").path == "/change_ticket"
}

test_delete_without_ticket_denied if {
	rules_for(envelope("ip_reservation", "delete", {})) == {"change_ticket_required"}
}

test_empty_ticket_denied if {
	"change_ticket_required" in rules_for(with_request(module, {"change_ticket": ""}))
}

test_malformed_ticket_denied if {
	inp := with_request(ip, {"change_ticket": "CHG12345"})
	v := violation(inp, "change_ticket_invalid")
	v.path == "/change_ticket"
	rules_for(inp) == {"change_ticket_invalid"}
}

# --- fewer actions in prod

test_calm_app_delete_denied_even_with_ticket if {
	inp := envelope("calm_app", "delete", {"change_ticket": "CHG0012345"})
	v := violation(inp, "action_not_allowed")
	v.message == `bundle fedramp_prod_restricted allows calm_app actions [create, read, update] in prod; "delete" is not one of them`
	rules_for(inp) == {"action_not_allowed"}
}

test_module_run_delete_denied if {
	"action_not_allowed" in rules_for(envelope("module_run", "delete", {"change_ticket": "CHG0012345"}))
}

# --- environments, networks, blueprints, modules

test_dev_environment_denied if {
	inp := object.union(ip, {"environment": "dev"})
	v := violation(inp, "environment_not_allowed")
	v.message == `bundle fedramp_prod_restricted allows environments [prod]; "dev" is not one of them`
}

test_dev_network_denied if {
	inp := with_request(ip, {"network": "10.20.0.0/24"})
	v := violation(inp, "network_not_allowed")
	v.path == "/network"
	rules_for(inp) == {"network_not_allowed"}
}

test_sandbox_blueprint_denied if {
	violation(with_request(calm, {"blueprint": "linux-vm-sandbox"}), "blueprint_not_allowed").path == "/blueprint"
}

test_oversize_disk_denied if {
	violation(with_request(calm, {"size": {"disk_gib": 2000}}), "size_exceeds_limit").path == "/size/disk_gib"
}

test_unpinned_module_denied if {
	inp := envelope("module_run", "create", object.remove(module_request, ["version"]))
	v := violation(inp, "module_version_required")
	v.path == "/version"
	rules_for(inp) == {"module_version_required", "field_required"}
}

test_module_version_not_in_prod_catalog_denied if {
	violation(with_request(module, {"version": "1.0.0"}), "module_version_not_allowed").path == "/version"
}

test_caller_without_prod_binding_denied if {
	inp := object.union(ip, {"caller": {"bundles": ["fedramp_dev_default"]}})
	rules_for(inp) == {"caller_not_bound"}
}

# --- reads: no change ticket, every kind

test_reads_allowed_without_ticket if {
	stored := {"id": "res-0001", "bundle": "fedramp_prod_restricted", "environment": "prod", "spec": {}}
	every kind in ["ip_reservation", "calm_app", "module_run"] {
		policy.allow with input as object.union(envelope(kind, "read", {"id": "res-0001"}), {"resource": stored})
		policy.allow with input as object.union(envelope(kind, "read", {"id": "res-0001", "refresh": true}), {"resource": stored})
		policy.allow with input as envelope(kind, "read", {"id": "", "operation_id": "op-0001", "log": true})
	}
}

# --- cancels follow the rules of the action they stop

cancel_of(kind, cancels, fields) := envelope(kind, "cancel", object.union({"cancels": cancels, "operation_id": "op-0001"}, fields))

stored_ip := {"id": "ipr-0001", "bundle": "fedramp_prod_restricted", "environment": "prod", "spec": ip_request}

test_cancel_of_a_create_without_ticket_denied if {
	inp := cancel_of("ip_reservation", "create", {"spec": ip_request})
	denied(inp)
	v := violation(inp, "change_ticket_required")
	v.path == "/change_ticket"
	v.control_ids == ["CM-3", "CM-5"]
	v.message == "bundle fedramp_prod_restricted requires a change ticket (change_ticket, matching ^CHG[0-9]{7}$) to cancel the create of a ip_reservation in prod: cancelling a create undoes it with a delete"
	rules_for(inp) == {"change_ticket_required"}
}

# The create's own ticket (under spec) is not the cancel's.
test_cancel_of_a_create_needs_its_own_ticket if {
	rules_for(cancel_of("ip_reservation", "create", {"spec": ip_request})) == {"change_ticket_required"}
}

test_cancel_of_a_create_with_ticket_allowed if {
	policy.allow with input as cancel_of("ip_reservation", "create", {"spec": ip_request, "change_ticket": "CHG7654321"})
}

test_cancel_with_malformed_ticket_denied if {
	rules_for(cancel_of("ip_reservation", "create", {"change_ticket": "CHG1"})) == {"change_ticket_invalid"}
}

# Prod allows no self-service delete of Calm apps, so no undoing their creates either.
test_cancel_of_a_calm_app_create_denied_even_with_ticket if {
	inp := cancel_of("calm_app", "create", {"spec": calm_request, "change_ticket": "CHG7654321"})
	v := violation(inp, "action_not_allowed")
	v.message == `bundle fedramp_prod_restricted allows calm_app actions [create, read, update] in prod; cancelling a create undoes it with a delete, and "delete" is not one of them`
	v.control_ids == ["AC-3", "AC-6", "CM-5"]
	rules_for(inp) == {"action_not_allowed"}
}

test_cancel_of_a_module_run_delete_denied if {
	inp := object.union(cancel_of("module_run", "delete", {"change_ticket": "CHG7654321"}), {"resource": stored_ip})
	violation(inp, "action_not_allowed").message == `bundle fedramp_prod_restricted allows module_run actions [create, read, update] in prod; cancelling a delete needs what the delete needs, and "delete" is not one of them`
}

test_cancel_of_an_update_needs_a_ticket if {
	inp := object.union(cancel_of("calm_app", "update", {}), {"resource": stored_ip})
	v := violation(inp, "change_ticket_required")
	v.message == "bundle fedramp_prod_restricted requires a change ticket (change_ticket, matching ^CHG[0-9]{7}$) to cancel the update of a calm_app in prod: cancelling an update needs what the update needs"
	policy.allow with input as object.union(cancel_of("calm_app", "update", {"change_ticket": "CHG7654321"}), {"resource": stored_ip})
}

test_cancel_of_a_delete_with_ticket_allowed if {
	policy.allow with input as object.union(cancel_of("ip_reservation", "delete", {"change_ticket": "CHG7654321"}), {"resource": stored_ip})
	rules_for(object.union(cancel_of("ip_reservation", "delete", {}), {"resource": stored_ip})) == {"change_ticket_required"}
}

# --- Calm app profiles and what a whole app takes

test_ha_profile_allowed if {
	policy.allow with input as with_request(calm, {"profile": "HA"})
}

test_ha_profile_of_a_single_vm_blueprint_denied if {
	inp := with_request(calm, {"blueprint": "linux-vm-prod", "profile": "HA"})
	v := violation(inp, "profile_not_allowed")
	v.message == `bundle fedramp_prod_restricted allows blueprint linux-vm-prod with profiles [Default]; "HA" is not one of them`
	rules_for(inp) == {"profile_not_allowed"}
}

test_three_vms_at_the_per_vm_limit_over_the_totals_denied if {
	inp := with_request(calm, {"size": {"vcpus": 16, "memory_gib": 64, "disk_gib": 1000}})
	paths := {v.path | some v in violations_for(inp); v.rule == "total_size_exceeds_limit"}
	paths == {"/size/vcpus", "/size/memory_gib", "/size/disk_gib"}
	rules_for(inp) == {"total_size_exceeds_limit"}
}

test_one_vm_at_the_per_vm_limit_allowed if {
	policy.allow with input as with_request(calm, {"blueprint": "linux-vm-prod", "size": {"vcpus": 16, "memory_gib": 64, "disk_gib": 1000}})
}
