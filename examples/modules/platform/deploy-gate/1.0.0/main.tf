# platform/deploy-gate 1.0.0: a gate a release pipeline passes through: it
# records the release and waits for it to settle before reporting it open.
# Runs offline: terraform_data and hashicorp/time only.
terraform {
  required_version = ">= 1.5"
  required_providers {
    time = {
      source  = "hashicorp/time"
      version = "0.14.2"
    }
  }
}

variable "release" {
  description = "The release passing the gate (lowercase letters, digits, '.' and '-')."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,62}$", var.release))
    error_message = "release must be lowercase letters, digits, '.' and '-', at most 63 characters."
  }
}

variable "settle" {
  description = "How long the release must settle before the gate opens: at most 120s, in seconds or minutes (30s, 90s, 2m)."
  type        = string
  default     = "30s"
  # A run holds a worker while it waits: the wait is bounded well inside
  # the module_run step timeout.
  validation {
    condition     = can(regex("^(([0-9]|[1-9][0-9]|1[01][0-9]|120)s|[12]m|1m([0-9]|[1-5][0-9])s|2m0s)$", var.settle))
    error_message = "settle must be a duration of at most 120s, in seconds or minutes, such as 30s, 90s, 1m30s or 2m."
  }
}

resource "terraform_data" "release" {
  input = var.release
}

resource "time_sleep" "settle" {
  create_duration = var.settle
  triggers        = { release = terraform_data.release.output }
}

output "opened_for" {
  description = "The release the gate opened for."
  value       = time_sleep.settle.triggers.release
}
