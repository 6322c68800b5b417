package vaultsetup_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func clientWith(t *testing.T, token string) *vaultapi.Client {
	t.Helper()
	c, err := vault.NewClient(env.VaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func status(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// The real Vault answers health and refuses a bad token.
func TestVaultDevServes(t *testing.T) {
	h, err := clientWith(t, "").Sys().Health()
	if err != nil || !h.Initialized || h.Sealed || h.Version != "1.14.0" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	_, err = clientWith(t, "hvs.not-a-token").Auth().Token().LookupSelf()
	if status(err) != http.StatusForbidden {
		t.Fatalf("lookup-self with a bad token: %v; want 403", err)
	}
}

// The plan's policies do what the architecture says: only a sub-token
// minted through sas-exec-<env> reads <env>'s downstream credentials.
func TestOnlySubTokensReadDownstreamCredentials(t *testing.T) {
	ctx := context.Background()
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "sbx/infoblox", map[string]any{"username": "admin", "password": "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Admin().KVv2(vaultsetup.KVMount).Put(ctx, "prod/infoblox", map[string]any{"username": "admin", "password": "prod"}); err != nil {
		t.Fatal(err)
	}

	sess, err := vault.Login(ctx, env.VaultAddr, env.GatewayLogin, nil)
	if err != nil {
		t.Fatal(err)
	}
	gatewayClient := sess.Client()
	caller := clientWith(t, env.Caller(t, vaultsetup.CallerSpec{Entity: "dave", Bundles: []string{"fedramp_sbx_default"}}))

	for name, c := range map[string]*vaultapi.Client{"gateway": gatewayClient, "caller": caller} {
		if _, err := c.KVv2(vaultsetup.KVMount).Get(ctx, "sbx/infoblox"); status(err) != http.StatusForbidden {
			t.Errorf("%s token reading sas/sbx/infoblox: %v; want 403", name, err)
		}
	}
	// The caller cannot mint itself a sub-token either.
	if _, err := caller.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{}, "sas-exec-sbx"); status(err) != http.StatusForbidden {
		t.Errorf("caller minting through sas-exec-sbx: %v; want 403", err)
	}

	// The gateway mints a sub-token for sbx …
	sub, err := gatewayClient.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{Policies: []string{"sas-exec-sbx"}, TTL: "5m"}, "sas-exec-sbx")
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Auth.Orphan {
		t.Error("sub-token is not an orphan")
	}
	subClient := clientWith(t, sub.Auth.ClientToken)
	got, err := subClient.KVv2(vaultsetup.KVMount).Get(ctx, "sbx/infoblox")
	if err != nil || got.Data["password"] != "s3cret" {
		t.Fatalf("sub-token reading its environment's credentials: %v", err)
	}
	// … which cannot read another environment's, nor ask for more policies.
	if _, err := subClient.KVv2(vaultsetup.KVMount).Get(ctx, "prod/infoblox"); status(err) != http.StatusForbidden {
		t.Errorf("sbx sub-token reading prod credentials: %v; want 403", err)
	}
	if _, err := gatewayClient.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{Policies: []string{"sas-exec-prod"}}, "sas-exec-sbx"); err == nil {
		t.Error("sas-exec-sbx minted a token with sas-exec-prod")
	}
	// The gateway revokes it by accessor; then it is gone.
	if err := gatewayClient.Auth().Token().RevokeAccessor(sub.Auth.Accessor); err != nil {
		t.Fatal(err)
	}
	if _, err := subClient.KVv2(vaultsetup.KVMount).Get(ctx, "sbx/infoblox"); status(err) != http.StatusForbidden {
		t.Errorf("revoked sub-token still reads: %v", err)
	}
}

// Upgrading from a release that dropped requests' secret values in KV
// (sas-request-secrets/<env>/<request id>): applying the plan retires the
// drop box with whatever it still holds, and no sub-token can read there.
func TestPlanRetiresTheSecretsDropBox(t *testing.T) {
	ctx := context.Background()
	admin := env.Admin()
	if err := admin.Sys().MountWithContext(ctx, vaultsetup.RequestSecretsMount, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.KVv2(vaultsetup.RequestSecretsMount).Put(ctx, "sbx/req-old", map[string]any{"secret_variables": map[string]any{"ADMIN_PASSWORD": "left-behind"}}); err != nil {
		t.Fatal(err)
	}
	if err := vaultsetup.Apply(ctx, admin, vaultsetup.Plan(vaultsetup.DefaultOptions())); err != nil {
		t.Fatal(err)
	}
	mounts, err := admin.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts[vaultsetup.RequestSecretsMount+"/"]; ok {
		t.Fatalf("the drop box %s is still mounted after the plan", vaultsetup.RequestSecretsMount)
	}
	if got, err := admin.KVv2(vaultsetup.RequestSecretsMount).Get(ctx, "sbx/req-old"); err == nil {
		t.Fatalf("a left-behind secret is still readable: %v", got.Data)
	}

	sess, err := vault.Login(ctx, env.VaultAddr, env.GatewayLogin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	sub, err := sess.MintSubToken(ctx, vault.SubTokenRequest{Environment: "sbx", TTL: time.Minute, OperationID: "op-dropbox"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.RevokeSubToken(ctx, sub.Accessor)
	for _, path := range []string{vaultsetup.RequestSecretsMount + "/data/sbx/req-old", vaultsetup.RequestSecretsMount + "/metadata/sbx/req-old",
		"sys/wrapping/unwrap", "sys/wrapping/wrap"} {
		caps, err := admin.Sys().CapabilitiesWithContext(ctx, sub.Token, path)
		if err != nil || len(caps) != 1 || caps[0] != "deny" {
			t.Errorf("sbx sub-token's capabilities on %s: %v (%v); want deny", path, caps, err)
		}
	}
}

// Applying the plan twice is harmless (operators re-run it on upgrades).
func TestPlanIsIdempotent(t *testing.T) {
	if err := vaultsetup.Apply(context.Background(), env.Admin(), vaultsetup.Plan(vaultsetup.DefaultOptions())); err != nil {
		t.Fatal(err)
	}
}
