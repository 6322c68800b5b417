package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migrations are applied in order, once each, on SQLite and PostgreSQL
// alike; never edit a released one, append a new one. Each is a list of
// statements. Write SQL both engines accept (TEXT, BIGINT, INTEGER, $n
// placeholders, no engine-specific functions); where a type must differ
// use a token that dialectTokens expands.
//
// Version 1 creates the bookkeeping table itself and is run (idempotently)
// before anything is read.
var migrations = [][]string{
	1: {`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`},

	// 2: the audit chain (internal/audit). Records are keyed by seq, which
	// the appender assigns as head.seq+1 while holding the chain-head row's
	// lock; audit_chain_head has exactly one row (id = 1). Hashes are
	// lowercase hex, signatures base64, times Unix nanoseconds UTC,
	// violations and control_ids JSON arrays.
	2: {
		`CREATE TABLE audit_records (
			seq                 {{INT64_PK}},
			request_id          TEXT    NOT NULL,
			ts_ns               BIGINT  NOT NULL,
			owner_entity_id     TEXT    NOT NULL,
			owner_name          TEXT    NOT NULL,
			token_accessor_hmac TEXT    NOT NULL,
			bundle              TEXT    NOT NULL,
			bundle_revision     TEXT    NOT NULL,
			environment         TEXT    NOT NULL,
			kind                TEXT    NOT NULL,
			action              TEXT    NOT NULL,
			target_id           TEXT    NOT NULL,
			decision            TEXT    NOT NULL,
			violations          TEXT    NOT NULL,
			decision_id         TEXT    NOT NULL,
			outcome             TEXT    NOT NULL,
			status_code         INTEGER NOT NULL,
			client_ip           TEXT    NOT NULL,
			user_agent          TEXT    NOT NULL,
			control_ids         TEXT    NOT NULL,
			prev_hash           TEXT    NOT NULL,
			hash                TEXT    NOT NULL
		)`,
		`CREATE INDEX audit_records_request_id ON audit_records (request_id)`,
		`CREATE INDEX audit_records_owner_entity_id ON audit_records (owner_entity_id, seq)`,
		`CREATE INDEX audit_records_owner_name ON audit_records (owner_name, seq)`,
		`CREATE INDEX audit_records_ts_ns ON audit_records (ts_ns)`,
		`CREATE TABLE audit_chain_head (
			id   INTEGER PRIMARY KEY CHECK (id = 1),
			seq  BIGINT  NOT NULL,
			hash TEXT    NOT NULL
		)`,
		`INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')`,
		`CREATE TABLE audit_checkpoints (
			seq       {{INT64_PK}},
			hash      TEXT   NOT NULL,
			ts_ns     BIGINT NOT NULL,
			key_id    TEXT   NOT NULL,
			signature TEXT   NOT NULL
		)`,
	},

	// 3: provisioning operations (internal/operations). An idempotency key
	// is unique per owner (entity id + name); NULL when none was sent.
	3: {
		`CREATE TABLE operations (
			id              TEXT    PRIMARY KEY,
			kind            TEXT    NOT NULL,
			action          TEXT    NOT NULL,
			target_id       TEXT    NOT NULL,
			state           TEXT    NOT NULL,
			attempts        INTEGER NOT NULL,
			owner_entity_id TEXT    NOT NULL,
			owner_name      TEXT    NOT NULL,
			bundle          TEXT    NOT NULL,
			environment     TEXT    NOT NULL,
			request_id      TEXT    NOT NULL,
			decision_id     TEXT    NOT NULL,
			idempotency_key TEXT,
			request_hash    TEXT    NOT NULL,
			request_json    TEXT    NOT NULL,
			result_json     TEXT    NOT NULL,
			error           TEXT    NOT NULL,
			created_ns      BIGINT  NOT NULL,
			updated_ns      BIGINT  NOT NULL
		)`,
		`CREATE UNIQUE INDEX operations_idempotency ON operations (owner_entity_id, owner_name, idempotency_key)`,
		`CREATE INDEX operations_state ON operations (state, updated_ns)`,
	},

	// 4: the accessor of an operation's live sub-token (revoked at start-up
	// if a crash left it behind), and the resources operations create.
	4: {
		`ALTER TABLE operations ADD COLUMN subtoken_accessor TEXT NOT NULL DEFAULT ''`,
		`CREATE TABLE resources (
			id              TEXT   PRIMARY KEY,
			kind            TEXT   NOT NULL,
			owner_entity_id TEXT   NOT NULL,
			owner_name      TEXT   NOT NULL,
			bundle          TEXT   NOT NULL,
			environment     TEXT   NOT NULL,
			spec_json       TEXT   NOT NULL,
			attributes_json TEXT   NOT NULL,
			operation_id    TEXT   NOT NULL,
			created_ns      BIGINT NOT NULL,
			updated_ns      BIGINT NOT NULL
		)`,
		`CREATE INDEX resources_owner ON resources (owner_entity_id, owner_name, kind)`,
	},

	// 5: natural keys (view + FQDN, project + app name): a resource's is
	// unique per kind; an operation's lets a repeated create find the
	// unfinished one making the same object. Every minted sub-token is
	// kept here from before its first use until Vault confirms its
	// revocation (or its TTL has passed), so an outage cannot leave one live.
	5: {
		`ALTER TABLE operations ADD COLUMN natural_key TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE resources ADD COLUMN natural_key TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX operations_natural_key ON operations (kind, natural_key, state)`,
		`CREATE UNIQUE INDEX resources_natural_key ON resources (kind, natural_key) WHERE natural_key <> ''`,
		`CREATE TABLE subtokens (
			accessor        TEXT    PRIMARY KEY,
			operation_id    TEXT    NOT NULL,
			purpose         TEXT    NOT NULL,
			state           TEXT    NOT NULL,
			request_id      TEXT    NOT NULL,
			owner_entity_id TEXT    NOT NULL,
			owner_name      TEXT    NOT NULL,
			bundle          TEXT    NOT NULL,
			environment     TEXT    NOT NULL,
			kind            TEXT    NOT NULL,
			action          TEXT    NOT NULL,
			decision_id     TEXT    NOT NULL,
			expires_ns      BIGINT  NOT NULL,
			revoke_attempts INTEGER NOT NULL,
			last_error      TEXT    NOT NULL,
			created_ns      BIGINT  NOT NULL,
			updated_ns      BIGINT  NOT NULL
		)`,
		`CREATE INDEX subtokens_state ON subtokens (state, expires_ns)`,
		// Accessors the previous version kept only on operations: into the
		// ledger, so the sweep takes those of ended operations (their TTL,
		// unknown here, is bounded at a day) and the next attempt the others.
		`INSERT INTO subtokens (accessor, operation_id, purpose, state, request_id, owner_entity_id, owner_name, bundle, environment,
			kind, action, decision_id, expires_ns, revoke_attempts, last_error, created_ns, updated_ns)
			SELECT subtoken_accessor, id, 'operation', 'live', request_id, owner_entity_id, owner_name, bundle, environment,
			kind, action, decision_id, updated_ns + 86400000000000, 0, '', updated_ns, updated_ns
			FROM operations WHERE subtoken_accessor <> ''`,
	},
	// Version 6: long-running operations. An executor's checkpoint (the
	// downstream system's own handle for the work it started) is kept on the
	// operation before anything waits on it; waiting marks a step that ended
	// "in progress" (it is not a failed attempt); a cancel is requested here
	// and honoured at the next step.
	6: {
		`ALTER TABLE operations ADD COLUMN checkpoint_json TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE operations ADD COLUMN progress TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0`,
	},
	// Version 7: what an operation's steps printed (a Terraform run's
	// output, secrets redacted before it is written), for its owner.
	7: {
		`CREATE TABLE operation_logs (
			operation_id TEXT    NOT NULL,
			attempt      INTEGER NOT NULL,
			created_ns   BIGINT  NOT NULL,
			text         TEXT    NOT NULL
		)`,
		`CREATE INDEX operation_logs_operation ON operation_logs (operation_id, created_ns)`,
	},
	// Version 8: a request's secret values travel from admission to the
	// executor in a single-use Vault response-wrapping token
	// (internal/secrets); the operation holds that token sealed
	// (AES-256-GCM under a key derived from the gateway's audit key, never
	// in clear), its accessor (which can revoke but not unwrap) and its
	// expiry. secrets_handoff is '' (nothing handed over), 'wrapped' (a
	// token waits for a step), 'opened' (a step unwrapped it),
	// 'destroying' (one process is revoking it) or 'gone'.
	8: {
		`ALTER TABLE operations ADD COLUMN secrets_handoff TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN secrets_wrapped TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN secrets_accessor TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN secrets_expires_ns BIGINT NOT NULL DEFAULT 0`,
		`CREATE INDEX operations_secrets_handoff ON operations (secrets_handoff, state)`,
	},
	// Version 9: what was approved is what runs. The bundle revision that
	// admitted an operation and what admission resolved from it (a
	// network's CIDR, the catalog module's digest and step limit, the
	// resources it refers to) are stored on the operation; an operation
	// whose compensation is under way remembers how it will end (failed
	// or cancelled), so a later step compensates instead of executing
	// again. Module-run names are unique per environment: their natural
	// keys gain the environment.
	9: {
		`ALTER TABLE operations ADD COLUMN bundle_revision TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN approval_json TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE operations ADD COLUMN ending TEXT NOT NULL DEFAULT ''`,
		`UPDATE resources SET natural_key = environment || '/' || natural_key
			WHERE kind = 'module_run' AND natural_key <> '' AND natural_key NOT LIKE '%/%'`,
		`UPDATE operations SET natural_key = environment || '/' || natural_key
			WHERE kind = 'module_run' AND action = 'create' AND natural_key <> '' AND natural_key NOT LIKE '%/%'`,
	},
}

// dialectTokens expand the few spots where the engines' SQL differs.
var dialectTokens = map[string]map[string]string{
	DriverSQLite: {
		// INTEGER PRIMARY KEY aliases SQLite's rowid (64-bit), saving an index.
		"{{INT64_PK}}": "INTEGER PRIMARY KEY",
	},
	DriverPostgres: {
		"{{INT64_PK}}": "BIGINT PRIMARY KEY",
	},
}

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) - 1 }

// migrationLockKey is the PostgreSQL advisory lock that serialises
// replicas migrating the same database at once.
const migrationLockKey = 0x5a5_a0d17

func (s *Store) expand(stmt string) string {
	for tok, v := range dialectTokens[s.Driver] {
		stmt = strings.ReplaceAll(stmt, tok, v)
	}
	return stmt
}

func (s *Store) migrate(ctx context.Context) error {
	return s.WriteTx(ctx, func(ctx context.Context, q Querier) error {
		if s.Driver == DriverPostgres {
			if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
		}
		for _, stmt := range migrations[1] {
			if _, err := q.ExecContext(ctx, s.expand(stmt)); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
		applied := 0
		if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if applied > SchemaVersion() {
			return fmt.Errorf("migrate: database is at schema version %d, newer than this binary's %d", applied, SchemaVersion())
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		for v := max(applied+1, 1); v <= SchemaVersion(); v++ {
			if v > 1 {
				for _, stmt := range migrations[v] {
					if _, err := q.ExecContext(ctx, s.expand(stmt)); err != nil {
						return fmt.Errorf("migrate to version %d: %w", v, err)
					}
				}
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, now); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v, err)
			}
		}
		return nil
	})
}
