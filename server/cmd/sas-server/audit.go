package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/server"
)

const auditUsage = `usage: sas-server audit <verify|export> [flags]

  verify   check the hash chain and its signed checkpoints; exit 0 when
           intact, non-zero naming the first bad record otherwise
  export   write every record to stdout (--format jsonl)

flags (both):
  --config FILE         the gateway's HCL configuration (its data dir and database)
  --data-dir DIR        the gateway's data dir: the SQLite store is DIR/sas.db
                        (for a 'sas-server dev' data dir, DIR/gateway/sas.db)
                        and the audit keys are in DIR/keys/
  --postgres-dsn-file FILE
                        read PostgreSQL instead of SQLite, DSN from FILE
                        (default $SAS_POSTGRES_DSN_FILE, as for serve)
  --postgres-dsn DSN    the same, DSN inline (default $SAS_POSTGRES_DSN); keep
                        passwords out of it: use PGPASSWORD, ~/.pgpass or the file
verify only:
  --verify-key FILE     Ed25519 public key, PEM "PUBLIC KEY" (default
                        DIR/keys/audit-verify.pem, else the public half of
                        DIR/keys/audit-signing.pem)
  --format text|json    report format (default text)
`

// runAudit is `sas-server audit …`. Key files live in the data dir as
// audit.DefaultKeyPaths describes:
//
//	<data-dir>/keys/audit-signing.pem  Ed25519 private key, PEM PKCS#8 (0600)
//	<data-dir>/keys/audit-verify.pem   Ed25519 public key, PEM PKIX
//	<data-dir>/keys/audit-hmac.key     accessor HMAC key, hex (0600)
//
// `sas-server dev` creates them there (audit.EnsureKeys); verify needs only
// the verify key and export none.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("missing subcommand: verify or export")
	}
	sub := args[0]
	flags := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	dataDir := flags.String("data-dir", os.Getenv("SAS_DATA_DIR"), "the gateway's data dir")
	dsn := flags.String("postgres-dsn", os.Getenv("SAS_POSTGRES_DSN"), "PostgreSQL DSN")
	dsnFile := flags.String("postgres-dsn-file", os.Getenv("SAS_POSTGRES_DSN_FILE"), "file holding the PostgreSQL DSN")
	configPath := flags.String("config", "", "the gateway's HCL configuration: its data dir and database are used unless given here")
	var verifyKey, format *string
	switch sub {
	case "verify":
		verifyKey = flags.String("verify-key", "", "Ed25519 verify key (PEM)")
		format = flags.String("format", "text", "text or json")
	case "export":
		format = flags.String("format", "jsonl", "export format")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("unknown subcommand %q", sub)
	}
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if *configPath != "" {
		cfg, err := server.LoadConfig(*configPath)
		if err != nil {
			return err
		}
		if *dataDir == "" {
			*dataDir = cfg.DataDir
		}
		if *dsnFile == "" && *dsn == "" {
			*dsnFile = cfg.PostgresDSNFile
		}
	}

	if *dsnFile != "" {
		if *dsn != "" {
			return errors.New("give --postgres-dsn or --postgres-dsn-file, not both")
		}
		b, err := os.ReadFile(*dsnFile)
		if err != nil {
			return fmt.Errorf("--postgres-dsn-file: %w", err)
		}
		*dsn = strings.TrimSpace(string(b))
	}

	var key ed25519.PublicKey
	if sub == "verify" {
		if *format != "text" && *format != "json" {
			return fmt.Errorf("--format %q: want text or json", *format)
		}
		var err error
		if key, err = loadAuditVerifyKey(*verifyKey, *dataDir); err != nil {
			return err
		}
	}
	st, err := openAuditStore(ctx, *dataDir, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()

	if sub == "export" {
		return audit.Export(ctx, st, stdout, *format)
	}
	rep, err := audit.Verify(ctx, st, key)
	var broken *audit.ChainError
	if err != nil && !errors.As(err, &broken) {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintln(stdout, rep.Summary())
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		if rep.ProblemsOmitted > 0 {
			fmt.Fprintf(stdout, "  … and %d more\n", rep.ProblemsOmitted)
		}
	}
	return err
}

// openAuditStore opens an existing store: PostgreSQL when dsn is set, else
// the SQLite file in dataDir, which must exist (verify must not bless a
// store it just created).
func openAuditStore(ctx context.Context, dataDir, dsn string) (*store.Store, error) {
	if dsn != "" {
		return store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: dsn})
	}
	if dataDir == "" {
		return nil, errors.New("--data-dir (or --postgres-dsn) is required")
	}
	dir, err := gatewayDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	return store.OpenSQLite(ctx, dir)
}

// gatewayDataDir finds the directory holding sas.db: dataDir itself, or
// dataDir/gateway as `sas-server dev` lays it out.
func gatewayDataDir(dataDir string) (string, error) {
	for _, dir := range []string{dataDir, filepath.Join(dataDir, "gateway")} {
		if _, err := os.Stat(filepath.Join(dir, store.SQLiteFile)); err == nil {
			return dir, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no audit store in %s: %s does not exist", dataDir, filepath.Join(dataDir, store.SQLiteFile))
}

// loadAuditVerifyKey reads --verify-key, else the data dir's verify key,
// else the public half of its signing key.
func loadAuditVerifyKey(path, dataDir string) (ed25519.PublicKey, error) {
	if path != "" {
		return audit.LoadVerifyKey(path)
	}
	if dataDir == "" {
		return nil, errors.New("--verify-key (or --data-dir holding keys/) is required")
	}
	dirs := []string{dataDir}
	if dir, err := gatewayDataDir(dataDir); err == nil && dir != dataDir {
		dirs = append([]string{dir}, dirs...)
	}
	var tried []string
	for _, dir := range dirs {
		p := audit.DefaultKeyPaths(dir)
		for _, f := range []string{p.Verify, p.Signing} {
			if _, err := os.Stat(f); err == nil {
				return audit.LoadVerifyKey(f)
			}
			tried = append(tried, f)
		}
	}
	return nil, fmt.Errorf("no audit verify key: pass --verify-key (tried %v)", tried)
}
