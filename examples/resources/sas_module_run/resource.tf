# An approved module from the operator's catalog, run by the gateway: its
# plan is judged by your bundle before anything is applied.
resource "sas_module_run" "window" {
  name    = "billing-window"
  module  = "platform/maintenance-window"
  version = "1.1.0"
  inputs = {
    service    = "billing"
    start_hour = "3" # strings; Terraform converts them to the variable's type
    weekday    = "saturday"
  }

  timeouts {
    create = "30m"
  }
}

# A module with a secret input (Terraform/OpenTofu >= 1.11 for write-only).
variable "initial_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "sas_module_run" "rotation" {
  name    = "billing-rotation"
  module  = "platform/secret-rotation"
  version = "1.0.0"
  inputs = {
    service       = "billing"
    rotation_days = "30"
  }
  secret_inputs = {
    initial_secret = var.initial_secret
  }
  secret_inputs_version = 1
}

output "window" {
  value = sas_module_run.window.outputs["window"]
}
