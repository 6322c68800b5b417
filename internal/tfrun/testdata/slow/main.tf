# A module that takes a minute to apply: for deadline tests.
terraform {
  required_providers {
    time = {
      source  = "hashicorp/time"
      version = "0.14.2"
    }
  }
}

resource "time_sleep" "slow" {
  create_duration = "60s"
}
