package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Gateway is a configured gateway with its dependencies open.
type Gateway struct {
	cfg   Config
	vault *vault.Session
	store *store.Store
}

// New logs in to Vault and opens the store. It fails if either is
// unavailable: a gateway that cannot verify or record does not start.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	sess, err := vault.Login(ctx, cfg.VaultAddr, cfg.VaultLogin, cfg.Logger)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, cfg.DataDir)
	if err != nil {
		_ = sess.Close(ctx)
		return nil, err
	}
	return &Gateway{cfg: cfg, vault: sess, store: st}, nil
}

// Handler is the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler { return g.router() }

// Serve serves on ln until ctx ends, keeping the Vault session alive.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go g.vault.Run(ctx)
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelShutdown()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// RunSession keeps the gateway's Vault token alive until ctx ends (Serve
// does this itself; tests that mount Handler on httptest call it).
func (g *Gateway) RunSession(ctx context.Context) { g.vault.Run(ctx) }

// Close revokes the gateway's Vault token and closes the store.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(g.vault.Close(ctx), g.store.Close())
}
