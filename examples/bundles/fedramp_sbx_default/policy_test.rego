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
