data "sas_identity" "me" {}

output "owner" {
  value = data.sas_identity.me.owner
}

output "bundles" {
  value = data.sas_identity.me.bundles
}
