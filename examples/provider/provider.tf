# Settings can come from the environment instead:
# SAS_ADDR, VAULT_TOKEN (or ~/.vault-token), SAS_POLICY_BUNDLE, SAS_ENVIRONMENT.
provider "sas" {
  address       = "https://sas.example.com"
  policy_bundle = "fedramp_sbx_default"
  environment   = "sbx"
}

# In HCP Terraform with Vault-backed dynamic credentials:
# provider "sas" {
#   address       = "https://sas.example.com"
#   token_file    = var.tfc_vault_dynamic_credentials.default.token_filename
#   policy_bundle = "fedramp_dev_default"
#   environment   = "dev"
# }
