// Command vault-dev runs a real, in-memory Vault server built from
// HashiCorp's own code, for the sas test environment and `sas-server dev`.
//
// It is Vault's dev mode without the vault CLI: a core initialised and
// unsealed in memory, served over HTTP on a loopback port chosen at start,
// with the secrets and auth backends sas configures in production compiled
// in (KV v2, AppRole, JWT/OIDC, userpass, file audit). What is mounted and
// which policies exist is not decided here: internal/vaultsetup configures
// this server exactly as the operator docs configure a production Vault.
//
// On start it writes a JSON file (mode 0600) holding its address and root
// token — the root token is never printed — and prints one line to stdout:
//
//	vault-dev: listening on http://127.0.0.1:PORT
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	log "github.com/hashicorp/go-hclog"
	jwtauth "github.com/hashicorp/vault-plugin-auth-jwt"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/audit"
	auditFile "github.com/hashicorp/vault/builtin/audit/file"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/credential/userpass"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
	testing "github.com/mitchellh/go-testing-interface"
)

// Info is what vault-dev reports to whoever started it.
type Info struct {
	Addr      string `json:"addr"`
	RootToken string `json:"root_token"`
	PID       int    `json:"pid"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on (port 0 picks a free one)")
	infoFile := flag.String("info-file", "", "write {addr, root_token, pid} as JSON to this file (mode 0600) once serving")
	logLevel := flag.String("log-level", "warn", "Vault core log level (trace, debug, info, warn, error)")
	flag.Parse()

	if err := run(*listen, *infoFile, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "vault-dev: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, infoFile, logLevel string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// A dev server holds its root token in memory; it never leaves the machine.
		return fmt.Errorf("-listen %q: vault-dev only listens on a loopback address", listen)
	}

	logger := log.New(&log.LoggerOptions{
		Name:   "vault-dev",
		Level:  log.LevelFromString(logLevel),
		Output: os.Stderr,
	})

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	addr := "http://" + ln.Addr().String()

	conf := &vault.CoreConfig{
		Logger: logger,
		LogicalBackends: map[string]logical.Factory{
			"kv": kv.Factory,
		},
		CredentialBackends: map[string]logical.Factory{
			"approle":  approle.Factory,
			"jwt":      jwtauth.Factory,
			"oidc":     jwtauth.Factory,
			"userpass": userpass.Factory,
		},
		AuditBackends: map[string]audit.Factory{
			"file": auditFile.Factory,
		},
		RedirectAddr: addr,
	}
	// RuntimeT turns the test helpers' t.Fatal into a panic, which is what a
	// failed start should do here.
	core, _, rootToken := vault.TestCoreUnsealedWithConfig(&testing.RuntimeT{}, conf)

	srv := &http.Server{
		Handler:           vaulthttp.Handler.Handler(&vault.HandlerProperties{Core: core}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if infoFile != "" {
		if err := writeInfo(infoFile, Info{Addr: addr, RootToken: rootToken, PID: os.Getpid()}); err != nil {
			return err
		}
	}
	fmt.Printf("vault-dev: listening on %s\n", addr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigs:
		logger.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = core.Shutdown()
	if infoFile != "" {
		_ = os.Remove(infoFile)
	}
	return nil
}

// writeInfo writes atomically so a reader polling for the file never sees half of it.
func writeInfo(path string, info Info) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vault-dev-info-*")
	if err != nil {
		return fmt.Errorf("-info-file %q: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
