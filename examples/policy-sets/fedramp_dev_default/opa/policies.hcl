# Generated from policy bundle fedramp_dev_default (revision 2025.07.1) by `make docs`; do not edit.
policy "sas" {
  query             = "data.terraform.policies.sas.deny"
  enforcement_level = "mandatory"
}
