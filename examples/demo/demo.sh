#!/usr/bin/env bash
# The sas demo on embedded defaults: start the local stack (a real Vault dev
# server + the gateway, SQLite in .demo/), then run real Terraform with the
# provider built from this tree against it, and stop everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/bin
work=$root/.demo
rm -rf "$work"
mkdir -p "$work/tf"

stack_pid=
cleanup() {
  if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
    kill -INT "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "==> starting the local stack: sas-server dev (log: .demo/stack.log)"
"$bin/sas-server" dev -listen 127.0.0.1:0 -data-dir "$work/stack" -env-file "$work/env" -log-level info >"$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/env" ] && break
  kill -0 "$stack_pid" 2>/dev/null || { cat "$work/stack.log"; echo "sas-server dev exited" >&2; exit 1; }
  sleep 0.2
done
[ -s "$work/env" ] || { cat "$work/stack.log"; echo "sas-server dev did not come up" >&2; exit 1; }
set -a; . "$work/env"; set +a
echo "    gateway $SAS_ADDR, vault $VAULT_ADDR, bundle $SAS_POLICY_BUNDLE, environment $SAS_ENVIRONMENT"

# Use the provider binary from ./bin instead of the registry.
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/sas-platform/sas" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE=$work/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
cp "$root/examples/demo/main.tf" "$work/tf/"

echo "==> curl $SAS_ADDR/v1/sys/health"
curl -fsS "$SAS_ADDR/v1/sys/health"; echo

echo "==> terraform apply (Terraform $("$bin/terraform" version | head -n1))"
"$bin/terraform" -chdir="$work/tf" apply -auto-approve -input=false -compact-warnings 2>&1 | grep -v "Provider development overrides" || true
"$bin/terraform" -chdir="$work/tf" output -json >"$work/outputs.json"
owner=$("$bin/terraform" -chdir="$work/tf" output -raw owner)
[ "$owner" = "demo-user" ] || { echo "demo failed: owner is '$owner', want demo-user" >&2; exit 1; }

echo "==> a root token is refused at plan"
if VAULT_TOKEN=$SAS_DEV_VAULT_ROOT_TOKEN "$bin/terraform" -chdir="$work/tf" plan -input=false -no-color >"$work/root-plan.log" 2>&1; then
  echo "demo failed: a root token was accepted" >&2; exit 1
fi
sed -n "/Error:/,/Request id/p" "$work/root-plan.log"

echo "==> an IP reservation through the gateway: policy, audit, a Vault sub-token, the Infoblox simulator"
hdr=(-H "X-Vault-Token: $VAULT_TOKEN" -H "X-Sas-Policy-Bundle: $SAS_POLICY_BUNDLE" -H "X-Sas-Environment: $SAS_ENVIRONMENT")
op=$(curl -fsS "${hdr[@]}" -H "Idempotency-Key: demo-1" -X POST "$SAS_ADDR/v1/ip-reservations" \
  -d '{"network":"sbx-app","hostname":"demo-web","dns_zone":"sbx.example.internal","comment":"make demo"}')
op_id=$(printf '%s' "$op" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
state=
for _ in $(seq 1 100); do
  op=$(curl -fsS "${hdr[@]}" "$SAS_ADDR/v1/operations/$op_id")
  state=$(printf '%s' "$op" | sed -n 's/.*"state":"\([^"]*\)".*/\1/p')
  case $state in succeeded|failed|cancelled) break ;; esac
  sleep 0.1
done
echo "    operation $op_id: $state"
[ "$state" = succeeded ] || { echo "demo failed: $op" >&2; exit 1; }
ip=$(printf '%s' "$op" | sed -n 's/.*"ip_address":"\([^"]*\)".*/\1/p')
echo "    demo-web.sbx.example.internal -> $ip (tagged owner=$owner in Infoblox)"

echo "==> a prod network under the sandbox bundle is denied, with the reason"
curl -sS "${hdr[@]}" -X POST "$SAS_ADDR/v1/decisions" \
  -d '{"kind":"ip_reservation","action":"create","request":{"network":"10.30.0.0/24","hostname":"x","dns_zone":"prod.example.internal"}}'
echo

echo "==> the audit chain verifies"
"$bin/sas-server" audit verify --data-dir "$work/stack"

echo "==> demo passed: the gateway verified the token against Vault, recorded owner '$owner', and provisioned $ip"
