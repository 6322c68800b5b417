# Sourced by the benchmark and soak scripts (not run on its own).
#
# start_stack WORK: starts `sas-server dev` with its data in WORK/stack, loads
# the env file it writes (SAS_ADDR, VAULT_TOKEN, …) and points Terraform at
# the provider in $SAS_PROVIDER_DIR (default ./bin) with dev_overrides. The
# stack stops when the calling script exits.
# write_reservations DIR COUNT PREFIX: a main.tf of COUNT sas_ip_reservations
# named PREFIX-000…, alternating between the two sandbox networks.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$root/bin
stack_pid=
trap '[ -n "$stack_pid" ] && kill -INT "$stack_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

start_stack() {
  local work=$1
  "$bin/sas-server" dev -listen 127.0.0.1:0 -data-dir "$work/stack" -env-file "$work/env" -log-level warn >"$work/stack.log" 2>&1 &
  stack_pid=$!
  for _ in $(seq 1 300); do [ -s "$work/env" ] && break; sleep 0.2; done
  [ -s "$work/env" ] || { echo "sas-server dev did not start:"; tail -20 "$work/stack.log"; exit 1; }
  set -a; . "$work/env"; set +a
  cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides { "registry.terraform.io/sas-platform/sas" = "${SAS_PROVIDER_DIR:-$bin}" }
  direct {}
}
RC
  export TF_CLI_CONFIG_FILE=$work/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
}

stop_stack() {
  kill -INT "$stack_pid"; wait "$stack_pid" || true; stack_pid=
}

write_reservations() {
  mkdir -p "$1"
  cat >"$1/main.tf" <<TF
terraform {
  required_providers {
    sas = { source = "sas-platform/sas" }
  }
}
provider "sas" {}
resource "sas_ip_reservation" "r" {
  count    = $2
  network  = count.index % 2 == 0 ? "sbx-app" : "sbx-data"
  hostname = format("$3-%03d", count.index)
  dns_zone = "sbx.example.internal"
}
TF
}
