package caller

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

func lookup(ttl time.Duration, policies ...string) vault.TokenLookup {
	l := vault.TokenLookup{Accessor: "acc", DisplayName: "token-ci", Policies: policies, Type: "service", TTL: ttl}
	if ttl > 0 {
		l.ExpireTime = time.Now().Add(ttl)
	}
	return l
}

func TestAdmit(t *testing.T) {
	cases := []struct {
		name     string
		lookup   vault.TokenLookup
		wantType string // "" = admitted
	}{
		{"ephemeral", lookup(time.Hour, "default", "sas-bundle-fedramp_sbx_default"), ""},
		{"at the ceiling", lookup(8*time.Hour, "sas-bundle-x"), ""},
		{"root policy", lookup(time.Hour, "root"), api.ProblemTokenRoot},
		{"root without expiry", lookup(0, "root"), api.ProblemTokenRoot},
		{"no expiry", lookup(0, "sas-bundle-x"), api.ProblemTokenStatic},
		{"expire_time but ttl 0", func() vault.TokenLookup { l := lookup(0, "x"); l.ExpireTime = time.Now(); return l }(), api.ProblemTokenStatic},
		{"768h", lookup(768*time.Hour, "sas-bundle-x"), api.ProblemTokenTooLong},
		{"just over", lookup(8*time.Hour+time.Second, "sas-bundle-x"), api.ProblemTokenTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := Admit(tc.lookup, DefaultMaxTTL)
			switch {
			case tc.wantType == "" && r != nil:
				t.Fatalf("refused: %v", r)
			case tc.wantType != "" && r == nil:
				t.Fatalf("admitted; want %s", tc.wantType)
			case r != nil && (r.Type != tc.wantType || r.Status != http.StatusForbidden):
				t.Fatalf("refusal %+v; want %s/403", r, tc.wantType)
			}
		})
	}
}

func TestAdmitOwnerAndBundles(t *testing.T) {
	l := lookup(time.Hour, "sas-bundle-b", "default")
	l.IdentityPolicies = []string{"sas-bundle-a", "sas-bundle-b", "sas-bundle-"}
	c, r := Admit(l, DefaultMaxTTL)
	if r != nil {
		t.Fatal(r)
	}
	if c.Owner != "token-ci" {
		t.Errorf("owner without entity = %q, want the display name", c.Owner)
	}
	if strings.Join(c.Bundles, ",") != "a,b" {
		t.Errorf("bundles = %v; want identity and token policies merged, deduplicated, empty name dropped", c.Bundles)
	}
	if !c.MayUseBundle("a") || c.MayUseBundle("sas-bundle-a") {
		t.Error("MayUseBundle")
	}
	l.EntityID, l.EntityName = "e1", "alice"
	if c, _ := Admit(l, DefaultMaxTTL); c.Owner != "alice" {
		t.Errorf("owner = %q, want the entity name", c.Owner)
	}
}

func TestCheckFormat(t *testing.T) {
	for tok, want := range map[string]string{
		"":                       api.ProblemTokenMissing,
		"hvs.ok_token-1":         "",
		"s.legacyToken":          "",
		"hvs.x\n":                api.ProblemTokenMalformed,
		"hvs.x y":                api.ProblemTokenMalformed,
		"hvs.é":                  api.ProblemTokenMalformed,
		strings.Repeat("a", 513): api.ProblemTokenMalformed,
	} {
		r := CheckFormat(tok)
		got := ""
		if r != nil {
			got = r.Type
			if strings.Contains(r.Detail, tok) && tok != "" {
				t.Errorf("refusal detail echoes the token: %q", r.Detail)
			}
		}
		if got != want {
			t.Errorf("CheckFormat(%q) = %q, want %q", tok, got, want)
		}
	}
}
