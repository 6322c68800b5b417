# A sandbox VM from the catalog, on the address of an IP reservation.
resource "sas_ip_reservation" "app" {
  network  = "sbx-app"
  hostname = "proto-01"
  dns_zone = "sbx.example.internal"
}

variable "admin_password" {
  type      = string
  sensitive = true
  ephemeral = true # Terraform >= 1.10: never saved in a plan
}

resource "sas_calm_app" "proto" {
  name           = "proto-01"
  project        = "sas-sbx"
  blueprint      = "linux-vm-sandbox"
  ip_reservation = sas_ip_reservation.app.id # or: network = "sbx-app"

  size = {
    vcpus      = 2
    memory_gib = 4
    disk_gib   = 40
  }

  variables = {
    OWNER_EMAIL = "team@example.org"
  }

  # Write-only (Terraform/OpenTofu >= 1.11): never in a plan or in state.
  # Bump the version to launch again with new values.
  secret_variables = {
    ADMIN_PASSWORD = var.admin_password
  }
  secret_variables_version = 1

  power_state = "running" # or "stopped"

  timeouts {
    create = "45m" # Calm launches commonly take 10-30 minutes
    delete = "30m"
  }
}

output "proto_addresses" {
  value = sas_calm_app.proto.addresses
}
