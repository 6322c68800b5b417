// Package testenv gives a test package a real Vault, configured exactly as
// the operator guide configures production, and mints the caller tokens
// tests need: ephemeral ones bound to bundles and carrying an entity, and
// the kinds the gateway must refuse (root, over-long, expired, revoked).
//
// One Vault per test package: start it in TestMain with Main.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// Env is a running, configured Vault.
type Env struct {
	VaultAddr string
	// Gateway is the gateway's AppRole login, as an operator would hand it over.
	GatewayLogin vault.AppRoleLogin
	// Dir is a scratch directory removed on Close.
	Dir string

	server *devvault.Server
	admin  *vaultapi.Client
}

// Start starts vault-dev (./bin/vault-dev, built by `make tools`, or
// $SAS_VAULT_DEV_BIN) and configures it with vaultsetup's production plan.
func Start(ctx context.Context) (*Env, error) {
	bin := os.Getenv("SAS_VAULT_DEV_BIN")
	if bin == "" {
		var err error
		if bin, err = devvault.FindRepoTool("vault-dev"); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "sas-testenv-")
	if err != nil {
		return nil, err
	}
	opts := vaultsetup.DefaultOptions()
	opts.AuditFilePath = filepath.Join(dir, "vault-audit.log")
	srv, creds, err := devvault.StartConfigured(ctx, bin, filepath.Join(dir, "vault"), opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	admin, err := srv.AdminClient()
	if err != nil {
		srv.Stop()
		os.RemoveAll(dir)
		return nil, err
	}
	return &Env{
		VaultAddr:    srv.Addr,
		GatewayLogin: vault.AppRoleLogin{RoleID: creds.RoleID, SecretID: creds.SecretID},
		Dir:          dir,
		server:       srv,
		admin:        admin,
	}, nil
}

// Close stops Vault and removes the scratch directory.
func (e *Env) Close() error {
	err := e.server.Stop()
	os.RemoveAll(e.Dir)
	return err
}

// Main runs a test package with one Vault for all its tests:
//
//	var env *testenv.Env
//	func TestMain(m *testing.M) { testenv.Main(m, &env) }
func Main(m *testing.M, env **Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	e, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop vault: %v\n", err)
	}
	os.Exit(code)
}

// Admin is a root client for set-up and assertions; never hand it to code under test.
func (e *Env) Admin() *vaultapi.Client { return e.admin }

// VaultAuditLog is the path of Vault's own audit log for this environment.
func (e *Env) VaultAuditLog() string { return filepath.Join(e.Dir, "vault-audit.log") }

// Caller mints an ephemeral token (1h unless spec says otherwise) through
// the caller role, bound to spec.Bundles and carrying entity spec.Entity.
func (e *Env) Caller(t testing.TB, spec vaultsetup.CallerSpec) string {
	t.Helper()
	tok, err := vaultsetup.MintCallerToken(context.Background(), e.admin, spec)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return tok
}

// VaultProcess is the Vault server's process: SIGSTOP and SIGCONT on it
// play a Vault outage (every test of the package shares this Vault).
func (e *Env) VaultProcess() *os.Process { return e.server.Process() }

// LiveSubTokens asks Vault, as its operator would, for the sub-tokens still
// alive whose metadata matches (operation_id, request_id, owner, bundle),
// and returns their operations' ids.
func (e *Env) LiveSubTokens(t testing.TB, match func(meta map[string]any) bool) []string {
	t.Helper()
	accs, err := e.admin.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatalf("testenv: list token accessors: %v", err)
	}
	var live []string
	keys, _ := accs.Data["keys"].([]any)
	for _, k := range keys {
		s, err := e.admin.Auth().Token().LookupAccessor(k.(string))
		if err != nil || s == nil {
			continue // gone since it was listed
		}
		if meta, _ := s.Data["meta"].(map[string]any); meta != nil && meta["operation_id"] != nil && match(meta) {
			live = append(live, fmt.Sprint(meta["operation_id"]))
		}
	}
	return live
}

// RootToken is the dev server's root token — the one kind of token Vault
// never expires, and which the gateway must refuse.
func (e *Env) RootToken() string { return e.server.RootToken() }

// OverlongToken mints a token bound to bundles whose TTL (768h, Vault's
// default maximum) is far above the gateway's ceiling: static in all but name.
func (e *Env) OverlongToken(t testing.TB, bundles ...string) string {
	t.Helper()
	return e.directToken(t, bundles, "768h")
}

// ExpiredToken mints a token with a one-second TTL and waits until Vault
// has expired it.
func (e *Env) ExpiredToken(t testing.TB, bundles ...string) string {
	t.Helper()
	tok := e.directToken(t, bundles, "1s")
	e.waitGone(t, tok)
	return tok
}

// RevokedToken mints a valid token and revokes it.
func (e *Env) RevokedToken(t testing.TB, bundles ...string) string {
	t.Helper()
	tok := e.directToken(t, bundles, "1h")
	if err := e.admin.Auth().Token().RevokeTreeWithContext(context.Background(), tok); err != nil {
		t.Fatalf("testenv: revoke token: %v", err)
	}
	e.waitGone(t, tok)
	return tok
}

func (e *Env) directToken(t testing.TB, bundles []string, ttl string) string {
	t.Helper()
	return e.TokenLike(t, vaultapi.TokenCreateRequest{Policies: bundlePolicies(bundles), TTL: ttl, DisplayName: "direct-" + ttl})
}

// TokenLike mints a token with exactly the properties of req (created by
// root through auth/token/create, so without an entity unless a role adds
// one): for the tokens Vault or the gateway must refuse — batch, periodic,
// without explicit max TTL, use-limited, without entity.
func (e *Env) TokenLike(t testing.TB, req vaultapi.TokenCreateRequest) string {
	t.Helper()
	s, err := e.admin.Auth().Token().CreateWithContext(context.Background(), &req)
	if err != nil {
		t.Fatalf("testenv: mint token %+v: %v", req, err)
	}
	return s.Auth.ClientToken
}

// BoundToken mints a caller token (entity, bundles, explicit max TTL, as
// Caller does) that Vault accepts only from cidrs, through a token role
// with token_bound_cidrs — as an operator binds a CI runner's tokens.
func (e *Env) BoundToken(t testing.TB, spec vaultsetup.CallerSpec, cidrs ...string) string {
	t.Helper()
	ctx := context.Background()
	role := "sas-test-bound-" + strings.NewReplacer("/", "-", ".", "-", ":", "-").Replace(strings.Join(cidrs, "_"))
	if _, err := e.admin.Logical().WriteWithContext(ctx, "auth/token/roles/"+role, map[string]any{
		"allowed_policies": append(bundlePolicies(spec.Bundles), vaultsetup.AuditorPolicy), "allowed_entity_aliases": []string{"*"},
		"token_type": "service", "token_explicit_max_ttl": "8h", "token_bound_cidrs": cidrs,
	}); err != nil {
		t.Fatalf("testenv: token role %s: %v", role, err)
	}
	if _, err := vaultsetup.EnsureEntity(ctx, e.admin, spec.Entity); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s, err := e.admin.Auth().Token().CreateWithRoleWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies: bundlePolicies(spec.Bundles), TTL: "1h", EntityAlias: spec.Entity, DisplayName: spec.Entity,
	}, role)
	if err != nil {
		t.Fatalf("testenv: mint bound token: %v", err)
	}
	return s.Auth.ClientToken
}

// SetEntityDisabled disables or re-enables the entity named name, as an
// operator does to lock a person or a pipeline out of Vault.
func (e *Env) SetEntityDisabled(t testing.TB, name string, disabled bool) {
	t.Helper()
	if _, err := e.admin.Logical().WriteWithContext(context.Background(), "identity/entity/name/"+name, map[string]any{"disabled": disabled}); err != nil {
		t.Fatalf("testenv: set entity %s disabled=%v: %v", name, disabled, err)
	}
}

// DeleteEntity deletes the entity named name; its tokens stay in Vault's
// token store (Vault refuses them at use).
func (e *Env) DeleteEntity(t testing.TB, name string) {
	t.Helper()
	if _, err := e.admin.Logical().DeleteWithContext(context.Background(), "identity/entity/name/"+name); err != nil {
		t.Fatalf("testenv: delete entity %s: %v", name, err)
	}
}

// VaultSaysOfToken is Vault's own verdict on tok, used as tok would be
// (lookup-self with tok, from this process): nil when Vault accepts it.
// Tests compare the gateway's refusals against it.
func (e *Env) VaultSaysOfToken(t testing.TB, tok string) error {
	t.Helper()
	c, err := e.admin.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok)
	_, err = c.Auth().Token().LookupSelfWithContext(context.Background())
	return err
}

// waitGone polls until Vault no longer knows tok.
func (e *Env) waitGone(t testing.TB, tok string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.admin.Auth().Token().LookupWithContext(context.Background(), tok); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("testenv: Vault still knows a token that should be gone after 30s")
}

func bundlePolicies(bundles []string) []string {
	out := make([]string, len(bundles))
	for i, b := range bundles {
		out[i] = vaultsetup.BundlePolicyPrefix + b
	}
	return out
}
