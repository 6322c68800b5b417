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

data "sas_identity" "me" {}

output "owner" {
  description = "The Vault entity the gateway recorded as the owner."
  value       = data.sas_identity.me.owner
}

output "bundles" {
  value = data.sas_identity.me.bundles
}

output "token_expires" {
  value = data.sas_identity.me.token_expire_time
}
