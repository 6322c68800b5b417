package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/admission"
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/secrets"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Gateway is a configured gateway with its dependencies open.
type Gateway struct {
	cfg     Config
	vault   *vault.Session
	store   *store.Store
	audit   *audit.AuditChain
	policy  *policy.Evaluator
	ops     *operations.Book
	limiter *keyedLimiter // per caller identity, after authentication
	guard   *addressGuard // per client address, before Vault is asked
	healthy healthMemo    // the last health check, shared for healthEvery
	metrics *gatewayMetrics
	orch    *orchestrator.Orchestrator
	gate    *admission.Gate   // boundary ②: every caller-facing action
	modules *modulerun.Config // module runs; nil without a catalog
	// ownWorkDir is the module runs' working directory this gateway made
	// (removed at Close).
	ownWorkDir string

	tokenCache *tokenCache
}

// New logs in to Vault, opens the store and the audit chain and loads the
// policy bundles. It fails if any of them is unavailable: a gateway that
// cannot verify, decide or record does not start.
func New(ctx context.Context, cfg Config) (g *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	sess, err := vault.Login(ctx, cfg.VaultAddr, cfg.VaultLogin, cfg.Logger)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = sess.Close(context.Background()) })

	storeCfg := store.Config{Driver: store.DriverSQLite, DataDir: cfg.DataDir}
	if cfg.PostgresDSNFile != "" {
		dsn, err := os.ReadFile(cfg.PostgresDSNFile)
		if err != nil {
			return nil, fmt.Errorf("postgres DSN file: %w", err)
		}
		storeCfg = store.Config{Driver: store.DriverPostgres, DSN: strings.TrimSpace(string(dsn))}
	}
	st, err := store.Open(ctx, storeCfg)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = st.Close() })

	keys := audit.DefaultKeyPaths(cfg.DataDir)
	if cfg.AuditSigningKeyFile != "" {
		keys.Signing = cfg.AuditSigningKeyFile
	}
	if cfg.AuditHMACKeyFile != "" {
		keys.HMAC = cfg.AuditHMACKeyFile
	}
	if cfg.GenerateAuditKeys {
		if err := audit.EnsureKeys(keys); err != nil {
			return nil, err
		}
	}
	auditOpts, err := audit.LoadOptions(keys)
	if err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	auditOpts.CheckpointEvery = cfg.AuditCheckpointEvery
	chain, err := audit.New(ctx, st, auditOpts)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = chain.Close() })

	var vkeys []policy.VerificationKey
	for _, f := range cfg.BundleVerificationKeyFiles {
		k, err := loadBundleKey(f)
		if err != nil {
			return nil, fmt.Errorf("bundle verification key: %w", err)
		}
		vkeys = append(vkeys, k)
	}
	eval, err := policy.Load(ctx, policy.Options{Dir: cfg.BundleDir, VerificationKeys: vkeys, Logger: cfg.Logger.Named("policy")})
	if err != nil {
		return nil, err
	}

	g = &Gateway{cfg: cfg, vault: sess, store: st, audit: chain, policy: eval, ops: operations.NewBook(st), metrics: newGatewayMetrics(),
		tokenCache: newTokenCache(cfg.TokenCacheTTL)}
	if n, err := g.ops.BackfillNaturalKeys(ctx); err != nil {
		cfg.Logger.Warn("natural keys of resources stored before schema 5 not all set; those are not adopted by a repeated create", "error", err)
	} else if n > 0 {
		cfg.Logger.Info("natural keys set on resources stored before schema 5", "count", n)
	}
	if g.modules, err = g.moduleRuns(); err != nil {
		return nil, err
	}
	if g.modules != nil { // secret inputs' fingerprints are keyed, never a bare hash
		g.modules.FingerprintKey = auditOpts.HMACKey
	}
	g.limiter = newKeyedLimiter(g.cfg.RateLimit, g.cfg.RateBurst)
	g.guard = newAddressGuard(g.cfg.UnauthenticatedRate, g.cfg.UnauthenticatedBurst, g.cfg.FloodWindow)
	sealKey, err := secrets.DeriveKey(auditOpts.HMACKey)
	if err != nil {
		return nil, err
	}
	courier, err := secrets.New(secrets.Config{Vault: sess, Book: g.ops, Audit: chain, Key: sealKey,
		StepTimeout: func(kind string) time.Duration { return g.orch.StepTimeout(kind) }, Logger: cfg.Logger.Named("secrets")})
	if err != nil {
		return nil, err
	}
	g.orch, err = orchestrator.New(ctx, orchestrator.Config{
		Store: st, Book: g.ops, Vault: sess, Audit: chain, Executors: g.executors(), Settings: kindSettings(cfg), Secrets: courier,
		WorkersPerKind: cfg.WorkersPerKind, OperationTimeout: cfg.OperationTimeout,
		RescueAfter: cfg.OperationRescueAfter, RevokeTimeout: cfg.RevokeTimeout, Logger: cfg.Logger.Named("orchestrator"),
	})
	if err != nil {
		return nil, err
	}
	g.gate = &admission.Gate{Policy: eval, Book: g.ops, Seal: chain.SealSecret, Executes: g.orch.Handles,
		Queue: g.orch, Secrets: courier, Logger: cfg.Logger.Named("admission"), Checks: g.kindChecks()}
	return g, nil
}

// kindChecks are the admission checks only this gateway's configuration
// can make: a module run against the operator's catalog (its inputs'
// names, types, secrecy and the module's own validations), so the dry run
// refuses what the run would.
func (g *Gateway) kindChecks() map[string]admission.KindCheck {
	checks := map[string]admission.KindCheck{}
	if g.modules != nil {
		catalog := g.modules.Catalog
		checks[api.KindModuleRun] = func(_ context.Context, action string, req api.Validator, target *operations.Resource, prefix string, approval *api.Approval) error {
			var stored []byte
			if target != nil {
				stored = target.Spec
			}
			fs, err := catalog.CheckModuleRun(action, req, stored)
			if err != nil {
				return err
			}
			if err := api.InvalidFields(prefix, fs); err != nil {
				return err
			}
			if approval.Module, err = catalog.Approve(req, stored); err != nil {
				return api.Invalid(prefix, "%v; the operator's catalog must hold it for the run to be changed or destroyed", err)
			}
			return nil
		}
	}
	return checks
}

// kindSettings are the kinds table's operational limits, with what the
// operator configured (workers_per_kind, operation_timeout) applied to every kind.
func kindSettings(cfg Config) map[string]api.Settings {
	out := map[string]api.Settings{}
	for _, k := range api.KindTable {
		s := k.Settings
		if cfg.WorkersPerKind > 0 {
			s.Workers = cfg.WorkersPerKind
		}
		if cfg.OperationTimeout > 0 {
			s.StepTimeout = cfg.OperationTimeout
		}
		out[k.Name] = s
	}
	return out
}

// Start runs what works in the background: the Vault session renewal, the
// policy poll and the orchestrator (after crash recovery). Serve calls it.
func (g *Gateway) Start(ctx context.Context) error {
	go g.vault.Run(ctx)
	go g.policy.Watch(ctx, g.cfg.BundleReloadInterval)
	if err := g.orch.Start(ctx); err != nil {
		return fmt.Errorf("orchestrator: %w", err)
	}
	go g.resumeStalled(ctx)
	go runEvery(ctx, min(10*time.Second, g.cfg.FloodWindow/2), func() { g.recordFloods(ctx, false) })
	return nil
}

// resumeStalled re-enqueues unfinished operations now and then, so one
// whose enqueue failed (the queue was briefly unavailable) still runs, and
// sweeps sub-tokens whose revocation failed (Vault was unavailable).
// The queue's uniqueness makes this a no-op for operations already queued.
func (g *Gateway) resumeStalled(ctx context.Context) {
	every := g.cfg.SweepInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	runEvery(ctx, every, func() {
		g.orch.Sweep(ctx)
		ops, err := g.ops.Unfinished(ctx)
		if err != nil {
			g.cfg.Logger.Warn("resume stalled operations", "error", err)
			return
		}
		for _, w := range ops {
			if err := g.orch.Enqueue(ctx, w.Operation); err != nil {
				g.cfg.Logger.Warn("re-enqueue operation", "operation_id", w.ID, "error", err)
			}
		}
	})
}

// runEvery calls f every d until ctx ends.
func runEvery(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// ReloadPolicy re-reads the bundle directory (SIGHUP).
func (g *Gateway) ReloadPolicy(ctx context.Context) error { return g.policy.Reload(ctx) }

// Handler is the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler { return g.router() }

// MetricsHandler serves Prometheus metrics; it is not part of the API (see
// Config.MetricsAddr).
func (g *Gateway) MetricsHandler() http.Handler { return withSecurityHeaders(g.metrics.handler()) }

// Serve serves the API on ln until ctx ends, keeping the Vault session
// alive. Metrics are not on it: serve them with ServeMetrics on a listener
// of their own (sas-server does, at Config.MetricsAddr).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		return err
	}
	return g.serveHTTP(ctx, ln, g.Handler(), &http.Server{
		ReadTimeout: g.cfg.ReadTimeout, WriteTimeout: g.cfg.WriteTimeout, IdleTimeout: g.cfg.IdleTimeout})
}

// ServeMetrics serves Prometheus metrics on ln until ctx ends, with the
// API's TLS settings. They name bundles and routes: keep ln where only
// the monitoring system reaches it.
func (g *Gateway) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return g.serveHTTP(ctx, ln, g.MetricsHandler(), &http.Server{ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second})
}

// serveHTTP serves h on ln (TLS when configured) until ctx ends, then
// drains: in-flight requests finish (their audit records are written
// before they act).
func (g *Gateway) serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, srv *http.Server) error {
	srv.Handler = h
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.ErrorLog = g.cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	errc := make(chan error, 1)
	go func() {
		if g.cfg.TLSCertFile != "" {
			errc <- srv.ServeTLS(ln, g.cfg.TLSCertFile, g.cfg.TLSKeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
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

// Close signs a final audit checkpoint (so truncation after shutdown is
// detectable), revokes the gateway's Vault token and closes the store.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if err := g.orch.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("orchestrator stop: %w", err))
	}
	g.recordFloods(ctx, true)
	if _, err := g.audit.Checkpoint(ctx); err != nil {
		errs = append(errs, fmt.Errorf("final audit checkpoint: %w", err))
	}
	errs = append(errs, g.audit.Close(), g.vault.Close(ctx), g.store.Close())
	if g.ownWorkDir != "" {
		errs = append(errs, os.RemoveAll(g.ownWorkDir))
	}
	return errors.Join(errs...)
}

// Store is the gateway's database (for operators' tools and tests).
func (g *Gateway) Store() *store.Store { return g.store }

// DataDir is the gateway's data directory (audit keys; the SQLite store).
func (g *Gateway) DataDir() string { return g.cfg.DataDir }

// AuditChain is the gateway's audit chain (for operators' tools and tests).
func (g *Gateway) AuditChain() *audit.AuditChain { return g.audit }

// OperationFor reads an operation regardless of owner (operators' tools and tests).
func (g *Gateway) OperationFor(id string) (api.Operation, error) {
	w, err := g.ops.Load(context.Background(), id)
	return w.Operation, err
}
