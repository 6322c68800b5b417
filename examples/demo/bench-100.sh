#!/usr/bin/env bash
# Benchmark: terraform apply of 100 sas_ip_reservations (default parallelism)
# on the local stack, then destroy; prints the wall time of each and the
# sub-tokens minted and revoked (from the audit trail). `make bench-terraform`.
set -euo pipefail
. "$(dirname "$0")/stack.sh"
work=$root/.demo-bench
rm -rf "$work"; mkdir -p "$work"
start_stack "$work"
write_reservations "$work/tf" 100 bench
t0=$(date +%s.%N)
"$bin/terraform" -chdir="$work/tf" apply -auto-approve -input=false -no-color >"$work/apply.log" 2>&1 || { tail -20 "$work/apply.log"; exit 1; }
t1=$(date +%s.%N)
"$bin/terraform" -chdir="$work/tf" destroy -auto-approve -input=false -no-color >"$work/destroy.log" 2>&1 || { tail -20 "$work/destroy.log"; exit 1; }
t2=$(date +%s.%N)
stop_stack
"$bin/sas-server" audit export --data-dir "$work/stack" >"$work/audit.jsonl"
minted=$(grep -c '"outcome":"sub-token minted' "$work/audit.jsonl" || true)
revoked=$(grep -c '"outcome":"sub-token revoked' "$work/audit.jsonl" || true)
rminted=$(grep -c '"outcome":"read sub-token minted' "$work/audit.jsonl" || true)
rrevoked=$(grep -c '"outcome":"read sub-token revoked' "$work/audit.jsonl" || true)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "apply 100: %.1fs  destroy 100: %.1fs\n", b - a, c - b }'
echo "operation sub-tokens minted $minted, revoked $revoked; read sub-tokens minted $rminted, revoked $rrevoked"
grep -h "Apply complete\|Destroy complete" "$work/apply.log" "$work/destroy.log"
