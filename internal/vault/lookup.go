package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// ErrTokenNotFound means Vault does not know the token: it never existed,
// expired (Vault deletes expired tokens) or was revoked. Vault cannot tell
// these apart after the fact, so neither can we.
var ErrTokenNotFound = errors.New("vault does not know this token")

// UnavailableError means Vault could not answer; the gateway fails closed.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "vault unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// TokenLookup is what Vault says about a caller token.
type TokenLookup struct {
	Accessor         string
	DisplayName      string
	EntityID         string
	EntityName       string
	Policies         []string
	IdentityPolicies []string
	Type             string // service or batch
	ExpireTime       time.Time
	TTL              time.Duration
	ExplicitMaxTTL   time.Duration // 0: none, renewable up to the mount's maximum
	Period           time.Duration // > 0: periodic, renewable forever
	NumUses          int           // 0: unlimited; > 0: use-limited; < 0: revocation pending
	BoundCIDRs       []string      // Vault accepts the token only from these addresses
	Renewable        bool
	Orphan           bool
	Path             string
	Meta             map[string]string

	// What Vault says about the token's entity (read on every lookup: a
	// disabled or deleted entity must stop its tokens on their next use,
	// as Vault itself does).
	EntityMissing  bool // the token names an entity Vault no longer has
	EntityDisabled bool
}

// HasExpiry reports whether Vault will ever expire the token.
func (l TokenLookup) HasExpiry() bool { return !l.ExpireTime.IsZero() && l.TTL > 0 }

// LookupCaller asks Vault about token using the gateway's own session
// (auth/token/lookup) and resolves the token's entity name.
func (s *Session) LookupCaller(ctx context.Context, token string) (TokenLookup, error) {
	c := s.Client()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/token/lookup", map[string]any{"token": token})
	if err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == 403 && containsAny(re.Errors, "bad token", "invalid token") {
			return TokenLookup{}, ErrTokenNotFound
		}
		// Anything else — including a 403 for the gateway's own token — is
		// the gateway's problem, not the caller's: fail closed.
		return TokenLookup{}, &UnavailableError{Err: err}
	}
	if sec == nil || sec.Data == nil {
		return TokenLookup{}, ErrTokenNotFound
	}
	l, err := parseLookup(sec.Data)
	if err != nil {
		return TokenLookup{}, &UnavailableError{Err: err}
	}
	if role := str(sec.Data["role"]); role != "" && l.ExplicitMaxTTL == 0 {
		if l.ExplicitMaxTTL, err = s.roleExplicitMaxTTL(ctx, c, role); err != nil {
			return TokenLookup{}, err
		}
	}
	if l.EntityID != "" {
		if err := s.readEntity(ctx, c, &l); err != nil {
			return TokenLookup{}, err
		}
	}
	return l, nil
}

// roleExplicitMaxTTL is the explicit max TTL of a token role. Vault
// enforces it when a token made through the role is renewed, yet shows it
// only on the role, not in the token's lookup.
func (s *Session) roleExplicitMaxTTL(ctx context.Context, c *vaultapi.Client, role string) (time.Duration, error) {
	sec, err := c.Logical().ReadWithContext(ctx, "auth/token/roles/"+role)
	if err != nil {
		return 0, &UnavailableError{Err: fmt.Errorf("read token role %s: %w", role, err)}
	}
	if sec == nil || sec.Data == nil {
		return 0, nil // the role is gone: nothing bounds the token's renewals
	}
	for _, name := range []string{"token_explicit_max_ttl", "explicit_max_ttl"} {
		n, err := number(sec.Data, name)
		if err != nil {
			return 0, &UnavailableError{Err: fmt.Errorf("token role %s: %w", role, err)}
		}
		if n > 0 {
			return time.Duration(n) * time.Second, nil
		}
	}
	return 0, nil
}

// readEntity fills the entity's name and whether it is disabled or gone.
// It is not cached: Vault refuses a disabled entity's tokens at once, and
// so must the gateway.
func (s *Session) readEntity(ctx context.Context, c *vaultapi.Client, l *TokenLookup) error {
	ent, err := c.Logical().ReadWithContext(ctx, "identity/entity/id/"+l.EntityID)
	if err != nil {
		return &UnavailableError{Err: fmt.Errorf("read entity %s: %w", l.EntityID, err)}
	}
	if ent == nil || ent.Data == nil {
		l.EntityMissing = true
		return nil
	}
	l.EntityName, _ = ent.Data["name"].(string)
	l.EntityDisabled, _ = ent.Data["disabled"].(bool)
	return nil
}

func parseLookup(d map[string]any) (TokenLookup, error) {
	l := TokenLookup{
		Accessor:         str(d["accessor"]),
		DisplayName:      str(d["display_name"]),
		EntityID:         str(d["entity_id"]),
		Policies:         strs(d["policies"]),
		IdentityPolicies: strs(d["identity_policies"]),
		Type:             str(d["type"]),
		Path:             str(d["path"]),
	}
	l.Renewable, _ = d["renewable"].(bool)
	l.Orphan, _ = d["orphan"].(bool)
	for _, f := range []struct {
		name string
		out  *time.Duration
	}{{"ttl", &l.TTL}, {"explicit_max_ttl", &l.ExplicitMaxTTL}, {"period", &l.Period}} {
		n, err := number(d, f.name)
		if err != nil {
			return l, err
		}
		*f.out = time.Duration(n) * time.Second
	}
	uses, err := number(d, "num_uses")
	if err != nil {
		return l, err
	}
	l.NumUses = int(uses)
	l.BoundCIDRs = strs(d["bound_cidrs"])
	if et := str(d["expire_time"]); et != "" {
		t, err := time.Parse(time.RFC3339Nano, et)
		if err != nil {
			return l, fmt.Errorf("token lookup: expire_time %q: %w", et, err)
		}
		l.ExpireTime = t
	}
	if m, ok := d["meta"].(map[string]any); ok {
		l.Meta = make(map[string]string, len(m))
		for k, v := range m {
			l.Meta[k] = str(v)
		}
	}
	return l, nil
}

// number reads an integer member of a lookup (absent: 0).
func number(d map[string]any, name string) (int64, error) {
	switch v := d[name].(type) {
	case nil:
		return 0, nil
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("token lookup: %s %q: %w", name, v, err)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("token lookup: %s is %T, not a number", name, v)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func strs(v any) []string {
	in, _ := v.([]any)
	out := make([]string, 0, len(in))
	for _, x := range in {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func containsAny(msgs []string, subs ...string) bool {
	for _, m := range msgs {
		for _, s := range subs {
			if strings.Contains(m, s) {
				return true
			}
		}
	}
	return false
}
