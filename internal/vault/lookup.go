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
	Renewable        bool
	Orphan           bool
	Path             string
	Meta             map[string]string
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
	if l.EntityID != "" {
		if l.EntityName, err = s.entityName(ctx, c, l.EntityID); err != nil {
			return TokenLookup{}, err
		}
	}
	return l, nil
}

// entityNameTTL bounds how long a renamed entity keeps its old name in
// records. The entity id — the authoritative owner key — is never cached.
const entityNameTTL = 30 * time.Second

type cachedName struct {
	name  string
	until time.Time
}

// entityName resolves an entity id to its name, caching names briefly:
// without the cache every request costs Vault two reads instead of one.
func (s *Session) entityName(ctx context.Context, c *vaultapi.Client, id string) (string, error) {
	if v, ok := s.entityNames.Load(id); ok && time.Now().Before(v.(cachedName).until) {
		return v.(cachedName).name, nil
	}
	ent, err := c.Logical().ReadWithContext(ctx, "identity/entity/id/"+id)
	if err != nil {
		return "", &UnavailableError{Err: fmt.Errorf("read entity %s: %w", id, err)}
	}
	var name string
	if ent != nil {
		name, _ = ent.Data["name"].(string)
	}
	s.entityNames.Store(id, cachedName{name: name, until: time.Now().Add(entityNameTTL)})
	return name, nil
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
	if ttl, ok := d["ttl"].(json.Number); ok {
		n, err := ttl.Int64()
		if err != nil {
			return l, fmt.Errorf("token lookup: ttl %q: %w", ttl, err)
		}
		l.TTL = time.Duration(n) * time.Second
	}
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
