# What may I provision with my bundle in this environment?
data "sas_catalog" "here" {}

output "networks" {
  value = data.sas_catalog.here.networks
}
