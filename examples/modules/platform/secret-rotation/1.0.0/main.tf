# platform/secret-rotation 1.0.0: a rotation schedule for a service secret.
# The secret itself is an input marked secret in the catalog: it reaches
# Terraform through the environment only. Nothing derived from it is kept
# in the state or given as an output (a bare hash of a secret can be brute
# forced by whoever reads it); the gateway reports a keyed fingerprint of
# each secret input with the run (secret_input_fingerprints).
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

variable "service" {
  description = "The service whose secret rotates."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.service))
    error_message = "service must be lowercase letters, digits and '-', starting with a letter, at most 63 characters."
  }
}

variable "rotation_days" {
  description = "Days between rotations, 1-90."
  type        = number
  default     = 30
  validation {
    condition     = var.rotation_days >= 1 && var.rotation_days <= 90 && floor(var.rotation_days) == var.rotation_days
    error_message = "rotation_days must be a whole number of days from 1 to 90."
  }
}

variable "initial_secret" {
  description = "The secret's first value (a secret input)."
  type        = string
  sensitive   = true
}

resource "time_rotating" "schedule" {
  rotation_days = var.rotation_days
}

# The rotation's record: where a module with a secret store would write
# the secret, this offline one notes the schedule — and nothing derived
# from the secret. Its input changes in place; nothing is replaced.
resource "terraform_data" "rotation" {
  input = {
    service    = var.service
    rotated_at = time_rotating.schedule.rfc3339
    rotates_at = time_rotating.schedule.rotation_rfc3339
  }
}

output "rotates_at" {
  description = "When the secret is next due (RFC 3339)."
  value       = time_rotating.schedule.rotation_rfc3339
}

output "rotated_at" {
  description = "When the schedule last rotated (RFC 3339): it changes with each rotation. Not derived from the secret; the gateway reports a keyed fingerprint of the secret itself."
  value       = time_rotating.schedule.rfc3339
}
