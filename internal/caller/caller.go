// Package caller decides whether a Vault token may call the gateway — the
// first trust boundary — and who the caller is. The decisions are plain
// functions of what Vault said, so every refusal is testable without HTTP.
package caller

import (
	"fmt"
	"net/http"
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

// Caller is an admitted caller. Owner is the Vault entity's name (or the
// token's display name when it has no entity) — never anything the client sent.
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

// Admit applies the gateway's token rules to what Vault said about a token:
// no root tokens, no tokens without expiry, no remaining TTL above maxTTL.
func Admit(l vault.TokenLookup, maxTTL time.Duration) (Caller, *Refusal) {
	policies := append(append([]string{}, l.Policies...), l.IdentityPolicies...)
	sort.Strings(policies)
	policies = slices.Compact(policies)

	if slices.Contains(policies, "root") {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenRoot, "Root token refused",
			"this is a Vault root token; static credentials are refused — " + loginHint}
	}
	if !l.HasExpiry() {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenStatic, "Non-expiring token refused",
			"this token never expires (no expire_time), which makes it a static credential; " + loginHint}
	}
	if maxTTL > 0 && l.TTL > maxTTL {
		return Caller{}, &Refusal{http.StatusForbidden, api.ProblemTokenTooLong, "Token lifetime above ceiling",
			fmt.Sprintf("this token has %s left, above this gateway's ceiling of %s for caller tokens; a token that long-lived is static in all but name — %s",
				l.TTL.Round(time.Second), maxTTL, loginHint)}
	}

	var bundles []string
	for _, p := range policies {
		if b, ok := strings.CutPrefix(p, vaultsetup.BundlePolicyPrefix); ok && b != "" {
			bundles = append(bundles, b)
		}
	}
	owner := l.EntityName
	if owner == "" {
		owner = l.DisplayName
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
