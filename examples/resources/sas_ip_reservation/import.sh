# An IP reservation is imported by its sas id (GET /v1/ip-reservations lists yours).
terraform import sas_ip_reservation.web ipr-1fbdda0fb281c058dfcefed0
