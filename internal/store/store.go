// Package store opens the gateway's database: an embedded SQLite file by
// default, PostgreSQL when scaling out. Later layers (audit chain,
// operations, the job queue) keep their tables here.
//
// Both engines run the same migration set (migrations.go) and the same SQL:
// statements use $1, $2, … placeholders, which pgx and modernc.org/sqlite
// both bind positionally. The raw *sql.DB stays exported so a job queue
// (riversqlite / riverpgxv5) can share the database.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver, registered as "pgx"
	_ "modernc.org/sqlite"             // pure-Go SQLite driver, registered as "sqlite"
)

// Drivers a Store can run on.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// SQLiteFile is the database file's name inside the data dir.
const SQLiteFile = "sas.db"

// Config says which database to open.
type Config struct {
	// Driver is DriverSQLite (the default when empty) or DriverPostgres.
	Driver string
	// DataDir holds the SQLite file (<DataDir>/sas.db); required for SQLite.
	DataDir string
	// DSN is the PostgreSQL connection string (URL or key=value form, as
	// pgx accepts it); required for PostgreSQL. Add search_path=<schema> to
	// keep the tables in a schema of their own.
	DSN string
}

// Store is an open, migrated database.
type Store struct {
	DB     *sql.DB
	Driver string // DriverSQLite or DriverPostgres
	Path   string // the SQLite file; empty on PostgreSQL

	desc string
	dsn  string // PostgreSQL only; may hold a password
}

// DSN is the PostgreSQL connection string, for components that need their
// own pool on the same database (the job queue). Never log it.
func (s *Store) DSN() string { return s.dsn }

// Querier is what both *sql.Tx and *sql.Conn offer; WriteTx hands one to
// its function.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Open opens the database cfg names and brings its schema up to date. It
// fails if the database does not answer: callers that cannot record must
// not start.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	switch cfg.Driver {
	case "", DriverSQLite:
		if cfg.DSN != "" {
			return nil, errors.New("store: a DSN is only used with the postgres driver")
		}
		return OpenSQLite(ctx, cfg.DataDir)
	case DriverPostgres:
		return openPostgres(ctx, cfg.DSN)
	default:
		return nil, fmt.Errorf("store: unknown driver %q (want %q or %q)", cfg.Driver, DriverSQLite, DriverPostgres)
	}
}

// OpenSQLite opens (creating if needed) <dataDir>/sas.db in WAL mode with
// synchronous=FULL, so a committed write survives power loss.
func OpenSQLite(ctx context.Context, dataDir string) (*Store, error) {
	if dataDir == "" {
		return nil, errors.New("store: sqlite needs a data dir")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	path := filepath.Join(dataDir, SQLiteFile)
	// busy_timeout: concurrent writers wait instead of failing with SQLITE_BUSY.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err == nil {
		// One connection: SQLite has one writer anyway, and queueing in
		// the pool (which honours contexts) replaces SQLITE_BUSY failures
		// under load — the audit chain, operations and River all write here.
		db.SetMaxOpenConns(1)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{DB: db, Driver: DriverSQLite, Path: path, desc: "sqlite:" + path}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("store: postgres needs a DSN")
	}
	desc := RedactDSN(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", desc, err)
	}
	db.SetMaxIdleConns(16)
	s := &Store{DB: db, Driver: DriverPostgres, desc: desc, dsn: dsn}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", desc, err)
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if err := s.DB.PingContext(ctx); err != nil {
		return err
	}
	return s.migrate(ctx)
}

// String names the database for logs and summaries, without a password.
func (s *Store) String() string { return s.desc }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// WriteTx runs fn in a write transaction that holds the database's write
// lock from its first statement: BEGIN IMMEDIATE on SQLite (one writer at a
// time, across processes), an ordinary transaction on PostgreSQL (take row
// locks with SELECT … FOR UPDATE inside fn). fn's error rolls back; a nil
// return commits, and WriteTx returns only once the commit is durable.
func (s *Store) WriteTx(ctx context.Context, fn func(ctx context.Context, q Querier) error) error {
	if s.Driver == DriverPostgres {
		tx, err := s.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	// COMMIT and ROLLBACK must run even if ctx ended, or the pooled
	// connection would go back with its transaction open.
	end := context.WithoutCancel(ctx)
	if err := fn(ctx, conn); err != nil {
		if _, rerr := conn.ExecContext(end, "ROLLBACK"); rerr != nil {
			discard(conn)
		}
		return err
	}
	if _, err := conn.ExecContext(end, "COMMIT"); err != nil {
		if _, rerr := conn.ExecContext(end, "ROLLBACK"); rerr != nil {
			discard(conn)
		}
		return err
	}
	return nil
}

// discard makes database/sql drop conn instead of pooling it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// RedactDSN describes a PostgreSQL DSN without its password (for logs).
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.RawQuery = ""
		return u.Redacted()
	}
	var kept []string
	for _, f := range strings.Fields(dsn) {
		if k, _, _ := strings.Cut(f, "="); strings.EqualFold(k, "password") {
			continue
		}
		kept = append(kept, f)
	}
	return "postgres: " + strings.Join(kept, " ")
}
