#!/usr/bin/env bash
# The trust boundary from outside, with curl, against a running dev stack:
#   sas-server dev -env-file .sas-dev.env &   then   examples/demo/trust-boundary.sh .sas-dev.env
# Each line shows the status and problem type the gateway answers for one
# class of docs/gateway/security.md ("The trust boundary as Vault enforces it").
# Needs curl and jq; uses the dev Vault's root token only to mint test tokens.
set -u
. "${1:?usage: trust-boundary.sh <env file written by sas-server dev>}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
V=$VAULT_ADDR; R=$SAS_DEV_VAULT_ROOT_TOKEN
vault() { curl -s -H "X-Vault-Token: $R" "$@"; }
tok() { jq -r .auth.client_token; }
show() { echo "--- $1"; shift; curl -s -o "$tmp/body" -D "$tmp/hdr" "$@" -w '%{http_code} ' ; jq -c '{type,detail}' "$tmp/body" 2>/dev/null | cut -c1-230; }
H=(-H "X-Sas-Policy-Bundle: fedramp_sbx_default" -H "X-Sas-Environment: sbx")
show "identity (demo token)" -H "X-Vault-Token: $VAULT_TOKEN" $SAS_ADDR/v1/identity; grep -i -E "nosniff|no-store" "$tmp/hdr" | tr -d '\r'
show "/metrics on the API" $SAS_ADDR/metrics
echo "--- metrics listener: $(curl -s $SAS_DEV_METRICS_URL | grep -c '^sas_') sas_ lines"
OTHER=$(vault -X POST -d '{"policies":["sas-bundle-fedramp_sbx_default"],"entity_alias":"mallory","ttl":"1h"}' $V/v1/auth/token/create/sas-caller | tok)
show "two different tokens" -H "X-Vault-Token: $VAULT_TOKEN" -H "Authorization: Bearer $OTHER" $SAS_ADDR/v1/identity
P='["sas-bundle-fedramp_sbx_default"]'
show "batch token" -H "X-Vault-Token: $(vault -X POST -d "{\"policies\":$P,\"type\":\"batch\",\"ttl\":\"1h\",\"no_parent\":true}" $V/v1/auth/token/create | tok)" $SAS_ADDR/v1/identity
show "periodic token" -H "X-Vault-Token: $(vault -X POST -d "{\"policies\":$P,\"period\":\"1h\"}" $V/v1/auth/token/create | tok)" $SAS_ADDR/v1/identity
show "no explicit max TTL" -H "X-Vault-Token: $(vault -X POST -d "{\"policies\":$P,\"ttl\":\"1h\"}" $V/v1/auth/token/create | tok)" $SAS_ADDR/v1/identity
show "num_uses=1" -H "X-Vault-Token: $(vault -X POST -d "{\"policies\":$P,\"ttl\":\"1h\",\"explicit_max_ttl\":\"2h\",\"num_uses\":1}" $V/v1/auth/token/create | tok)" $SAS_ADDR/v1/identity
show "no entity (display_name demo-user)" -H "X-Vault-Token: $(vault -X POST -d "{\"policies\":$P,\"ttl\":\"1h\",\"explicit_max_ttl\":\"2h\",\"display_name\":\"demo-user\"}" $V/v1/auth/token/create | tok)" $SAS_ADDR/v1/identity
EID=$(vault -X POST -d "{\"token\":\"$OTHER\"}" $V/v1/auth/token/lookup | jq -r .data.entity_id)
vault -X POST -d '{"disabled":true}' $V/v1/identity/entity/id/$EID >/dev/null
echo "--- Vault's own lookup-self with it: $(curl -s -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $OTHER" $V/v1/auth/token/lookup-self)"
show "entity disabled" -H "X-Vault-Token: $OTHER" $SAS_ADDR/v1/identity
vault -X POST -d '{"disabled":false}' $V/v1/identity/entity/id/$EID >/dev/null
show "entity re-enabled" -H "X-Vault-Token: $OTHER" $SAS_ADDR/v1/identity
vault -X POST -d '{"allowed_policies":["sas-bundle-fedramp_sbx_default"],"allowed_entity_aliases":["*"],"token_explicit_max_ttl":"8h","token_bound_cidrs":["10.99.0.0/16"]}' $V/v1/auth/token/roles/ci-bound >/dev/null
show "bound to 10.99.0.0/16" -H "X-Vault-Token: $(vault -X POST -d '{"entity_alias":"runner","ttl":"1h"}' $V/v1/auth/token/create/ci-bound | tok)" $SAS_ADDR/v1/identity
TWO=$(vault -X POST -d '{"policies":["sas-bundle-fedramp_sbx_default","sas-bundle-fedramp_prod_restricted"],"entity_alias":"two-hats","ttl":"1h"}' $V/v1/auth/token/create/sas-caller | tok)
OP=$(curl -s -X POST -H "X-Vault-Token: $TWO" -H "X-Sas-Policy-Bundle: fedramp_prod_restricted" -H "X-Sas-Environment: prod" -d '{"network":"prod-app","hostname":"db-01","dns_zone":"prod.example.internal","change_ticket":"CHG0012345"}' $SAS_ADDR/v1/ip-reservations | jq -r .id)
sleep 2
ID=$(curl -s -H "X-Vault-Token: $TWO" $SAS_ADDR/v1/operations/$OP | jq -r .result.resource_id)
show "delete prod $ID under sbx headers" -X DELETE -H "X-Vault-Token: $TWO" "${H[@]}" $SAS_ADDR/v1/ip-reservations/$ID
show "dry run vcpus 2.0" -X POST -H "X-Vault-Token: $VAULT_TOKEN" "${H[@]}" -d '{"kind":"calm_app","action":"create","request":{"name":"a","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":2.0,"memory_gib":2,"disk_gib":20}}}' $SAS_ADDR/v1/decisions
show "IPv4-mapped IPv6 network" -X POST -H "X-Vault-Token: $VAULT_TOKEN" "${H[@]}" -d '{"network":"::ffff:10.10.0.0/120","hostname":"web-01","dns_zone":"sbx.example.internal"}' $SAS_ADDR/v1/ip-reservations
show "ESC and CRLF in a path id" -H "X-Vault-Token: $VAULT_TOKEN" "${H[@]}" "$SAS_ADDR/v1/ip-reservations/x%1b%5b31m%0d%0aforged"
echo "--- flood: 60 bad tokens from one address"
for i in $(seq 1 60); do curl -s -o /dev/null -w '%{http_code}\n' -H "X-Vault-Token: hvs.bogus$i" $SAS_ADDR/v1/identity; done | sort | uniq -c
show "a fresh valid token during the flood" -H "X-Vault-Token: $(vault -X POST -d '{"policies":["sas-bundle-fedramp_sbx_default"],"entity_alias":"late","ttl":"1h"}' $V/v1/auth/token/create/sas-caller | tok)" $SAS_ADDR/v1/identity
show "the demo token (admitted before the flood)" -H "X-Vault-Token: $VAULT_TOKEN" $SAS_ADDR/v1/identity
