package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// MaxTokenCacheTTL caps the positive token-lookup cache.
const MaxTokenCacheTTL = 5 * time.Second

// verifyCaller asks Vault about the token and applies the admission rules.
//
// By default every request goes to Vault, so a token revoked in Vault is
// refused on its very next use. An operator may trade that for throughput
// with token_cache_ttl (≤ 5s): a positive lookup is then reused for that
// long — never past the token's expire_time — so a revoked token keeps
// working for at most that window. Refusals are never cached, and the
// cache holds SHA-256 digests of tokens, not tokens.
func (g *Gateway) verifyCaller(ctx context.Context, token string, from netip.Addr) (caller.Caller, error) {
	lookup, ok := g.tokenCache.get(token, time.Now())
	if !ok {
		var err error
		lookup, err = g.vault.LookupCaller(ctx, token)
		if errors.Is(err, vault.ErrTokenNotFound) {
			return caller.Caller{}, caller.NotFound()
		}
		if err != nil {
			return caller.Caller{}, err
		}
	}
	c, refusal := caller.Admit(lookup, caller.Rules{MaxTTL: g.cfg.MaxCallerTTL, ClientAddr: from})
	if refusal != nil {
		return caller.Caller{}, refusal
	}
	if !ok {
		g.tokenCache.put(token, lookup, time.Now())
	}
	return c, nil
}

// tokenCache is the optional positive-lookup cache; a zero ttl disables it.
type tokenCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]cachedLookup
}

type cachedLookup struct {
	lookup vault.TokenLookup
	until  time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: min(ttl, MaxTokenCacheTTL), m: map[[32]byte]cachedLookup{}}
}

func (c *tokenCache) get(token string, now time.Time) (vault.TokenLookup, bool) {
	if c == nil || c.ttl <= 0 {
		return vault.TokenLookup{}, false
	}
	k := sha256.Sum256([]byte(token))
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return vault.TokenLookup{}, false
	}
	l := e.lookup
	l.TTL = l.ExpireTime.Sub(now).Truncate(time.Second) // remaining TTL only shrinks
	return l, true
}

func (c *tokenCache) put(token string, l vault.TokenLookup, now time.Time) {
	if c == nil || c.ttl <= 0 {
		return
	}
	until := now.Add(c.ttl)
	if l.ExpireTime.Before(until) {
		until = l.ExpireTime
	}
	k := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10000 {
		for key, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, key)
			}
		}
	}
	c.m[k] = cachedLookup{lookup: l, until: until}
}
