# platform/maintenance-window 1.1.0: a service's weekly maintenance window,
# recorded for the change calendar. Runs offline: terraform_data and
# hashicorp/time only.
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
  description = "The service the window is for (lowercase letters, digits and '-')."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.service))
    error_message = "service must be lowercase letters, digits and '-', starting with a letter, at most 63 characters."
  }
}

variable "start_hour" {
  description = "Hour (UTC) the window starts, 0-23."
  type        = number
  default     = 2
  validation {
    condition     = var.start_hour >= 0 && var.start_hour <= 23 && floor(var.start_hour) == var.start_hour
    error_message = "start_hour must be a whole hour from 0 to 23."
  }
}

variable "duration_hours" {
  description = "Length of the window in hours, 1-8."
  type        = number
  default     = 2
  validation {
    condition     = var.duration_hours >= 1 && var.duration_hours <= 8 && floor(var.duration_hours) == var.duration_hours
    error_message = "duration_hours must be a whole number of hours from 1 to 8."
  }
}

variable "weekday" {
  description = "Day of the week the window is on."
  type        = string
  default     = "sunday"
  validation {
    condition     = contains(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], var.weekday)
    error_message = "weekday must be a day of the week, in lowercase."
  }
}

resource "time_static" "registered" {}

resource "terraform_data" "window" {
  input = {
    service = var.service
    weekday = var.weekday
    starts  = format("%02d:00 UTC", var.start_hour)
    ends    = format("%02d:00 UTC", (var.start_hour + var.duration_hours) % 24)
  }
}

output "window" {
  description = "The window as recorded."
  value       = terraform_data.window.output
}

output "registered_at" {
  description = "When the window was first recorded (RFC 3339)."
  value       = time_static.registered.rfc3339
}
