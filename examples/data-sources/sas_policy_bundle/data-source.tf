# The provider's policy_bundle, or name another one your token is bound to.
data "sas_policy_bundle" "sandbox" {
  name = "fedramp_sbx_default"
}

output "allowed_environments" {
  value = data.sas_policy_bundle.sandbox.environments
}
