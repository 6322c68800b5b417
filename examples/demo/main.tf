# `make demo` applies this against the local stack (`sas-server dev`), with
# SAS_ADDR, VAULT_TOKEN, SAS_POLICY_BUNDLE and SAS_ENVIRONMENT from its env file.
terraform {
  required_providers {
    sas = {
      source = "sas-platform/sas"
    }
  }
}

provider "sas" {}

variable "network" {
  description = "Where the reservation goes; try 10.30.0.0/24 (a prod network) to see the bundle deny it at plan."
  type        = string
  default     = "sbx-app"
}

variable "blueprint" {
  description = "What the Calm app is launched from; try linux-vm-prod (a prod blueprint) to see the bundle deny it at plan."
  type        = string
  default     = "linux-vm-sandbox"
}

data "sas_identity" "me" {}

data "sas_catalog" "here" {}

resource "sas_ip_reservation" "web" {
  network  = var.network
  hostname = "demo-web"
  dns_zone = "sbx.example.internal"
  comment  = "made by make demo"
}

# A sandbox VM in Calm, on the reservation's address.
resource "sas_calm_app" "proto" {
  name           = "demo-proto"
  project        = "sas-sbx"
  blueprint      = var.blueprint
  ip_reservation = sas_ip_reservation.web.id
  size = {
    vcpus      = 1
    memory_gib = 2
    disk_gib   = 20
  }
  variables = {
    OWNER_EMAIL = "demo@example.org"
  }
}

# An approved module from the operator's catalog, planned, judged by the
# bundle and applied by the gateway.
resource "sas_module_run" "window" {
  name    = "demo-window"
  module  = "platform/maintenance-window"
  version = "1.1.0"
  inputs = {
    service    = "demo-web"
    start_hour = "2"
    weekday    = "sunday"
  }
}

output "owner" {
  description = "The Vault entity the gateway recorded as the owner."
  value       = data.sas_identity.me.owner
}

output "bundles" {
  value = data.sas_identity.me.bundles
}

output "allowed_networks" {
  value = data.sas_catalog.here.networks
}

output "ip_address" {
  value = sas_ip_reservation.web.ip_address
}

output "fqdn" {
  value = sas_ip_reservation.web.fqdn
}

output "tags" {
  value = sas_ip_reservation.web.tags
}

output "app_uuid" {
  value = sas_calm_app.proto.app_uuid
}

output "app_state" {
  value = sas_calm_app.proto.state
}

output "app_addresses" {
  value = sas_calm_app.proto.addresses
}

output "maintenance_window" {
  value = sas_module_run.window.outputs["window"]
}

output "module_plan" {
  value = sas_module_run.window.plan
}
