package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

func TestOpenMigratesBothDrivers(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			cfg := storetest.Config(t, driver)
			st, err := store.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if st.Driver != driver {
				t.Errorf("Driver = %q, want %q", st.Driver, driver)
			}
			if err := st.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			var v int
			if err := st.DB.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != store.SchemaVersion() {
				t.Errorf("schema version %d, want %d", v, store.SchemaVersion())
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopening applies nothing twice.
			st, err = store.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer st.Close()
			var n int
			if err := st.DB.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != store.SchemaVersion() {
				t.Errorf("%d migration rows, want %d", n, store.SchemaVersion())
			}
			if strings.Contains(st.String(), "password") {
				t.Errorf("String() leaks: %s", st)
			}
		})
	}
}

// TestConcurrentOpenMigratesOnce: replicas starting together against one
// database must not race the migration runner.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			cfg := storetest.Config(t, driver)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() {
					st, err := store.Open(context.Background(), cfg)
					if err == nil {
						st.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDollarPlaceholders proves the shared SQL's $n placeholders bind
// positionally on both engines, including out of order and repeated.
func TestDollarPlaceholders(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			st := storetest.Open(t, driver)
			var a, b, c string
			if err := st.DB.QueryRow(`SELECT CAST($2 AS TEXT), CAST($1 AS TEXT), CAST($2 AS TEXT)`, "one", "two").Scan(&a, &b, &c); err != nil {
				t.Fatal(err)
			}
			if a != "two" || b != "one" || c != "two" {
				t.Errorf("got %q %q %q, want two one two", a, b, c)
			}
		})
	}
}

func TestWriteTxRollsBackOnError(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.Open(t, driver)
			if _, err := st.DB.ExecContext(ctx, `CREATE TABLE t (v INTEGER NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("boom")
			err := st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
				if _, err := q.ExecContext(ctx, `INSERT INTO t (v) VALUES ($1)`, 1); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("WriteTx = %v, want boom", err)
			}
			if err := st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
				_, err := q.ExecContext(ctx, `INSERT INTO t (v) VALUES ($1)`, 2)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var sum int
			if err := st.DB.QueryRowContext(ctx, `SELECT COALESCE(SUM(v), 0) FROM t`).Scan(&sum); err != nil {
				t.Fatal(err)
			}
			if sum != 2 {
				t.Errorf("sum = %d, want 2 (the failed transaction must not commit)", sum)
			}
		})
	}
}

// TestWriteTxCancelledContextLeavesPoolClean: a transaction whose context
// ends mid-way must not leave a pooled SQLite connection inside BEGIN.
func TestWriteTxCancelledContextLeavesPoolClean(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			st := storetest.Open(t, driver)
			ctx, cancel := context.WithCancel(context.Background())
			err := st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
				cancel()
				return ctx.Err()
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("WriteTx = %v, want context.Canceled", err)
			}
			if err := st.WriteTx(context.Background(), func(ctx context.Context, q store.Querier) error {
				_, err := q.ExecContext(ctx, `UPDATE audit_chain_head SET seq = seq WHERE id = 1`)
				return err
			}); err != nil {
				t.Fatalf("next WriteTx: %v", err)
			}
		})
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]store.Config{
		"unknown driver":       {Driver: "mysql", DSN: "x"},
		"sqlite without dir":   {Driver: store.DriverSQLite},
		"sqlite with a dsn":    {DataDir: t.TempDir(), DSN: storetest.PostgresDSN()},
		"postgres without dsn": {Driver: store.DriverPostgres},
		"postgres unreachable": {Driver: store.DriverPostgres, DSN: "postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := store.Open(ctx, cfg)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestOpenUpgradesFirstReleaseStore: a data dir written by the first
// release (only schema version 1) is brought up to date.
func TestOpenUpgradesFirstReleaseStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, '2026-01-01T00:00:00Z')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var v int
	if err := st.DB.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != store.SchemaVersion() {
		t.Errorf("version %d (%v), want %d", v, err, store.SchemaVersion())
	}
}
