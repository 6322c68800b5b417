#!/usr/bin/env bash
# Soak: RUNS (default 30) back-to-back `terraform apply` + `destroy` of 100
# sas_ip_reservations at Terraform's default parallelism on one local stack.
# Counts runs that failed or crashed the provider (panic, fatal error), and
# checks the simulator is empty after every destroy. `make soak RUNS=30`;
# SAS_PROVIDER_DIR=<dir> soaks the provider binary in <dir> instead of ./bin.
set -euo pipefail
runs=${1:-30}
. "$(dirname "$0")/stack.sh"
work=$root/.demo-soak
rm -rf "$work"; mkdir -p "$work"
start_stack "$work"
write_reservations "$work/tf" 100 soak
# hosts counts the records the Infoblox simulator holds, asking it as an
# Infoblox admin would (its credentials are in Vault; the dev root token reads them).
ib_user=$(curl -sf -H "X-Vault-Token: $SAS_DEV_VAULT_ROOT_TOKEN" "$VAULT_ADDR/v1/sas/data/sbx/infoblox" |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]["data"]; print(d["username"]+":"+d["password"])')
hosts() {
  curl -sf --cacert "$SAS_DEV_INFOBLOX_CA" -u "$ib_user" "${SAS_DEV_INFOBLOX_URL%/}/record:host?_return_fields=name&_max_results=10000" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
ok=0 failed=0 crashed=0
for i in $(seq 1 "$runs"); do
  log=$work/run-$i.log
  if "$bin/terraform" -chdir="$work/tf" apply -auto-approve -input=false -no-color >"$log" 2>&1 &&
     grep -q "Apply complete! Resources: 100 added" "$log" &&
     "$bin/terraform" -chdir="$work/tf" destroy -auto-approve -input=false -no-color >>"$log" 2>&1 &&
     grep -q "Destroy complete! Resources: 100 destroyed" "$log"; then
    ok=$((ok + 1))
  else
    failed=$((failed + 1))
    echo "run $i failed:"; grep -m5 -E "Error|panic|fatal error" "$log" || tail -5 "$log"
    # leave the next run a clean slate
    "$bin/terraform" -chdir="$work/tf" destroy -auto-approve -input=false -no-color >>"$log" 2>&1 || true
  fi
  if grep -qE "panic:|fatal error:|concurrent map" "$log"; then crashed=$((crashed + 1)); fi
  left=$(hosts)
  [ "$left" = 0 ] || { echo "run $i: the simulator still holds $left hosts after destroy"; failed=$((failed + 1)); }
  printf 'run %d/%d: ok %d, failed %d, provider crashes %d, hosts left %s\n' "$i" "$runs" "$ok" "$failed" "$crashed" "$left"
done
stop_stack
echo "soak: $runs runs of apply+destroy x100: $ok succeeded, $failed failed, $crashed provider crashes"
[ "$failed" -eq 0 ] && [ "$crashed" -eq 0 ]
