package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// JWTIssuer stands in for a CI system's or HCP Terraform's OIDC issuer: a
// local ES256 key whose public half the JWT auth mount trusts
// (jwt_validation_pubkeys), as an operator would configure for an issuer
// Vault cannot reach.
type JWTIssuer struct {
	URL string
	key *ecdsa.PrivateKey
}

// JWTAudience is the audience test roles are bound to.
const JWTAudience = "sas-gateway"

var (
	issuerOnce sync.Once
	issuer     *JWTIssuer
	issuerErr  error
)

// JWTIssuer configures the jwt mount once per Vault and returns the issuer.
func (e *Env) JWTIssuer(t testing.TB) *JWTIssuer {
	t.Helper()
	issuerOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			issuerErr = err
			return
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			issuerErr = err
			return
		}
		pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		iss := &JWTIssuer{URL: "https://issuer.sas-test.example", key: key}
		_, issuerErr = e.admin.Logical().WriteWithContext(context.Background(), "auth/jwt/config", map[string]any{
			"jwt_validation_pubkeys": []string{pub}, "bound_issuer": iss.URL,
		})
		issuer = iss
	})
	if issuerErr != nil {
		t.Fatalf("testenv: configure JWT auth: %v", issuerErr)
	}
	return issuer
}

// Sign returns an ES256 JWT with claims, plus iss, aud, iat, nbf and exp
// (valid for ttl; a negative ttl makes an expired token) unless set.
func (i *JWTIssuer) Sign(t testing.TB, claims map[string]any, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	all := map[string]any{"iss": i.URL, "aud": JWTAudience, "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(ttl).Unix()}
	for k, v := range claims {
		all[k] = v
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "sas-test"}) + "." + enc(all)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// JWTRole creates a JWT auth role whose tokens the gateway admits: service
// tokens with an explicit max TTL, carrying an entity (through the alias of
// userClaim) and the bundles' policies; boundClaims restrict who may use it.
func (e *Env) JWTRole(t testing.TB, name, userClaim string, boundClaims map[string]any, bundles ...string) {
	t.Helper()
	data := vaultsetup.JWTRoleData(userClaim, JWTAudience, boundClaims, bundles, time.Hour)
	if _, err := e.admin.Logical().WriteWithContext(context.Background(), "auth/jwt/role/"+name, data); err != nil {
		t.Fatalf("testenv: JWT role %s: %v", name, err)
	}
}

// WorkspaceRole creates the JWT role an operator makes for one HCP
// Terraform workspace (vaultsetup.WorkspaceRoleData), bound to this
// issuer's audience.
func (e *Env) WorkspaceRole(t testing.TB, name, organization, project, workspace string, bundles ...string) {
	t.Helper()
	data := vaultsetup.WorkspaceRoleData(JWTAudience, organization, project, workspace, bundles)
	if _, err := e.admin.Logical().WriteWithContext(context.Background(), "auth/jwt/role/"+name, data); err != nil {
		t.Fatalf("testenv: workspace role %s: %v", name, err)
	}
}

// WorkspaceToken is the workload identity token HCP Terraform gives one
// run phase ("plan" or "apply") of a workspace, with its claims.
func (i *JWTIssuer) WorkspaceToken(t testing.TB, organization, project, workspace, workspaceID, phase string) string {
	t.Helper()
	return i.Sign(t, map[string]any{
		"sub":                         fmt.Sprintf("organization:%s:project:%s:workspace:%s:run_phase:%s", organization, project, workspace, phase),
		"terraform_organization_name": organization, "terraform_project_name": project,
		"terraform_workspace_name": workspace, "terraform_workspace_id": workspaceID,
		"terraform_run_phase": phase, "terraform_run_id": "run-" + phase,
	}, 10*time.Minute)
}

// AppRole creates an AppRole for a CI pipeline bound to bundles (tokens the
// gateway admits) and returns its role id and a fresh secret id.
func (e *Env) AppRole(t testing.TB, name string, bundles ...string) (roleID, secretID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.admin.Logical().WriteWithContext(ctx, "auth/approle/role/"+name, vaultsetup.AppRoleData(bundles, time.Hour)); err != nil {
		t.Fatalf("testenv: AppRole %s: %v", name, err)
	}
	rid, err := e.admin.Logical().ReadWithContext(ctx, "auth/approle/role/"+name+"/role-id")
	if err != nil {
		t.Fatalf("testenv: AppRole %s role id: %v", name, err)
	}
	sid, err := e.admin.Logical().WriteWithContext(ctx, "auth/approle/role/"+name+"/secret-id", nil)
	if err != nil {
		t.Fatalf("testenv: AppRole %s secret id: %v", name, err)
	}
	return fmt.Sprint(rid.Data["role_id"]), fmt.Sprint(sid.Data["secret_id"])
}
