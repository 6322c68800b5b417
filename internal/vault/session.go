// Package vault is the gateway's side of Vault: its own AppRole session,
// verifying caller tokens, and (later) minting per-operation sub-tokens.
package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// AppRoleLogin is how the gateway authenticates itself to Vault.
type AppRoleLogin struct {
	Mount    string // default "approle"
	RoleID   string
	SecretID string // a secret: never logged
}

// Session is the gateway's own, continuously renewed Vault login. It is
// never the root token and carries only policy sas-gateway.
type Session struct {
	addr   string
	login  AppRoleLogin
	logger hclog.Logger

	mu     sync.RWMutex
	client *vaultapi.Client
	secret *vaultapi.Secret
}

// NewClient returns a Vault client for addr that ignores the VAULT_*
// variables of the surrounding process.
func NewClient(addr string) (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	cfg.Timeout = 10 * time.Second
	// A couple of quick retries ride out a Vault leader change; beyond that
	// the gateway fails closed rather than keep the caller waiting.
	cfg.MaxRetries = 2
	cfg.MinRetryWait = 100 * time.Millisecond
	cfg.MaxRetryWait = 500 * time.Millisecond
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

// Login logs in with AppRole and returns a session; call Run to keep it alive.
func Login(ctx context.Context, addr string, login AppRoleLogin, logger hclog.Logger) (*Session, error) {
	if login.RoleID == "" || login.SecretID == "" {
		return nil, errors.New("vault AppRole login needs a role_id and a secret_id")
	}
	if login.Mount == "" {
		login.Mount = "approle"
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Session{addr: addr, login: login, logger: logger.Named("vault-session")}
	if err := s.relogin(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) relogin(ctx context.Context) error {
	c, err := NewClient(s.addr)
	if err != nil {
		return err
	}
	auth, err := approle.NewAppRoleAuth(s.login.RoleID, &approle.SecretID{FromString: s.login.SecretID},
		approle.WithMountPath(s.login.Mount))
	if err != nil {
		return err
	}
	secret, err := c.Auth().Login(ctx, auth)
	if err != nil {
		return fmt.Errorf("vault AppRole login at %s/%s: %w", s.addr, s.login.Mount, err)
	}
	if secret == nil || secret.Auth == nil {
		return errors.New("vault AppRole login returned no token")
	}
	s.mu.Lock()
	s.client, s.secret = c, secret
	s.mu.Unlock()
	s.logger.Info("logged in to vault", "policies", secret.Auth.Policies, "ttl_seconds", secret.Auth.LeaseDuration)
	return nil
}

// Client returns a client holding the gateway's current token. Do not keep
// it across requests: the token changes on re-login.
func (s *Session) Client() *vaultapi.Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.client
}

// Run renews the token until it reaches its max TTL, then logs in again;
// it returns when ctx ends. A failed re-login is retried with backoff while
// requests fail closed (Vault answers 403 to the expired token).
func (s *Session) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		s.mu.RLock()
		c, secret := s.client, s.secret
		s.mu.RUnlock()
		w, err := c.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			s.logger.Error("cannot watch gateway token", "error", err)
			return
		}
		go w.Start()
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case err := <-w.DoneCh():
			if err != nil {
				s.logger.Warn("gateway token renewal stopped", "error", err)
			}
		}
		w.Stop()
		for ctx.Err() == nil {
			if err := s.relogin(ctx); err != nil {
				s.logger.Error("vault re-login failed", "error", err, "retry_in", backoff.String())
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, time.Minute)
				continue
			}
			backoff = time.Second
			break
		}
	}
}

// Close revokes the session's token: a stopped gateway leaves nothing valid behind.
func (s *Session) Close(ctx context.Context) error {
	c := s.Client()
	if c == nil {
		return nil
	}
	return c.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// Addr is the Vault address the session talks to.
func (s *Session) Addr() string { return s.addr }
