# A module run is imported by its sas id (GET /v1/module-runs lists yours).
terraform import sas_module_run.window mr-5be0a1d2c3e4f5a6b7c8d9e0
