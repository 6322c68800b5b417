#!/usr/bin/env bash
# Benchmark: terraform apply of 100 sas_ip_reservations (default parallelism)
# on the local stack, then destroy; prints the wall time of each and the
# sub-tokens minted and revoked (from the audit trail). `make bench-terraform`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/bin
work=$root/.demo-bench
rm -rf "$work"; mkdir -p "$work/tf"
stack_pid=
trap '[ -n "$stack_pid" ] && kill -INT "$stack_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT
"$bin/sas-server" dev -listen 127.0.0.1:0 -data-dir "$work/stack" -env-file "$work/env" -log-level warn >"$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 300); do [ -s "$work/env" ] && break; sleep 0.2; done
set -a; . "$work/env"; set +a
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides { "registry.terraform.io/sas-platform/sas" = "$bin" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE=$work/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
cat >"$work/tf/main.tf" <<'TF'
terraform {
  required_providers {
    sas = { source = "sas-platform/sas" }
  }
}
provider "sas" {}
resource "sas_ip_reservation" "r" {
  count    = 100
  network  = count.index % 2 == 0 ? "sbx-app" : "sbx-data"
  hostname = format("bench-%03d", count.index)
  dns_zone = "sbx.example.internal"
}
TF
t0=$(date +%s.%N)
"$bin/terraform" -chdir="$work/tf" apply -auto-approve -input=false -no-color >"$work/apply.log" 2>&1 || { tail -20 "$work/apply.log"; exit 1; }
t1=$(date +%s.%N)
"$bin/terraform" -chdir="$work/tf" destroy -auto-approve -input=false -no-color >"$work/destroy.log" 2>&1 || { tail -20 "$work/destroy.log"; exit 1; }
t2=$(date +%s.%N)
kill -INT "$stack_pid"; wait "$stack_pid" || true; stack_pid=
"$bin/sas-server" audit export --data-dir "$work/stack" >"$work/audit.jsonl"
minted=$(grep -c '"outcome":"sub-token minted' "$work/audit.jsonl" || true)
revoked=$(grep -c '"outcome":"sub-token revoked' "$work/audit.jsonl" || true)
rminted=$(grep -c '"outcome":"read sub-token minted' "$work/audit.jsonl" || true)
rrevoked=$(grep -c '"outcome":"read sub-token revoked' "$work/audit.jsonl" || true)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "apply 100: %.1fs  destroy 100: %.1fs\n", b - a, c - b }'
echo "operation sub-tokens minted $minted, revoked $revoked; read sub-tokens minted $rminted, revoked $rrevoked"
grep -h "Apply complete\|Destroy complete" "$work/apply.log" "$work/destroy.log"
