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
"$bin/terraform" -chdir="$work/tf" apply -auto-approve -input=false -compact-warnings -no-color 2>&1 | grep -v "Provider development overrides" || true
"$bin/terraform" -chdir="$work/tf" output -json >"$work/outputs.json"
owner=$("$bin/terraform" -chdir="$work/tf" output -raw owner)
[ "$owner" = "demo-user" ] || { echo "demo failed: owner is '$owner', want demo-user" >&2; exit 1; }

echo "==> a root token is refused at plan"
if VAULT_TOKEN=$SAS_DEV_VAULT_ROOT_TOKEN "$bin/terraform" -chdir="$work/tf" plan -input=false -no-color >"$work/root-plan.log" 2>&1; then
  echo "demo failed: a root token was accepted" >&2; exit 1
fi
sed -n "/Error:/,/Request id/p" "$work/root-plan.log"

echo "==> the reservation exists in Infoblox (simulator at $SAS_DEV_INFOBLOX_URL), tagged"
ip=$("$bin/terraform" -chdir="$work/tf" output -raw ip_address)
"$bin/terraform" -chdir="$work/tf" output tags

echo "==> the Calm app runs in Calm (simulator at $SAS_DEV_CALM_URL), on the reservation's address"
app_uuid=$("$bin/terraform" -chdir="$work/tf" output -raw app_uuid)
app_addr=$("$bin/terraform" -chdir="$work/tf" output -json app_addresses | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')
calm_user=$(curl -sf -H "X-Vault-Token: $SAS_DEV_VAULT_ROOT_TOKEN" "$VAULT_ADDR/v1/sas/data/sbx/calm" |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]["data"]; print(d["username"]+":"+d["password"])')
calm_state=$(curl -sf --cacert "$SAS_DEV_CALM_CA" -u "$calm_user" "$SAS_DEV_CALM_URL/api/nutanix/v3/apps/$app_uuid" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["state"])')
echo "    app $app_uuid: Calm says $calm_state, address $app_addr"
[ "$calm_state" = running ] && [ "$app_addr" = "$ip" ] || { echo "demo failed: app $calm_state on $app_addr, want running on $ip" >&2; exit 1; }

echo "==> the catalog module ran through the gateway: its plan was judged, then applied"
window=$("$bin/terraform" -chdir="$work/tf" output -raw maintenance_window)
echo "    maintenance window: $window; plan: $("$bin/terraform" -chdir="$work/tf" output -json module_plan)"
case "$window" in *'"service":"demo-web"'*) ;; *) echo "demo failed: module outputs $window" >&2; exit 1 ;; esac

echo "==> a prod blueprint under the sandbox bundle is denied at plan, on the attribute"
if "$bin/terraform" -chdir="$work/tf" plan -input=false -no-color -var blueprint=linux-vm-prod >"$work/deny-bp.log" 2>&1; then
  echo "demo failed: the prod blueprint was allowed" >&2; exit 1
fi
sed -n "/Error:/,/Decision/p" "$work/deny-bp.log"

echo "==> a prod network under the sandbox bundle is denied at plan, on the attribute"
if "$bin/terraform" -chdir="$work/tf" plan -input=false -no-color -var network=10.30.0.0/24 >"$work/deny-plan.log" 2>&1; then
  echo "demo failed: the prod network was allowed" >&2; exit 1
fi
sed -n "/Error:/,/Decision/p" "$work/deny-plan.log"

echo "==> terraform destroy"
"$bin/terraform" -chdir="$work/tf" destroy -auto-approve -input=false -no-color 2>&1 | tail -n 1
gone=$(curl -s --cacert "$SAS_DEV_CALM_CA" -u "$calm_user" "$SAS_DEV_CALM_URL/api/nutanix/v3/apps/$app_uuid" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("status",{}).get("state") or d.get("code"))')
echo "    Calm app $app_uuid after destroy: $gone"
[ "$gone" = deleted ] || [ "$gone" = 404 ] || { echo "demo failed: the Calm app is $gone after destroy" >&2; exit 1; }

echo "==> the audit chain verifies"
"$bin/sas-server" audit verify --data-dir "$work/stack"

echo "==> demo passed: the gateway verified the token against Vault, recorded owner '$owner', provisioned $ip, a Calm app on it and a catalog module run, and released them all"
