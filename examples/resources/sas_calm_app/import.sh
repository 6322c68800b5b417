# A Calm app is imported by its sas id (GET /v1/calm-apps lists yours).
terraform import sas_calm_app.proto calm-5be0a1d2c3e4f5a6b7c8d9e0
