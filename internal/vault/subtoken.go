package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// SubToken is a per-operation Vault token minted through role
// sas-exec-<env>. Token is a secret: it lives only for the operation and
// never leaves the process; Accessor identifies it for revocation.
type SubToken struct {
	Token       string
	Accessor    string
	Environment string
	ExpireTime  time.Time
}

// SubTokenRequest says what a sub-token is for.
type SubTokenRequest struct {
	Environment string
	TTL         time.Duration // ≤ the operation's deadline; the role caps it too
	OperationID string
	RequestID   string
	Owner       string
	Bundle      string
}

// MintSubToken creates an orphan service token through role
// sas-exec-<env> that can read only that environment's downstream
// credentials, for at most TTL, with metadata tying it to the operation.
func (s *Session) MintSubToken(ctx context.Context, r SubTokenRequest) (SubToken, error) {
	role := vaultsetup.ExecPrefix + r.Environment
	ttl := r.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	secret, err := s.Client().Auth().Token().CreateWithRoleWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies:       []string{role},
		TTL:            ttl.String(),
		ExplicitMaxTTL: ttl.String(),
		Type:           "service",
		Renewable:      new(bool),
		DisplayName:    "sas-op-" + r.OperationID,
		Metadata: map[string]string{
			"operation_id": r.OperationID,
			"request_id":   r.RequestID,
			"owner":        r.Owner,
			"bundle":       r.Bundle,
		},
	}, role)
	if err != nil {
		return SubToken{}, &UnavailableError{Err: fmt.Errorf("mint sub-token through %s: %w", role, err)}
	}
	if secret == nil || secret.Auth == nil {
		return SubToken{}, &UnavailableError{Err: errors.New("mint sub-token: Vault returned no token")}
	}
	return SubToken{
		Token:       secret.Auth.ClientToken,
		Accessor:    secret.Auth.Accessor,
		Environment: r.Environment,
		ExpireTime:  time.Now().Add(time.Duration(secret.Auth.LeaseDuration) * time.Second),
	}, nil
}

// RevokeSubToken revokes a sub-token by accessor, retrying briefly. An
// accessor Vault no longer knows (already revoked or expired) is success.
func (s *Session) RevokeSubToken(ctx context.Context, accessor string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.Client().Auth().Token().RevokeAccessorWithContext(ctx, accessor)
		if err == nil || isInvalidAccessor(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("revoke sub-token: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return fmt.Errorf("revoke sub-token after 5 attempts: %w", err)
}

// SubTokenAlive reports whether Vault still knows the accessor.
func (s *Session) SubTokenAlive(ctx context.Context, accessor string) (bool, error) {
	_, err := s.Client().Auth().Token().LookupAccessorWithContext(ctx, accessor)
	if err == nil {
		return true, nil
	}
	if isInvalidAccessor(err) {
		return false, nil
	}
	return false, err
}

func isInvalidAccessor(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && (re.StatusCode == 400 || re.StatusCode == 403 || re.StatusCode == 404) &&
		strings.Contains(strings.Join(re.Errors, " "), "invalid accessor")
}

// Credentials are a downstream system's login, read from Vault KV with a
// sub-token. Password is a secret: never log it or put it in an error.
type Credentials struct {
	URL      string
	Username string
	Password string
	// CACert is the PEM of the CA that signs the system's TLS certificate,
	// when it is not one the system trusts (a self-signed appliance).
	CACert string
}

// ReadCredentials reads sas/<env>/<system> from KV v2 with the sub-token —
// the only identity allowed to.
func (s *Session) ReadCredentials(ctx context.Context, sub SubToken, system string) (Credentials, error) {
	c, err := NewClient(s.addr)
	if err != nil {
		return Credentials{}, err
	}
	c.SetToken(sub.Token)
	path := sub.Environment + "/" + system
	kv, err := c.KVv2(vaultsetup.KVMount).Get(ctx, path)
	if err != nil {
		return Credentials{}, &UnavailableError{Err: fmt.Errorf("read %s/%s with the operation's sub-token: %w", vaultsetup.KVMount, path, err)}
	}
	str := func(k string) string { v, _ := kv.Data[k].(string); return v }
	creds := Credentials{URL: str("url"), Username: str("username"), Password: str("password"), CACert: str("ca_cert")}
	if creds.Username == "" || creds.Password == "" {
		return Credentials{}, fmt.Errorf("%s/%s holds no username/password", vaultsetup.KVMount, path)
	}
	return creds, nil
}
