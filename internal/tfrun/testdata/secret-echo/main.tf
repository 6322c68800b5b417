# A careless module: it takes secret inputs (sensitive, as the catalog
# requires) and unmarks them with nonsensitive(), so Terraform prints them
# in its plan, in a check's warning and in its outputs, raw and
# jsonencode()d. What the runner's redaction must catch. The variable
# "undeclared" is not marked sensitive here: the runner must declare it so.
terraform {
  required_version = ">= 1.5"
}

variable "s1" {
  type      = string
  sensitive = true
}

variable "s2" {
  type      = string
  sensitive = true
}

variable "s3" {
  type      = string
  sensitive = true
}

variable "s4" {
  type      = string
  sensitive = true
}

variable "s5" {
  type      = string
  sensitive = true
}

variable "s6" {
  type      = string
  sensitive = true
}

variable "s7" {
  type      = string
  sensitive = true
}

variable "undeclared" {
  type = string
}

locals {
  all    = [var.s1, var.s2, var.s3, var.s4, var.s5, var.s6, var.s7]
  opened = [for s in local.all : nonsensitive(s)]
}

resource "terraform_data" "echo" {
  input = { for i, s in local.opened : "s${i + 1}" => s }
}

resource "terraform_data" "json" {
  input = nonsensitive(jsonencode(local.all))
}

resource "terraform_data" "plain" {
  input = var.undeclared
}

check "leak" {
  assert {
    condition     = length(local.all) == 0
    error_message = "the values are ${nonsensitive(join(" | ", local.all))}"
  }
}

output "echo" {
  value = local.opened
}

output "echo_json" {
  value = nonsensitive(jsonencode(local.all))
}

output "secrets" {
  value     = local.all
  sensitive = true
}
