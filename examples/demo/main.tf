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

data "sas_identity" "me" {}

data "sas_catalog" "here" {}

resource "sas_ip_reservation" "web" {
  network  = var.network
  hostname = "demo-web"
  dns_zone = "sbx.example.internal"
  comment  = "made by make demo"
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
