# The next free address in the bundle's sbx-app network, with its DNS name.
resource "sas_ip_reservation" "web" {
  network  = "sbx-app" # or a CIDR the bundle allows, e.g. "10.10.0.0/24"
  hostname = "web-01"
  dns_zone = "sbx.example.internal"
  comment  = "web tier"
  aliases  = ["www.sbx.example.internal"]

  timeouts {
    create = "5m"
    delete = "5m"
  }
}

# Under a bundle that requires change tickets (fedramp_prod_restricted):
# change_ticket = "CHG0012345"

output "web_address" {
  value = sas_ip_reservation.web.ip_address
}
