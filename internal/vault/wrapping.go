package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Wrapped is a single-use response-wrapping token that Vault made for some
// data. Token is a bearer credential for that data until it is used or
// its TTL passes: never log it, never store it in clear. Accessor
// identifies it for revocation and cannot unwrap anything.
type Wrapped struct {
	Token      string
	Accessor   string
	ExpireTime time.Time
}

// ErrWrappingTokenInvalid: Vault does not know the wrapping token (any
// more) — it was used, revoked, or its TTL passed.
var ErrWrappingTokenInvalid = errors.New("the wrapping token is not valid: it was used, revoked or has expired")

// wrapPath is Vault's endpoint that wraps arbitrary data.
const wrapPath = "sys/wrapping/wrap"

// wrappingClient is a fresh client with token; only a write to
// sys/wrapping/wrap asks for a wrapped answer (ttl), whatever VAULT_WRAP_TTL says.
func (s *Session) wrappingClient(token string, ttl time.Duration) (*vaultapi.Client, error) {
	c, err := NewClient(s.addr)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	wrapTTL := strconv.Itoa(max(int(ttl.Round(time.Second)/time.Second), 1)) + "s"
	c.SetWrappingLookupFunc(func(operation, path string) string {
		if ttl > 0 && path == wrapPath && (operation == http.MethodPut || operation == http.MethodPost) {
			return wrapTTL
		}
		return ""
	})
	return c, nil
}

// Wrap asks Vault, with the gateway's own token, to keep data behind a new
// single-use wrapping token that lives for ttl (sys/wrapping/wrap). The
// wrapping token is an orphan: it outlives the gateway token that made it.
func (s *Session) Wrap(ctx context.Context, data map[string]any, ttl time.Duration) (Wrapped, error) {
	if ttl <= 0 {
		return Wrapped{}, errors.New("wrap: a wrapping token needs a TTL")
	}
	c, err := s.wrappingClient(s.Client().Token(), ttl)
	if err != nil {
		return Wrapped{}, err
	}
	secret, err := c.Logical().WriteWithContext(ctx, wrapPath, data)
	if err != nil {
		return Wrapped{}, &UnavailableError{Err: fmt.Errorf("wrap with %s: %w", wrapPath, err)}
	}
	if secret == nil || secret.WrapInfo == nil || secret.WrapInfo.Token == "" || secret.WrapInfo.Accessor == "" {
		return Wrapped{}, &UnavailableError{Err: errors.New("wrap: Vault returned no wrapping token")}
	}
	created := secret.WrapInfo.CreationTime
	if created.IsZero() {
		created = time.Now()
	}
	return Wrapped{Token: secret.WrapInfo.Token, Accessor: secret.WrapInfo.Accessor,
		ExpireTime: created.Add(time.Duration(secret.WrapInfo.TTL) * time.Second)}, nil
}

// Unwrap returns the data behind a wrapping token, presenting the token
// itself (it needs no policy, and no other token is involved). Vault
// consumes the token: a second Unwrap, by anyone, is ErrWrappingTokenInvalid.
func (s *Session) Unwrap(ctx context.Context, token string) (map[string]any, error) {
	c, err := s.wrappingClient(token, 0)
	if err != nil {
		return nil, err
	}
	secret, err := c.Logical().UnwrapWithContext(ctx, "")
	if isInvalidWrappingToken(err) {
		return nil, ErrWrappingTokenInvalid
	}
	if err != nil {
		return nil, &UnavailableError{Err: fmt.Errorf("unwrap: %w", err)}
	}
	if secret == nil {
		return nil, ErrWrappingTokenInvalid
	}
	return secret.Data, nil
}

// RevokeWrapping revokes a wrapping token by its accessor, with the
// gateway's token (auth/token/lookup-accessor, then revoke-accessor),
// retrying briefly. It reports whether Vault still held the token: false
// when it was already used, revoked or expired — which is success too.
// (Vault answers a revocation of an unknown accessor with success, so only
// the lookup tells the two apart.)
func (s *Session) RevokeWrapping(ctx context.Context, accessor string) (wasAlive bool, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		tokens := s.Client().Auth().Token()
		_, err = tokens.LookupAccessorWithContext(ctx, accessor)
		if isInvalidAccessor(err) {
			return wasAlive, nil // alive at an earlier lookup: gone by our revocation, whose answer was lost
		}
		if err == nil {
			wasAlive = true
			if err = tokens.RevokeAccessorWithContext(ctx, accessor); err == nil || isInvalidAccessor(err) {
				return true, nil
			}
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("revoke wrapping token: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return false, &UnavailableError{Err: fmt.Errorf("revoke wrapping token after 5 attempts: %w", err)}
}

// WrappingTokenAlive asks Vault (sys/wrapping/lookup) whether a wrapping
// token can still be unwrapped, without using it.
func (s *Session) WrappingTokenAlive(ctx context.Context, token string) (bool, error) {
	c, err := s.wrappingClient(s.Client().Token(), 0)
	if err != nil {
		return false, err
	}
	_, err = c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": token})
	if err == nil {
		return true, nil
	}
	if isInvalidWrappingToken(err) {
		return false, nil
	}
	return false, err
}

// Vault answers 400 "wrapping token is not valid or does not exist" (or,
// for a token it no longer knows at all, 403 "permission denied" / "bad token").
func isInvalidWrappingToken(err error) bool {
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	msg := strings.Join(re.Errors, " ")
	switch re.StatusCode {
	case http.StatusBadRequest:
		return strings.Contains(msg, "wrapping token is not valid") || strings.Contains(msg, "does not exist")
	case http.StatusForbidden, http.StatusNotFound:
		return strings.Contains(msg, "permission denied") || strings.Contains(msg, "bad token") || strings.Contains(msg, "invalid token")
	}
	return false
}
