package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func get(t *testing.T, url string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func vaultToken(tok string) http.Header { return http.Header{api.HeaderVaultToken: {tok}} }

func TestIdentityReturnsTheVaultEntity(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "alice", Bundles: []string{"fedramp_sbx_default", "fedramp_dev_default"}})

	for name, h := range map[string]http.Header{
		"X-Vault-Token":        vaultToken(tok),
		"Authorization Bearer": {"Authorization": {"Bearer " + tok}},
	} {
		t.Run(name, func(t *testing.T) {
			status, hdr, body := get(t, gw.URL+"/v1/identity", h)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if hdr.Get(api.HeaderRequestID) == "" {
				t.Error("no X-Request-Id on the response")
			}
			var id api.Identity
			if err := json.Unmarshal(body, &id); err != nil {
				t.Fatal(err)
			}
			if id.Owner != "alice" || id.EntityName != "alice" || id.EntityID == "" {
				t.Errorf("owner = %q, entity = %q/%q; want the Vault entity alice", id.Owner, id.EntityID, id.EntityName)
			}
			if strings.Join(id.Bundles, ",") != "fedramp_dev_default,fedramp_sbx_default" {
				t.Errorf("bundles = %v", id.Bundles)
			}
			if id.Token.TTLSeconds <= 0 || id.Token.TTLSeconds > 3600 || id.Token.ExpireTime.IsZero() {
				t.Errorf("token info = %+v; want an expiry within the hour", id.Token)
			}
			if strings.Contains(string(body), tok) {
				t.Error("response contains the caller's token")
			}
		})
	}
}

// Every kind of token the threat model calls a static or invalid
// credential is refused with a problem that says why and what to do.
func TestRefusedTokens(t *testing.T) {
	gw := env.StartGateway(t)
	sbx := "fedramp_sbx_default"
	cases := []struct {
		name       string
		header     http.Header
		wantStatus int
		wantType   string
		wantDetail string
	}{
		{"missing", http.Header{}, 401, api.ProblemTokenMissing, "carries no Vault token"},
		{"malformed", vaultToken("hvs.abc\"def"), 401, api.ProblemTokenMalformed, "character"},
		{"too long", vaultToken(strings.Repeat("a", 600)), 401, api.ProblemTokenMalformed, "bytes long"},
		{"unknown", vaultToken("hvs.CAES-does-not-exist"), 401, api.ProblemTokenInvalid, "does not know this token"},
		{"root", vaultToken(env.RootToken()), 403, api.ProblemTokenRoot, "root token"},
		{"768h", vaultToken(env.OverlongToken(t, sbx)), 403, api.ProblemTokenTooLong, "ceiling of 8h0m0s"},
		{"expired", vaultToken(env.ExpiredToken(t, sbx)), 401, api.ProblemTokenInvalid, "expired"},
		{"revoked", vaultToken(env.RevokedToken(t, sbx)), 401, api.ProblemTokenInvalid, "revoked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := get(t, gw.URL+"/v1/identity", tc.header)
			if status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", status, tc.wantStatus, body)
			}
			if ct := hdr.Get("Content-Type"); ct != api.ProblemContentType {
				t.Errorf("content type = %q", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != tc.wantType || !strings.Contains(p.Detail, tc.wantDetail) {
				t.Errorf("problem = %+v; want type %s and detail containing %q", p, tc.wantType, tc.wantDetail)
			}
			if p.RequestID == "" || p.RequestID != hdr.Get(api.HeaderRequestID) {
				t.Errorf("problem request_id %q does not match header %q", p.RequestID, hdr.Get(api.HeaderRequestID))
			}
			if tok := tc.header.Get(api.HeaderVaultToken); tok != "" && strings.Contains(string(body), tok) {
				t.Error("problem echoes the token")
			}
		})
	}
}

// A lower ceiling is honoured: a one-hour token is refused under a 30m ceiling.
func TestTTLCeilingIsConfigurable(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.MaxCallerTTL = 30 * time.Minute })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "bob", Bundles: []string{"fedramp_dev_default"}, TTL: time.Hour})
	status, _, body := get(t, gw.URL+"/v1/identity", vaultToken(tok))
	if status != http.StatusForbidden || !strings.Contains(string(body), api.ProblemTokenTooLong) {
		t.Fatalf("status %d: %s", status, body)
	}
}

func TestHealth(t *testing.T) {
	gw := env.StartGateway(t)
	status, _, body := get(t, gw.URL+"/v1/sys/health", nil)
	var h api.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || h.Status != "ok" || h.Checks["vault"] != "ok" || h.Checks["store"] != "ok" {
		t.Fatalf("status %d, health %+v", status, h)
	}
}

func TestUnknownRouteIsAProblem(t *testing.T) {
	gw := env.StartGateway(t)
	status, hdr, body := get(t, gw.URL+"/v1/nope", nil)
	if status != http.StatusNotFound || hdr.Get("Content-Type") != api.ProblemContentType || !strings.Contains(string(body), api.ProblemNotFound) {
		t.Fatalf("status %d: %s", status, body)
	}
}

// With Vault gone the gateway cannot verify anyone, so it refuses everyone
// (503) rather than trusting a token it cannot check.
func TestFailsClosedWhenVaultIsDown(t *testing.T) {
	own, err := testenv.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	gw := own.StartGateway(t)
	tok := own.Caller(t, vaultsetup.CallerSpec{Entity: "carol", Bundles: []string{"fedramp_sbx_default"}})
	if status, _, body := get(t, gw.URL+"/v1/identity", vaultToken(tok)); status != http.StatusOK {
		t.Fatalf("before Vault stops: %d %s", status, body)
	}
	if err := own.Close(); err != nil {
		t.Fatal(err)
	}
	status, _, body := get(t, gw.URL+"/v1/identity", vaultToken(tok))
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), api.ProblemUnavailable) {
		t.Fatalf("identity with Vault down: %d %s; want 503 %s", status, body, api.ProblemUnavailable)
	}
	if status, _, body := get(t, gw.URL+"/v1/sys/health", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("health with Vault down: %d %s", status, body)
	}
}
