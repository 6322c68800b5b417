// Package caller decides whether a Vault token may call the gateway — the
// first trust boundary — and who the caller is. The decisions are plain
// functions of what Vault said, so every refusal is testable without HTTP.
package caller

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// DefaultMaxTTL is the default ceiling on a caller token's remaining TTL.
// A token that lives longer than a working day is static in all but name.
const DefaultMaxTTL = 8 * time.Hour

// maxTokenLen bounds what we send to Vault; real tokens are far shorter.
const maxTokenLen = 512

// Caller is an admitted caller. EntityID is the owner: resources, operations
// and limits are keyed by it. Owner is the entity's name, for people to read —
// never anything the client sent.
type Caller struct {
	Owner       string
	EntityID    string
	EntityName  string
	DisplayName string
	Policies    []string // token and identity policies, sorted
	Bundles     []string // bundles the token is bound to, sorted
	TokenType   string
	ExpireTime  time.Time
	TTL         time.Duration
	Renewable   bool
	accessor    string
}

// Accessor identifies the token to Vault without being a credential. It is
// still never recorded in clear; audit records hold its HMAC.
func (c Caller) Accessor() string { return c.accessor }

// MayUseBundle reports whether the token carries policy sas-bundle-<name>.
func (c Caller) MayUseBundle(name string) bool { return slices.Contains(c.Bundles, name) }

// Identity is the caller as the API shows it.
func (c Caller) Identity() api.Identity {
	return api.Identity{
		Owner:       c.Owner,
		EntityID:    c.EntityID,
		EntityName:  c.EntityName,
		DisplayName: c.DisplayName,
		Policies:    c.Policies,
		Bundles:     c.Bundles,
		Token: api.TokenInfo{
			Type:       c.TokenType,
			ExpireTime: c.ExpireTime.UTC(),
			TTLSeconds: int64(c.TTL / time.Second),
			Renewable:  c.Renewable,
		},
	}
}

// Refusal is why a token may not call the gateway. Detail tells the caller
// what to do; it never contains the token.
type Refusal struct {
	Status int
	Type   string
	Title  string
	Detail string
}

func (r *Refusal) Error() string { return r.Title + ": " + r.Detail }

// Problem renders the refusal as an API problem.
func (r *Refusal) Problem() api.Problem {
	return api.Problem{Type: r.Type, Title: r.Title, Status: r.Status, Detail: r.Detail}
}

const loginHint = "log in to Vault (OIDC, JWT or AppRole) to get an ephemeral token bound to a sas-bundle-<name> policy, and send it in X-Vault-Token"

// Missing is the refusal for a request without a token.
func Missing() *Refusal {
	return &Refusal{http.StatusUnauthorized, api.ProblemTokenMissing, "Vault token required",
		"the request carries no Vault token (X-Vault-Token or Authorization: Bearer); " + loginHint}
}

// NotFound is the refusal for a token Vault does not know.
func NotFound() *Refusal {
	return &Refusal{http.StatusUnauthorized, api.ProblemTokenInvalid, "Vault token not valid",
		"Vault does not know this token: it expired, was revoked or never existed; " + loginHint}
}

// Ambiguous is the refusal for a request with more than one credential.
func Ambiguous(what string) *Refusal {
	return &Refusal{http.StatusBadRequest, api.ProblemTokenAmbiguous, "Ambiguous credentials",
		what + "; send exactly one Vault token, in X-Vault-Token or in Authorization: Bearer"}
}

// CheckFormat rejects what cannot be a Vault token before Vault sees it.
func CheckFormat(token string) *Refusal {
	if token == "" {
		return Missing()
	}
	if len(token) > maxTokenLen {
		return &Refusal{http.StatusUnauthorized, api.ProblemTokenMalformed, "Malformed Vault token",
			fmt.Sprintf("the token is %d bytes long; Vault tokens are under %d", len(token), maxTokenLen)}
	}
	for i := 0; i < len(token); i++ {
		b := token[i]
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_'
		if !ok {
			return &Refusal{http.StatusUnauthorized, api.ProblemTokenMalformed, "Malformed Vault token",
				fmt.Sprintf("the token contains a character (byte %d) that no Vault token has; check for a stray newline or quote", i)}
		}
	}
	return nil
}

// Rules are what Admit checks a lookup against.
type Rules struct {
	// MaxTTL is the ceiling on a token's remaining TTL and on its explicit
	// max TTL (how long renewals could keep it alive).
	MaxTTL time.Duration
	// ClientAddr is the address the request came from (the TCP peer; no
	// forwarding header is trusted), for tokens bound to CIDRs.
	ClientAddr netip.Addr
}

// Admit applies the gateway's token rules to what Vault said about a token.
// It refuses what Vault itself would refuse at use time (a disabled or
// deleted entity, an address outside the token's bound CIDRs, a token
// pending revocation) and what the threat model calls static: root, no
// expiry, batch (cannot be revoked), periodic or without an explicit max
// TTL (renewable forever or for the mount's maximum), above the ceiling,
// use-limited (the gateway cannot spend Vault's use count, so a one-use
// token would be usable forever), and tokens without an entity (no owner
// but a name the caller chose). Each refusal says what to do instead.
func Admit(l vault.TokenLookup, rules Rules) (Caller, *Refusal) {
	policies := append(append([]string{}, l.Policies...), l.IdentityPolicies...)
	sort.Strings(policies)
	policies = slices.Compact(policies)
	maxTTL := rules.MaxTTL

	if slices.Contains(policies, "root") {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenRoot, "Root token refused",
			"this is a Vault root token; static credentials are refused — " + loginHint}
	}
	if l.NumUses < 0 || (!l.ExpireTime.IsZero() && l.TTL <= 0) {
		return Caller{}, NotFound() // expired or being revoked: Vault refuses it already
	}
	if l.Type == "batch" {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenBatch, "Batch token refused",
			"this is a Vault batch token: it cannot be revoked before it expires and has no accessor for the audit trail; " +
				"use a service token (token_type = \"service\" on your auth role) — " + loginHint}
	}
	if !l.HasExpiry() {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenStatic, "Non-expiring token refused",
			"this token never expires (no expire_time), which makes it a static credential; " + loginHint}
	}
	if l.Period > 0 {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenPeriodic, "Periodic token refused",
			fmt.Sprintf("this token is periodic (period %s): renewed in time it lives forever, a static credential; "+
				"use a token with an explicit max TTL (token_explicit_max_ttl on your auth role) — %s", l.Period, loginHint)}
	}
	if maxTTL > 0 && l.TTL > maxTTL {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenTooLong, "Token lifetime above ceiling",
			fmt.Sprintf("this token has %s left, above this gateway's ceiling of %s for caller tokens; a token that long-lived is static in all but name — %s",
				l.TTL.Round(time.Second), maxTTL, loginHint)}
	}
	if l.ExplicitMaxTTL <= 0 {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenMaxTTL, "Token without explicit max TTL refused",
			fmt.Sprintf("this token has no explicit max TTL, so renewals keep it alive up to the auth mount's maximum; "+
				"set token_explicit_max_ttl (at most %s) on your auth role — %s", maxTTL, loginHint)}
	}
	if maxTTL > 0 && l.ExplicitMaxTTL > maxTTL {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenMaxTTL, "Token max TTL above ceiling",
			fmt.Sprintf("this token's explicit max TTL is %s, above this gateway's ceiling of %s: renewals could keep it alive that long; "+
				"lower token_explicit_max_ttl on your auth role — %s", l.ExplicitMaxTTL, maxTTL, loginHint)}
	}
	if l.NumUses > 0 {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenUseLimit, "Use-limited token refused",
			fmt.Sprintf("this token is limited to %d more uses in Vault, which the gateway cannot count down; "+
				"use a token without num_uses (its TTL bounds it instead) — %s", l.NumUses, loginHint)}
	}
	if l.EntityID == "" {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenNoEntity, "Token without entity refused",
			"this token carries no Vault entity, so it has no owner but a display name anyone can choose; " +
				"log in through an auth method (OIDC, JWT, AppRole) or a token role with an entity alias — " + loginHint}
	}
	if l.EntityMissing {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemEntityMissing, "Entity no longer exists",
			fmt.Sprintf("this token's Vault entity %s has been deleted; ask your Vault operator, then log in again", l.EntityID)}
	}
	if l.EntityDisabled {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemEntityDisabled, "Entity disabled",
			fmt.Sprintf("Vault entity %q (%s) is disabled, and Vault refuses its tokens; ask your Vault operator to re-enable it", l.EntityName, l.EntityID)}
	}
	if len(l.BoundCIDRs) > 0 && !inCIDRs(rules.ClientAddr, l.BoundCIDRs) {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenCIDR, "Token bound to other addresses",
			fmt.Sprintf("this token is bound to %s and Vault accepts it only from there; this request came from %s "+
				"(the gateway trusts no forwarding header) — use the token from a bound address or get one without bound CIDRs",
				strings.Join(l.BoundCIDRs, ", "), addrOrUnknown(rules.ClientAddr))}
	}

	var bundles []string
	for _, p := range policies {
		if b, ok := strings.CutPrefix(p, vaultsetup.BundlePolicyPrefix); ok && b != "" {
			bundles = append(bundles, b)
		}
	}
	owner := l.EntityName
	if owner == "" {
		owner = l.EntityID // the id is the owner; the name is for people
	}
	return Caller{
		Owner:       owner,
		EntityID:    l.EntityID,
		EntityName:  l.EntityName,
		DisplayName: l.DisplayName,
		Policies:    policies,
		Bundles:     bundles,
		TokenType:   l.Type,
		ExpireTime:  l.ExpireTime,
		TTL:         l.TTL,
		Renewable:   l.Renewable,
		accessor:    l.Accessor,
	}, nil
}

// inCIDRs reports whether addr lies in one of Vault's bound CIDRs (each a
// prefix or a single address). Anything unparseable matches nothing.
func inCIDRs(addr netip.Addr, cidrs []string) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func addrOrUnknown(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.Unmap().String()
}
