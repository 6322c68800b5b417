# platform/secret-rotation 1.0.0: a rotation schedule for a service secret.
# The secret itself is an input marked secret in the catalog: it reaches
# Terraform through the environment only, and only its fingerprint is kept.
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

resource "terraform_data" "fingerprint" {
  input = sha256(var.initial_secret)
}

output "rotates_at" {
  description = "When the secret is next due (RFC 3339)."
  value       = time_rotating.schedule.rotation_rfc3339
}

output "secret_fingerprint" {
  description = "SHA-256 of the initial secret."
  value       = terraform_data.fingerprint.output
  sensitive   = true
}
