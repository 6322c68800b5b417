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
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/server"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

const usage = `usage: sas-server <command> [flags]

commands:
  serve     run the gateway (configuration from SAS_* environment variables; see -h)
  dev       run the local stack: a real Vault dev server and the gateway on loopback
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

func newLogger(level string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "sas", Level: hclog.LevelFromString(level), Output: os.Stderr, JSONFormat: os.Getenv("SAS_LOG_FORMAT") == "json"})
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sas-server serve

Configuration (environment):
  SAS_LISTEN_ADDR           address to listen on (default 127.0.0.1:8200)
  SAS_VAULT_ADDR            Vault address (required)
  SAS_VAULT_ROLE_ID         the gateway's AppRole role_id (required)
  SAS_VAULT_SECRET_ID_FILE  file holding the AppRole secret_id (required; never pass secrets in env or flags)
  SAS_DATA_DIR              directory for the embedded database (required)
  SAS_MAX_CALLER_TTL        refuse caller tokens with more remaining TTL (default 8h)
  SAS_LOG_LEVEL             trace, debug, info, warn, error (default info)
`)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := server.Config{
		ListenAddr: os.Getenv("SAS_LISTEN_ADDR"),
		VaultAddr:  os.Getenv("SAS_VAULT_ADDR"),
		DataDir:    os.Getenv("SAS_DATA_DIR"),
		Logger:     newLogger(envOr("SAS_LOG_LEVEL", "info")),
	}
	cfg.VaultLogin.RoleID = os.Getenv("SAS_VAULT_ROLE_ID")
	if p := os.Getenv("SAS_VAULT_SECRET_ID_FILE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("SAS_VAULT_SECRET_ID_FILE: %w", err)
		}
		cfg.VaultLogin.SecretID = strings.TrimSpace(string(b))
	}
	if v := os.Getenv("SAS_MAX_CALLER_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("SAS_MAX_CALLER_TTL %q: %w", v, err)
		}
		cfg.MaxCallerTTL = d
	}
	return runGateway(ctx, cfg, nil)
}

// runGateway starts the gateway and serves until ctx ends. ready, if set,
// is called with the listening address once it accepts connections.
func runGateway(ctx context.Context, cfg server.Config, ready func(addr string) error) error {
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
	addr := "http://" + ln.Addr().String()
	cfg.Logger.Info("gateway listening", "addr", addr, "vault", cfg.VaultAddr, "data_dir", cfg.DataDir)
	if ready != nil {
		if err := ready(addr); err != nil {
			ln.Close()
			return err
		}
	}
	if err := gw.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
