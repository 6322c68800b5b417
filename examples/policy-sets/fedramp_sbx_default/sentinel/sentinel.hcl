# Generated from policy bundle fedramp_sbx_default (revision 2025.07.1) by `make docs`; do not edit.
policy "sas" {
  source            = "./sas.sentinel"
  enforcement_level = "hard-mandatory"
}
