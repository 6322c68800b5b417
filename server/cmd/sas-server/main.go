// Command sas-server runs the sas gateway.
//
//	sas-server serve   the gateway, configured from SAS_* environment variables
//	sas-server dev     the whole local stack (a real Vault dev server + the gateway)
//	sas-server version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/server"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

const usage = `usage: sas-server <command> [flags]

commands:
  serve     run the gateway (configuration from SAS_* environment variables; see -h)
  dev       run the local stack: a real Vault dev server and the gateway on loopback
  audit     verify the audit chain or export it (sas-server audit -h)
  version   print the version
`

func main() {
	server.Version = version
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "dev":
		err = dev(ctx, os.Args[2:])
	case "audit":
		err = runAudit(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "version", "-version", "--version":
		fmt.Println("sas-server", version)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "sas-server: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sas-server %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func newLogger(level string, json bool) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "sas", Level: hclog.LevelFromString(level), Output: os.Stderr, JSONFormat: json})
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "HCL configuration file (see examples/gateway/sas-server.hcl)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sas-server serve [-config FILE]

Settings come from the HCL file, then these environment variables override them:
  SAS_LISTEN_ADDR           address to listen on (default 127.0.0.1:8200; TLS required off loopback)
  SAS_VAULT_ADDR            Vault address
  SAS_VAULT_ROLE_ID         the gateway's AppRole role_id
  SAS_VAULT_SECRET_ID_FILE  file holding the AppRole secret_id (secrets never go in env or flags)
  SAS_DATA_DIR              directory for the embedded database
  SAS_POSTGRES_DSN_FILE     file holding a PostgreSQL DSN (instead of SQLite)
  SAS_BUNDLE_DIR            directory of policy bundles
  SAS_MAX_CALLER_TTL        refuse caller tokens with more remaining TTL (default 8h)
  SAS_LOG_LEVEL             trace, debug, info, warn, error (default info)
`)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := server.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	cfg.Logger = newLogger(envOr(cfg.LogLevel, "info"), cfg.LogJSON || os.Getenv("SAS_LOG_FORMAT") == "json")
	return runGateway(ctx, cfg, nil)
}

// runGateway starts the gateway and serves until ctx ends. ready, if set,
// is called with the listening address once it accepts connections.
// listening is where a started gateway answers.
type listening struct {
	API     string // scheme://host:port
	Metrics string // same, or "" without a metrics listener
}

func runGateway(ctx context.Context, cfg server.Config, ready func(listening) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	gw, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	at := listening{API: scheme + "://" + ln.Addr().String()}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listen on %s: %w", cfg.MetricsAddr, err)
		}
		at.Metrics = scheme + "://" + mln.Addr().String()
		go func() {
			if err := gw.ServeMetrics(ctx, mln); err != nil {
				cfg.Logger.Error("metrics listener stopped", "error", err)
			}
		}()
	}
	cfg.Logger.Info("gateway listening", "addr", at.API, "metrics", at.Metrics, "vault", cfg.VaultAddr, "data_dir", cfg.DataDir)
	if ready != nil {
		if err := ready(at); err != nil {
			ln.Close()
			return err
		}
	}
	// SIGHUP reloads the policy bundles at once (the poll catches up anyway).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := gw.ReloadPolicy(ctx); err != nil {
					cfg.Logger.Error("policy reload on SIGHUP failed", "error", err)
				} else {
					cfg.Logger.Info("policy bundles reloaded on SIGHUP")
				}
			}
		}
	}()
	if err := gw.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func envOr(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
