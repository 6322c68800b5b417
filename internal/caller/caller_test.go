package caller

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// lookup is an admissible token (entity, explicit max TTL 8h) with ttl left.
func lookup(ttl time.Duration, policies ...string) vault.TokenLookup {
	l := vault.TokenLookup{Accessor: "acc", DisplayName: "token-ci", Policies: policies, Type: "service", TTL: ttl,
		ExplicitMaxTTL: 8 * time.Hour, EntityID: "e1", EntityName: "alice"}
	if ttl > 0 {
		l.ExpireTime = time.Now().Add(ttl)
	}
	return l
}

func with(l vault.TokenLookup, change func(*vault.TokenLookup)) vault.TokenLookup {
	change(&l)
	return l
}

var loopback = netip.MustParseAddr("127.0.0.1")

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
		{"expire_time but ttl 0 (expired, not yet reaped)", with(lookup(0, "x"), func(l *vault.TokenLookup) { l.ExpireTime = time.Now() }), api.ProblemTokenInvalid},
		{"revocation pending", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.NumUses = -1 }), api.ProblemTokenInvalid},
		{"768h", lookup(768*time.Hour, "sas-bundle-x"), api.ProblemTokenTooLong},
		{"just over", lookup(8*time.Hour+time.Second, "sas-bundle-x"), api.ProblemTokenTooLong},
		{"batch", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.Type = "batch" }), api.ProblemTokenBatch},
		{"periodic", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.Period = time.Hour }), api.ProblemTokenPeriodic},
		{"no explicit max TTL", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.ExplicitMaxTTL = 0 }), api.ProblemTokenMaxTTL},
		{"explicit max TTL above ceiling", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.ExplicitMaxTTL = 9 * time.Hour }), api.ProblemTokenMaxTTL},
		{"use-limited", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.NumUses = 1 }), api.ProblemTokenUseLimit},
		{"no entity", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.EntityID, l.EntityName = "", "" }), api.ProblemTokenNoEntity},
		{"entity deleted", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.EntityMissing, l.EntityName = true, "" }), api.ProblemEntityMissing},
		{"entity disabled", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.EntityDisabled = true }), api.ProblemEntityDisabled},
		{"bound elsewhere", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.BoundCIDRs = []string{"10.99.0.0/16"} }), api.ProblemTokenCIDR},
		{"bound here", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.BoundCIDRs = []string{"10.99.0.0/16", "127.0.0.1"} }), ""},
		{"bound as a prefix", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.BoundCIDRs = []string{"127.0.0.0/8"} }), ""},
		{"bound to garbage", with(lookup(time.Hour), func(l *vault.TokenLookup) { l.BoundCIDRs = []string{"not-a-cidr"} }), api.ProblemTokenCIDR},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := Admit(tc.lookup, Rules{MaxTTL: DefaultMaxTTL, ClientAddr: loopback})
			switch {
			case tc.wantType == "" && r != nil:
				t.Fatalf("refused: %v", r)
			case tc.wantType != "" && r == nil:
				t.Fatalf("admitted; want %s", tc.wantType)
			case r != nil && r.Type != tc.wantType:
				t.Fatalf("refusal %+v; want %s", r, tc.wantType)
			case r != nil && r.Type != api.ProblemTokenInvalid && r.Status != http.StatusForbidden:
				t.Fatalf("refusal %+v; want 403", r)
			}
		})
	}
}

// A client address seen as IPv4-mapped IPv6 (a dual-stack listener) is the
// IPv4 address it maps.
func TestAdmitBoundCIDRMappedClient(t *testing.T) {
	l := with(lookup(time.Hour), func(l *vault.TokenLookup) { l.BoundCIDRs = []string{"127.0.0.1/32"} })
	if _, r := Admit(l, Rules{MaxTTL: DefaultMaxTTL, ClientAddr: netip.MustParseAddr("::ffff:127.0.0.1")}); r != nil {
		t.Fatal(r)
	}
	if _, r := Admit(l, Rules{MaxTTL: DefaultMaxTTL}); r == nil || r.Type != api.ProblemTokenCIDR || !strings.Contains(r.Detail, "unknown address") {
		t.Fatalf("no client address: %v", r)
	}
}

func TestAdmitOwnerAndBundles(t *testing.T) {
	l := lookup(time.Hour, "sas-bundle-b", "default")
	l.IdentityPolicies = []string{"sas-bundle-a", "sas-bundle-b", "sas-bundle-"}
	c, r := Admit(l, Rules{MaxTTL: DefaultMaxTTL})
	if r != nil {
		t.Fatal(r)
	}
	if c.Owner != "alice" || c.EntityID != "e1" {
		t.Errorf("owner = %q (%s), want the entity", c.Owner, c.EntityID)
	}
	if strings.Join(c.Bundles, ",") != "a,b" {
		t.Errorf("bundles = %v; want identity and token policies merged, deduplicated, empty name dropped", c.Bundles)
	}
	if !c.MayUseBundle("a") || c.MayUseBundle("sas-bundle-a") {
		t.Error("MayUseBundle")
	}
	l.DisplayName = "alice" // a name the caller chose never stands in for the entity
	l.EntityID, l.EntityName = "", ""
	if _, r := Admit(l, Rules{MaxTTL: DefaultMaxTTL}); r == nil || r.Type != api.ProblemTokenNoEntity {
		t.Errorf("token without entity: %v", r)
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
