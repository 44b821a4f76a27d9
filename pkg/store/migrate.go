package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/migrations"
)

// migrateLockSalt is mixed with the schema name into the advisory lock key,
// so concurrent migrators of one schema serialise while different schemas
// (one per test) migrate in parallel.
const migrateLockSalt = "linepipe.migrate:"

// MigrationsTable records applied migrations. It is namespaced so that it
// never collides with another tool's history in the same schema (golang-
// migrate, for one, keeps its own schema_migrations).
const MigrationsTable = "linepipe_migrations"

// legacyMigrationsTable is where linepipe kept its history before
// MigrationsTable; its rows are carried over once.
const legacyMigrationsTable = "schema_migrations"

// ErrChecksumMismatch: a migration file already applied has changed since.
// Released migrations are never edited, so this is a build or deploy
// mistake, and migrating further could leave a schema nobody wrote.
var ErrChecksumMismatch = errors.New("applied migration changed")

// Migration is one embedded SQL file.
type Migration struct {
	Version  string // file name without .sql, e.g. "0002_outbox"
	Checksum string // sha256 of the file, hex
	SQL      []byte
}

// MigrationState is a migration as the database and this binary see it.
type MigrationState struct {
	Version string
	// Applied is set when the database records the version; AppliedAt
	// and AppliedChecksum are then the record.
	Applied         bool
	AppliedAt       time.Time
	AppliedChecksum string
	// Known is set when this binary embeds the version (a newer release
	// may have applied versions an older binary does not know).
	Known    bool
	Checksum string // this binary's file checksum, when Known
}

// Changed reports an applied migration whose file differs from the record.
func (s MigrationState) Changed() bool {
	return s.Applied && s.Known && s.AppliedChecksum != "" && s.AppliedChecksum != s.Checksum
}

// Migrations lists the embedded migrations in the order they apply.
func Migrations() ([]Migration, error) { return loadMigrations(migrations.FS) }

// LatestMigration is the newest migration this binary embeds: the schema
// version it needs.
func LatestMigration() string {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return ""
	}
	return ms[len(ms)-1].Version
}

func loadMigrations(files fs.FS) ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		sql, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		sum := sha256.Sum256(sql)
		out = append(out, Migration{Version: strings.TrimSuffix(name, ".sql"), Checksum: hex.EncodeToString(sum[:]), SQL: sql})
	}
	return out, nil
}

// Migrate applies every embedded migration not yet recorded in
// linepipe_migrations, in lexical order, each in its own transaction,
// under a session advisory lock. Running it again, or from several
// processes at once, is safe. It refuses to run when an applied file has
// changed. It returns the versions it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return migrateFS(ctx, pool, migrations.FS)
}

func migrateFS(ctx context.Context, pool *pgxpool.Pool, files fs.FS) ([]string, error) {
	ms, err := loadMigrations(files)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring migration connection: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1 || current_schema()))`, migrateLockSalt); err != nil {
		return nil, fmt.Errorf("taking migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: the caller's may be cancelled, and a
		// lock left held would block every later migrator on this session.
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtext($1 || current_schema()))`, migrateLockSalt)
	}()

	if err := ensureHistory(ctx, conn.Conn(), ms); err != nil {
		return nil, err
	}
	states, err := migrationStates(ctx, conn.Conn(), ms)
	if err != nil {
		return nil, err
	}
	if err := checkUnchanged(states); err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, s := range states {
		done[s.Version] = s.Applied
	}

	var applied []string
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// A migration waits at most this long for a table lock, so a
			// deploy fails fast instead of queueing every query behind it.
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(m.SQL)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+MigrationsTable+` (version, checksum) VALUES ($1, $2)`, m.Version, m.Checksum)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("applying migration %s: %w", m.Version, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// ensureHistory creates linepipe_migrations and, the first time, carries
// over the rows of a schema_migrations table that linepipe itself kept
// (version text, applied_at). A schema_migrations of any other shape, such
// as golang-migrate's (version bigint, dirty boolean), is left alone.
func ensureHistory(ctx context.Context, conn *pgx.Conn, ms []Migration) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, MigrationsTable).Scan(&exists); err != nil {
		return fmt.Errorf("looking for %s: %w", MigrationsTable, err)
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+MigrationsTable+` (
			version    text PRIMARY KEY,
			checksum   text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("creating %s: %w", MigrationsTable, err)
		}
		legacy, err := isLegacyHistory(ctx, tx)
		if err != nil || !legacy {
			return err
		}
		// The legacy table has no checksums. Released files are never
		// edited, so the embedded file's checksum is what was applied.
		sums := map[string]string{}
		for _, m := range ms {
			sums[m.Version] = m.Checksum
		}
		rows, err := tx.Query(ctx, `SELECT version, applied_at FROM `+legacyMigrationsTable)
		if err != nil {
			return fmt.Errorf("reading %s: %w", legacyMigrationsTable, err)
		}
		type row struct {
			v  string
			at time.Time
		}
		var old []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.v, &r.at); err != nil {
				return err
			}
			old = append(old, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range old {
			if _, err := tx.Exec(ctx, `INSERT INTO `+MigrationsTable+` (version, checksum, applied_at) VALUES ($1, $2, $3)`,
				r.v, sums[r.v], r.at); err != nil {
				return fmt.Errorf("carrying over %s: %w", r.v, err)
			}
		}
		return nil
	})
}

// isLegacyHistory reports a schema_migrations table in the current schema
// with exactly linepipe's old columns: version text and applied_at.
func isLegacyHistory(ctx context.Context, q querier) (bool, error) {
	rows, err := q.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, legacyMigrationsTable)
	if err != nil {
		return false, fmt.Errorf("inspecting %s: %w", legacyMigrationsTable, err)
	}
	cols := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return false, err
		}
		cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	return len(cols) == 2 && cols["version"] == "text" && cols["applied_at"] == "timestamp with time zone", nil
}

// MigrationStatus lists every migration this binary embeds or the
// database records, in version order. It changes nothing; before the first
// `worker migrate` of this release it reads linepipe's legacy history.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]MigrationState, error) {
	return migrationStatusFS(ctx, pool, migrations.FS)
}

func migrationStatusFS(ctx context.Context, pool *pgxpool.Pool, files fs.FS) ([]MigrationState, error) {
	ms, err := loadMigrations(files)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	return migrationStates(ctx, conn.Conn(), ms)
}

func migrationStates(ctx context.Context, conn *pgx.Conn, ms []Migration) ([]MigrationState, error) {
	byVersion := map[string]*MigrationState{}
	for _, m := range ms {
		byVersion[m.Version] = &MigrationState{Version: m.Version, Known: true, Checksum: m.Checksum}
	}
	var table, query string
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, MigrationsTable).Scan(&exists); err != nil {
		return nil, err
	}
	if exists {
		table, query = MigrationsTable, `SELECT version, checksum, applied_at FROM `+MigrationsTable
	} else {
		legacy, err := isLegacyHistory(ctx, conn)
		if err != nil {
			return nil, err
		}
		if legacy {
			table, query = legacyMigrationsTable, `SELECT version, '', applied_at FROM `+legacyMigrationsTable
		}
	}
	if table != "" {
		rows, err := conn.Query(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", table, err)
		}
		for rows.Next() {
			var v, sum string
			var at time.Time
			if err := rows.Scan(&v, &sum, &at); err != nil {
				return nil, err
			}
			s := byVersion[v]
			if s == nil {
				s = &MigrationState{Version: v}
				byVersion[v] = s
			}
			s.Applied, s.AppliedChecksum, s.AppliedAt = true, sum, at
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]MigrationState, 0, len(byVersion))
	for _, s := range byVersion {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func checkUnchanged(states []MigrationState) error {
	var errs []error
	for _, s := range states {
		if s.Changed() {
			errs = append(errs, fmt.Errorf("%w: %s.sql was applied with sha256 %s, the file now has %s",
				ErrChecksumMismatch, s.Version, s.AppliedChecksum, s.Checksum))
		}
	}
	return errors.Join(errs...)
}

// querier is what a pool, a connection and a transaction share.
type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// ErrSchemaNotReady is wrapped by SchemaReady's errors.
var ErrSchemaNotReady = errors.New("schema not ready")

// SchemaReady reports whether the database's schema includes the newest
// migration this binary embeds. A newer schema is fine: migrations are
// additive, so an older binary keeps working during a rolling deploy.
func SchemaReady(ctx context.Context, q querier) error {
	return schemaReady(ctx, q, LatestMigration())
}

func schemaReady(ctx context.Context, q querier, need string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, MigrationsTable).Scan(&exists); err != nil {
		return fmt.Errorf("checking schema version: %w", err)
	}
	if !exists {
		return fmt.Errorf("%w: no %s table; run `worker migrate`", ErrSchemaNotReady, MigrationsTable)
	}
	var applied bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+MigrationsTable+` WHERE version = $1)`, need).Scan(&applied); err != nil {
		return fmt.Errorf("checking schema version: %w", err)
	}
	if !applied {
		return fmt.Errorf("%w: migration %s not applied; run `worker migrate`", ErrSchemaNotReady, need)
	}
	return nil
}

// SchemaCheck remembers a schema found ready, since migrations only move
// it forward; until then every call asks the database.
type SchemaCheck struct {
	ok atomic.Bool
}

// Ready is SchemaReady, asked until it first succeeds.
func (c *SchemaCheck) Ready(ctx context.Context, q querier) error {
	if c.ok.Load() {
		return nil
	}
	if err := SchemaReady(ctx, q); err != nil {
		return err
	}
	c.ok.Store(true)
	return nil
}
