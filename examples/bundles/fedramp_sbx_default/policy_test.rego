package sas.policy_test

import data.sas.policy

# --- fixtures

caller := {
	"owner": "alice",
	"entity_id": "6f1c2a9e-0000-4000-8000-000000000001",
	"bundles": ["fedramp_sbx_default"],
	"policies": ["default", "sas-bundle-fedramp_sbx_default"],
}

envelope(kind, action, request) := {
	"bundle": "fedramp_sbx_default",
	"environment": "sbx",
	"kind": kind,
	"action": action,
	"caller": caller,
	"request": request,
	"schema": object.get(data.sas.kinds, kind, {"required": [], "mutable": []}), # as the gateway sends it, from its kinds table
}

ip_request := {
	"network": "sbx-app",
	"hostname": "web-01",
	"dns_zone": "sbx.example.internal",
	"aliases": ["www.sbx.example.internal"],
	"comment": "prototype web server",
}

calm_request := {
	"name": "demo-app",
	"project": "sas-sbx",
	"blueprint": "linux-vm-sandbox",
	"network": "10.10.1.0/25",
	"size": {"vcpus": 2, "memory_gib": 4, "disk_gib": 50},
}

module_request := {"name": "demo-window", "module": "platform/maintenance-window", "version": "1.1.0", "inputs": {"service": "demo"}}

ip := envelope("ip_reservation", "create", ip_request)

calm := envelope("calm_app", "create", calm_request)

module := envelope("module_run", "create", module_request)

# with_request overrides request fields (a deep merge: it cannot remove one).
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

test_ip_reservation_by_network_name_allowed if {
	policy.allow with input as ip
	count(violations_for(ip)) == 0
}

test_ip_reservation_by_cidr_allowed if {
	policy.allow with input as with_request(ip, {"network": "10.10.0.0/24"})
}

test_calm_app_at_the_size_limit_allowed if {
	policy.allow with input as calm
}

test_module_run_allowed if {
	policy.allow with input as module
}

test_module_run_without_version_denied if {
	inp := envelope("module_run", "create", {"name": "reg", "module": "platform/service-registration"})
	violation(inp, "field_required").path == "/version"
}

test_read_and_delete_without_body_allowed if {
	policy.allow with input as envelope("calm_app", "read", {})
	policy.allow with input as envelope("ip_reservation", "delete", {})
}

test_trailing_dot_and_case_in_zone_allowed if {
	policy.allow with input as with_request(ip, {"dns_zone": "SBX.example.internal."})
}

# --- environment and binding

test_prod_environment_denied if {
	inp := object.union(ip, {"environment": "prod"})
	denied(inp)
	v := violation(inp, "environment_not_allowed")
	v.message == `bundle fedramp_sbx_default allows environments [sbx]; "prod" is not one of them`
	v.path == ""
	"AC-3" in v.control_ids
	rules_for(inp) == {"environment_not_allowed"}
}

test_dev_environment_denied if {
	denied(object.union(module, {"environment": "dev"}))
}

test_missing_environment_denied if {
	inp := object.remove(ip, ["environment"])
	"environment_not_allowed" in rules_for(inp)
}

test_caller_not_bound_denied if {
	inp := object.union(ip, {"caller": {"bundles": ["fedramp_dev_default"]}})
	denied(inp)
	v := violation(inp, "caller_not_bound")
	contains(v.message, "sas-bundle-fedramp_sbx_default")
	v.control_ids == ["AC-2", "AC-3"]
}

test_unknown_action_denied if {
	inp := envelope("calm_app", "reboot", {})
	rules_for(inp) == {"action_not_allowed"}
}

test_unknown_kind_denied if {
	inp := envelope("k8s_cluster", "create", {})
	rules_for(inp) == {"action_not_allowed"}
}

# --- request shape

test_create_without_network_denied if {
	inp := envelope("ip_reservation", "create", object.remove(ip_request, ["network"]))
	v := violation(inp, "field_required")
	v.path == "/network"
}

# The required fields come from the gateway (input.schema, its kinds
# table); an input without them is refused, never judged without the rules.
test_create_without_schema_denied if {
	inp := object.remove(ip, ["schema"])
	violation(inp, "schema_missing")
}

test_required_fields_follow_the_schema if {
	inp := object.union(envelope("ip_reservation", "create", ip_request), {"schema": {"required": ["mac"], "mutable": []}})
	v := violation(inp, "field_required")
	v.path == "/mac"
}

test_calm_create_without_size_denied if {
	inp := envelope("calm_app", "create", object.remove(calm_request, ["size"]))
	paths := {v.path | some v in violations_for(inp); v.rule == "field_required"}
	paths == {"/size/vcpus", "/size/memory_gib", "/size/disk_gib"}
}

# --- networks

test_prod_network_by_cidr_denied if {
	inp := with_request(ip, {"network": "10.30.0.0/24"})
	denied(inp)
	v := violation(inp, "network_not_allowed")
	v.path == "/network"
	"SC-7" in v.control_ids
	contains(v.message, "sbx-app (10.10.0.0/24)")
}

test_prod_network_by_name_denied if {
	inp := with_request(calm, {"network": "prod-app"})
	violation(inp, "network_not_allowed").path == "/network"
}

test_cidr_wider_than_allowed_network_denied if {
	"network_not_allowed" in rules_for(with_request(ip, {"network": "10.10.0.0/16"}))
}

test_invalid_cidr_denied_not_errored if {
	"network_not_allowed" in rules_for(with_request(ip, {"network": "10.10.0.0/33"}))
}

# --- DNS

test_hostname_not_a_label_denied if {
	inp := with_request(ip, {"hostname": "web_01.evil"})
	v := violation(inp, "hostname_invalid")
	v.path == "/hostname"
}

test_prod_zone_denied if {
	inp := with_request(ip, {"dns_zone": "prod.example.internal"})
	v := violation(inp, "dns_zone_not_allowed")
	v.path == "/dns_zone"
	rules_for(inp) == {"dns_zone_not_allowed"}
}

test_dns_view_denied if {
	violation(with_request(ip, {"dns_view": "external"}), "dns_view_not_allowed").path == "/dns_view"
}

test_alias_outside_zone_denied if {
	inp := with_request(ip, {"aliases": ["www.sbx.example.internal", "www.example.com"]})
	violation(inp, "alias_not_allowed").path == "/aliases/1"
}

test_too_many_aliases_denied if {
	inp := with_request(ip, {"aliases": ["a.sbx.example.internal", "b.sbx.example.internal", "c.sbx.example.internal"]})
	rules_for(inp) == {"too_many_aliases"}
}

# --- Calm apps

test_prod_blueprint_denied if {
	inp := with_request(calm, {"blueprint": "linux-vm-prod"})
	denied(inp)
	v := violation(inp, "blueprint_not_allowed")
	v.path == "/blueprint"
	contains(v.message, "sandbox-level")
}

test_oversize_vcpus_denied if {
	inp := with_request(calm, {"size": {"vcpus": 4}})
	denied(inp)
	v := violation(inp, "size_exceeds_limit")
	v.path == "/size/vcpus"
	v.message == "bundle fedramp_sbx_default allows at most 2 vCPUs; the request asks for 4"
	rules_for(inp) == {"size_exceeds_limit"}
}

test_oversize_memory_and_disk_denied if {
	inp := with_request(calm, {"size": {"memory_gib": 8, "disk_gib": 51}})
	paths := {v.path | some v in violations_for(inp)}
	paths == {"/size/memory_gib", "/size/disk_gib"}
}

test_non_numeric_size_denied if {
	violation(with_request(calm, {"size": {"vcpus": "2"}}), "size_exceeds_limit").path == "/size/vcpus"
}

# --- modules

test_unknown_module_denied if {
	inp := with_request(module, {"module": "compute/k8s-cluster"})
	violation(inp, "module_not_allowed").path == "/module"
}

test_module_version_denied if {
	inp := with_request(module, {"version": "9.9.9"})
	v := violation(inp, "module_version_not_allowed")
	v.path == "/version"
	rules_for(inp) == {"module_version_not_allowed"}
}

# --- change tickets

test_change_ticket_optional_in_sandbox if {
	policy.allow with input as ip
}

test_malformed_change_ticket_denied if {
	violation(with_request(ip, {"change_ticket": "JIRA-1"}), "change_ticket_invalid").path == "/change_ticket"
}

# --- Calm projects

test_project_of_another_environment_denied if {
	inp := with_request(calm, {"project": "sas-prod"})
	not policy.allow with input as inp
	v := violation(inp, "project_not_allowed")
	v.path == "/project"
	rules_for(inp) == {"project_not_allowed"}
}

test_variables_outside_the_allowlist_denied if {
	inp := with_request(calm, {"variables": {"OWNER_EMAIL": "a@example.org", "NETWORK": "10.30.0.0/24"}, "secret_variables": {"ROOT_KEY": "x"}})
	paths := {v.path | some v in violations_for(inp); v.rule == "variable_not_allowed"}
	paths == {"/variables/NETWORK", "/secret_variables/ROOT_KEY"}
}

test_allowed_variables_and_secrets_allowed if {
	policy.allow with input as with_request(calm, {"variables": {"OWNER_EMAIL": "a@example.org"}, "secret_variables": {"ADMIN_PASSWORD": "hmac-sha256:00"}})
}

# An update carries only what changes: its version is judged against the
# stored run's module.
test_module_update_to_a_version_not_allowed_denied if {
	inp := object.union(envelope("module_run", "update", {"version": "0.9.0"}), {"resource": {"id": "mr-1", "bundle": "fedramp_sbx_default", "environment": "sbx", "spec": module_request}})
	v := violation(inp, "module_version_not_allowed")
	v.path == "/version"
	contains(v.message, "platform/maintenance-window")
}

test_module_update_to_an_allowed_version_allowed if {
	inp := object.union(envelope("module_run", "update", {"version": "1.0.0"}), {"resource": {"id": "mr-1", "bundle": "fedramp_sbx_default", "environment": "sbx", "spec": module_request}})
	policy.allow with input as inp
}

# --- module run plans

plan_of(changes) := object.union(module, {"plan": {"resource_changes": changes}})

test_module_plan_with_approved_types_allowed if {
	policy.allow with input as plan_of([
		{"address": "terraform_data.window", "type": "terraform_data", "actions": ["create"]},
		{"address": "time_static.registered", "type": "time_static", "actions": ["create"]},
	])
}

test_module_plan_with_other_types_denied if {
	inp := plan_of([{"address": "aws_s3_bucket.b", "type": "aws_s3_bucket", "actions": ["create"]}])
	violation(inp, "module_resource_type_not_allowed").path == "/module"
	rules_for(inp) == {"module_resource_type_not_allowed"}
}

test_module_plan_replacing_outside_a_delete_denied if {
	inp := plan_of([{"address": "terraform_data.window", "type": "terraform_data", "actions": ["delete", "create"]}])
	rules_for(inp) == {"module_destroy_not_allowed"}
}

test_module_destroy_plan_of_a_delete_allowed if {
	inp := object.union(envelope("module_run", "delete", {}), {
		"plan": {"resource_changes": [
			{"address": "terraform_data.window", "type": "terraform_data", "actions": ["delete"]},
		]},
		"request": {"module": "platform/maintenance-window"},
	})
	not violation(inp, "module_destroy_not_allowed")
}

test_module_plan_over_the_resource_limit_denied if {
	inp := plan_of([{"address": sprintf("terraform_data.n[%d]", [i]), "type": "terraform_data", "actions": ["create"]} | some i in numbers.range(0, 10)])
	rules_for(inp) == {"module_too_many_resources"}
}

# --- reads: judged like every action, allowed wherever the bundle lists read

stored_app := {"id": "app-0001", "bundle": "fedramp_sbx_default", "environment": "sbx", "spec": calm_request}

test_reads_allowed if {
	every kind in ["ip_reservation", "calm_app", "module_run"] {
		policy.allow with input as object.union(envelope(kind, "read", {"id": "res-0001"}), {"resource": stored_app})
		policy.allow with input as object.union(envelope(kind, "read", {"id": "res-0001", "refresh": true}), {"resource": stored_app})
		policy.allow with input as envelope(kind, "read", {"id": "", "operation_id": "op-0001", "log": true})
	}
}

test_read_in_another_environment_denied if {
	inp := object.union(envelope("calm_app", "read", {"id": "app-0001"}), {"environment": "prod"})
	rules_for(inp) == {"environment_not_allowed"}
}

# --- cancels: judged as the action they stop (a create's as a delete)

cancel_of(kind, cancels, fields) := envelope(kind, "cancel", object.union({"cancels": cancels, "operation_id": "op-0001"}, fields))

test_cancel_of_a_create_allowed if {
	policy.allow with input as cancel_of("calm_app", "create", {"spec": calm_request})
	policy.allow with input as cancel_of("ip_reservation", "create", {"spec": ip_request})
	policy.allow with input as cancel_of("module_run", "create", {"spec": module_request})
}

test_cancel_of_an_update_or_delete_allowed if {
	policy.allow with input as object.union(cancel_of("calm_app", "update", {}), {"resource": stored_app})
	policy.allow with input as object.union(cancel_of("calm_app", "delete", {}), {"resource": stored_app})
}

# Undoing a create must stay possible when its request would now be refused.
test_cancel_of_a_create_not_judged_on_what_it_creates if {
	policy.allow with input as cancel_of("calm_app", "create", {"spec": object.union(calm_request, {"blueprint": "linux-vm-prod", "size": {"vcpus": 64}})})
}

test_cancel_of_an_unknown_action_denied if {
	inp := cancel_of("calm_app", "reboot", {})
	v := violation(inp, "cancel_target_unknown")
	v.path == "/cancels"
	v.message == `a cancel names the action of the operation it stops in cancels (one of [create, delete, update]); "reboot" is not one of them`
	rules_for(inp) == {"cancel_target_unknown"}
	rules_for(envelope("calm_app", "cancel", {"operation_id": "op-0001"})) == {"cancel_target_unknown"}
}

test_cancel_of_a_kind_the_bundle_does_not_allow_denied if {
	inp := cancel_of("k8s_cluster", "create", {})
	v := violation(inp, "action_not_allowed")
	v.message == `bundle fedramp_sbx_default allows k8s_cluster actions [] in sbx; cancelling a create undoes it with a delete, and "delete" is not one of them`
	v.control_ids == ["AC-3", "AC-6", "CM-5"]
}

test_cancel_in_another_environment_denied if {
	rules_for(object.union(cancel_of("calm_app", "create", {}), {"environment": "prod"})) == {"environment_not_allowed"}
}

test_cancel_with_malformed_ticket_denied if {
	rules_for(cancel_of("calm_app", "create", {"change_ticket": "JIRA-1"})) == {"change_ticket_invalid"}
}

# --- Calm app profiles and what a whole app takes

test_default_profile_named_or_not_allowed if {
	policy.allow with input as calm
	policy.allow with input as with_request(calm, {"profile": "Default"})
}

test_profile_not_declared_for_the_blueprint_denied if {
	inp := with_request(calm, {"profile": "HA"})
	v := violation(inp, "profile_not_allowed")
	v.path == "/profile"
	v.message == `bundle fedramp_sbx_default allows blueprint linux-vm-sandbox with profiles [Default]; "HA" is not one of them`
	v.control_ids == ["AC-3", "CM-7"]
	rules_for(inp) == {"profile_not_allowed"}
}

# An undeclared blueprint is refused for itself; its profile is not judged.
test_profile_of_a_blueprint_not_allowed_not_judged if {
	rules_for(with_request(calm, {"blueprint": "linux-vm-prod", "profile": "HA"})) == {"blueprint_not_allowed"}
}

web_stack := with_request(calm, {"blueprint": "web-stack-sandbox", "size": {"vcpus": 2, "memory_gib": 4, "disk_gib": 40}})

test_two_vm_profile_within_totals_allowed if {
	policy.allow with input as web_stack
}

test_two_vm_profile_over_total_disk_denied if {
	inp := with_request(web_stack, {"size": {"disk_gib": 50}})
	v := violation(inp, "total_size_exceeds_limit")
	v.path == "/size/disk_gib"
	v.message == "bundle fedramp_sbx_default allows at most 80 GiB of disk per Calm app in all; profile Default of blueprint web-stack-sandbox runs 2 VMs, so 50 each is 100 in all (at most 40 each fits)"
	v.control_ids == ["AC-6", "SC-6"]
	rules_for(inp) == {"total_size_exceeds_limit"}
}

# A VM over its own limit is reported once, by the per-VM rule.
test_per_vm_limit_reported_before_the_total if {
	rules_for(with_request(web_stack, {"size": {"vcpus": 3}})) == {"size_exceeds_limit"}
}

test_profile_of_another_type_denied if {
	inp := with_request(calm, {"profile": 3})
	violation(inp, "profile_not_allowed").message == "bundle fedramp_sbx_default allows blueprint linux-vm-sandbox with profiles [Default]; 3 is not one of them"
}
