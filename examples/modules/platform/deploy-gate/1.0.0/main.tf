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
  description = "How long the release must settle before the gate opens (a duration such as 30s or 5m)."
  type        = string
  default     = "30s"
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
