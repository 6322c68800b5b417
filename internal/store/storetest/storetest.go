// Package storetest opens isolated stores for tests: a SQLite file in a
// temporary directory, or a PostgreSQL schema of its own (random name,
// dropped when the test ends) on the server SAS_TEST_POSTGRES_DSN names —
// by default the one on this machine. PostgreSQL being unreachable fails
// the test; it never skips (CI starts the server).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// DefaultPostgresDSN is used when SAS_TEST_POSTGRES_DSN is unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Drivers lists the engines every store-backed test runs on.
var Drivers = []string{store.DriverSQLite, store.DriverPostgres}

// PostgresDSN is the server tests use.
func PostgresDSN() string {
	if v := os.Getenv("SAS_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return DefaultPostgresDSN
}

// Config returns a store.Config for driver that is this test's alone:
// a fresh temp dir for SQLite, a fresh schema for PostgreSQL (dropped by
// t.Cleanup).
func Config(tb testing.TB, driver string) store.Config {
	tb.Helper()
	switch driver {
	case store.DriverSQLite:
		return store.Config{Driver: store.DriverSQLite, DataDir: tb.TempDir()}
	case store.DriverPostgres:
		return store.Config{Driver: store.DriverPostgres, DSN: PostgresSchema(tb)}
	}
	tb.Fatalf("storetest: unknown driver %q", driver)
	return store.Config{}
}

// Open opens an isolated, migrated store for driver, closed at cleanup.
func Open(tb testing.TB, driver string) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, Config(tb, driver))
	if err != nil {
		tb.Fatalf("open %s store: %v", driver, err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// PostgresSchema creates a schema with a random name and returns a DSN
// whose search_path is that schema; the schema is dropped at cleanup.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	base := PostgresDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("postgres %s: %v", store.RedactDSN(base), err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		tb.Fatalf("postgres unreachable at %s (set SAS_TEST_POSTGRES_DSN; tests need a running server): %v", store.RedactDSN(base), err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "sas_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath adds search_path=schema to a URL or key=value DSN.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " search_path=" + schema
}
