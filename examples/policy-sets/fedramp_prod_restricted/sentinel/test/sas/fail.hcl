# Generated from policy bundle fedramp_prod_restricted (revision 2025.07.1) by `make docs`; do not edit.
mock "tfplan/v2" {
  module {
    source = "mock-tfplan-fail.sentinel"
  }
}

test {
  rules = {
    main = false
  }
}
