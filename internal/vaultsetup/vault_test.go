package vaultsetup_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

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

// Applying the plan twice is harmless (operators re-run it on upgrades).
func TestPlanIsIdempotent(t *testing.T) {
	if err := vaultsetup.Apply(context.Background(), env.Admin(), vaultsetup.Plan(vaultsetup.DefaultOptions())); err != nil {
		t.Fatal(err)
	}
}
