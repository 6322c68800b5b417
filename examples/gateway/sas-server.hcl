# sas gateway configuration (sas-server serve -config sas-server.hcl).
# SAS_* environment variables override these settings (sas-server serve -h).

listen {
  address       = "0.0.0.0:8443"
  tls_cert_file = "/etc/sas/tls/gateway.crt" # plain HTTP is refused off loopback
  tls_key_file  = "/etc/sas/tls/gateway.key"
  read_timeout  = "30s"
  write_timeout = "60s"
  idle_timeout  = "120s"
  max_body_bytes = 1048576
  metrics_address = "127.0.0.1:9464" # Prometheus; never on the API (metrics name every bundle)
}

vault {
  address        = "https://vault.example.com:8200"
  ca_cert_file   = "/etc/sas/tls/vault-ca.pem"
  max_caller_ttl = "8h" # tokens with more remaining TTL are static in all but name
  # token_cache_ttl = "2s" # reuse a positive token lookup (≤ 5s): more throughput,
  #                        # but a revoked token keeps working for that long

  approle {
    role_id        = "00000000-0000-0000-0000-000000000000" # vault read auth/approle/role/sas-gateway/role-id
    secret_id_file = "/etc/sas/vault-secret-id"             # never put the secret_id itself here
  }
}

storage {
  data_dir = "/var/lib/sas" # embedded SQLite
  # postgres_dsn_file = "/etc/sas/postgres-dsn" # scale-out: every replica shares PostgreSQL
}

policy {
  bundle_dir             = "/etc/sas/bundles"
  verification_key_files = ["/etc/sas/bundle-signing.pub"] # unsigned bundles are then refused
  reload_interval        = "30s"                          # SIGHUP reloads at once
}

audit {
  hmac_key_file    = "/etc/sas/audit-hmac.key"
  signing_key_file = "/etc/sas/audit-signing.pem"
  checkpoint_every = 100
}

orchestrator {
  workers_per_kind  = 8     # concurrent operations per kind, per replica
  operation_timeout = "2m"  # one attempt, and the lifetime of its Vault sub-token
  rescue_after      = "3m"  # an attempt running longer was abandoned by a dead replica: retry it
  revoke_timeout    = "30s" # an attempt's own sub-token revocation; past it the sweep retries
  sweep_interval    = "30s" # re-enqueue stalled operations; revoke sub-tokens Vault did not confirm
}

# On by default (50/s, burst 100, per caller identity; 5/s, burst 30 refused
# requests per client address before Vault is asked). Per replica.
rate_limit {
  requests_per_second        = 20 # per caller identity (Vault entity), after authentication
  burst                      = 40
  unauthenticated_per_second = 5  # refusals per client address; once spent, its requests
  unauthenticated_burst      = 30 # are refused before Vault is asked (no forwarding header trusted)
}

# Module runs (module_run): without this block they are decided by policy,
# then answered 501. See docs/gateway/operations.md.
# modules {
#   catalog_dir = "/etc/sas/modules"         # catalog.json + the approved sources
#   terraform   = "/usr/local/bin/terraform" # the CLI that runs them
#   plugin_dir  = "/var/lib/sas/plugins"     # provider mirror: init never downloads
# }

log {
  level  = "info"
  format = "json"
}
