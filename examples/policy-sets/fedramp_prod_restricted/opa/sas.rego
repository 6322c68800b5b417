# Generated from policy bundle fedramp_prod_restricted (revision 2025.07.1) by `make docs`; do not edit.
#
# Denies a plan whose sas_* resources the gateway's bundle fedramp_prod_restricted would
# refuse: the provider's environment, networks, DNS zones, blueprints and
# their app profiles, modules, and limits (per VM and, for a Calm app's
# profile's VMs together, per app). The gateway decides again at apply; this makes a
# workspace fail at plan, in HCP Terraform's policy check, for the same reasons.
package terraform.policies.sas

import rego.v1

bundle := {
  "name": "fedramp_prod_restricted",
  "revision": "2025.07.1",
  "environments": [
    "prod"
  ],
  "networks": {
    "prod-app": {
      "cidr": "10.30.0.0/24",
      "environments": [
        "prod"
      ]
    },
    "prod-data": {
      "cidr": "10.30.1.0/24",
      "environments": [
        "prod"
      ]
    }
  },
  "zones": {
    "prod.example.internal": [
      "prod"
    ]
  },
  "blueprints": [
    "linux-vm-prod",
    "postgres-ha-prod"
  ],
  "profiles": {
    "linux-vm-prod": {
      "Default": 1
    },
    "postgres-ha-prod": {
      "Default": 3,
      "HA": 3
    }
  },
  "modules": {
    "platform/deploy-gate": [
      "1.0.0"
    ],
    "platform/maintenance-window": [
      "1.1.0"
    ],
    "platform/secret-rotation": [
      "1.0.0"
    ],
    "platform/service-registration": [
      "2.0.0"
    ]
  },
  "max_vcpus": 16,
  "max_memory_gib": 64,
  "max_disk_gib": 1000,
  "max_total_vcpus": 32,
  "max_total_memory_gib": 128,
  "max_total_disk_gib": 2000,
  "max_aliases": 3
}

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
