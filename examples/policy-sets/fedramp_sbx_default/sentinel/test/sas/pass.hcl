# Generated from policy bundle fedramp_sbx_default (revision 2025.07.1) by `make docs`; do not edit.
mock "tfplan/v2" {
  module {
    source = "mock-tfplan-pass.sentinel"
  }
}

test {
  rules = {
    main = true
  }
}
