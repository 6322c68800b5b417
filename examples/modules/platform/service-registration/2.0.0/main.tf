# platform/service-registration 2.0.0: a service's entry in the platform's
# service registry (owner, tier, labels). Runs offline: terraform_data only.
terraform {
  required_version = ">= 1.5"
}

variable "name" {
  description = "Service name (lowercase letters, digits and '-')."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.name))
    error_message = "name must be lowercase letters, digits and '-', starting with a letter, at most 63 characters."
  }
}

variable "owner" {
  description = "Owning team's e-mail address."
  type        = string
  validation {
    condition     = can(regex("^[^@ ]+@[^@ ]+$", var.owner))
    error_message = "owner must be an e-mail address."
  }
}

variable "tier" {
  description = "Service tier: bronze, silver or gold."
  type        = string
  default     = "bronze"
  validation {
    condition     = contains(["bronze", "silver", "gold"], var.tier)
    error_message = "tier must be bronze, silver or gold."
  }
}

resource "terraform_data" "registration" {
  input = {
    name  = var.name
    owner = var.owner
    tier  = var.tier
  }
}

output "registration_id" {
  description = "The registry's id for the entry."
  value       = terraform_data.registration.id
}

output "entry" {
  description = "The entry as registered."
  value       = terraform_data.registration.output
}
