package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

func tableExists(t *testing.T, db *testenv.DB, name string) bool {
	t.Helper()
	var ok bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// linepipe's history lives in its own table, so it migrates a schema
// where golang-migrate keeps schema_migrations (version bigint, dirty
// bool) and leaves that table exactly as it was.
func TestMigrateBesideGolangMigrate(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (20240101120000, false)`); err != nil {
		t.Fatal(err)
	}
	applied, err := store.Migrate(ctx, db.Pool)
	if err != nil {
		t.Fatalf("migrating beside golang-migrate: %v", err)
	}
	all, _ := store.Migrations()
	if len(applied) != len(all) || len(all) < 2 {
		t.Fatalf("applied %v of %d migrations", applied, len(all))
	}
	var version int64
	var dirty bool
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT version, dirty, (SELECT count(*) FROM schema_migrations) FROM schema_migrations`).Scan(&version, &dirty, &n); err != nil {
		t.Fatalf("golang-migrate's table damaged: %v", err)
	}
	if version != 20240101120000 || dirty || n != 1 {
		t.Fatalf("golang-migrate's table changed: version %d dirty %v rows %d", version, dirty, n)
	}
	var recorded int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM linepipe_migrations WHERE length(checksum) = 64`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != len(all) {
		t.Fatalf("%d versions recorded with a checksum, want %d", recorded, len(all))
	}
	if err := store.SchemaReady(ctx, db.Pool); err != nil {
		t.Fatalf("migrated schema not ready: %v", err)
	}
}

// A database migrated by an earlier release keeps its history in
// linepipe's old schema_migrations (version text, applied_at); the first
// run of this release carries it over instead of re-running those files.
func TestMigrateCarriesOverLegacyHistory(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	ctx := context.Background()
	old := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x int)`)}}
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE a (x int);
		INSERT INTO schema_migrations (version, applied_at) VALUES ('0001_a', '2025-01-02T03:04:05Z')`); err != nil {
		t.Fatal(err)
	}
	states, err := store.MigrationStatusFS(ctx, db.Pool, old)
	if err != nil || len(states) != 1 || !states[0].Applied {
		t.Fatalf("status before the carry-over: %+v %v", states, err)
	}
	next := fstest.MapFS{"0001_a.sql": old["0001_a.sql"], "0002_b.sql": {Data: []byte(`CREATE TABLE b (y int)`)}}
	applied, err := store.MigrateFS(ctx, db.Pool, next)
	if err != nil {
		t.Fatalf("migrating a legacy history: %v", err)
	}
	if strings.Join(applied, ",") != "0002_b" {
		t.Fatalf("applied %v, want only 0002_b", applied)
	}
	var at string
	if err := db.Pool.QueryRow(ctx, `SELECT to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') FROM linepipe_migrations WHERE version = '0001_a'`).Scan(&at); err != nil || at != "2025-01-02T03:04:05" {
		t.Fatalf("carried-over row: %q %v", at, err)
	}
	if !tableExists(t, db, "schema_migrations") {
		t.Fatal("the legacy table was dropped; older binaries may still read it during a rolling deploy")
	}
}

// An applied file that changed stops migrate before it applies anything.
func TestMigrateRefusesChangedFile(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	ctx := context.Background()
	if _, err := store.MigrateFS(ctx, db.Pool, fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x int)`)}}); err != nil {
		t.Fatal(err)
	}
	edited := fstest.MapFS{
		"0001_a.sql": {Data: []byte(`CREATE TABLE a (x bigint)`)},
		"0002_b.sql": {Data: []byte(`CREATE TABLE b (y int)`)},
	}
	applied, err := store.MigrateFS(ctx, db.Pool, edited)
	if !errors.Is(err, store.ErrChecksumMismatch) || !strings.Contains(err.Error(), "0001_a.sql") {
		t.Fatalf("an edited applied file was accepted: applied %v, err %v", applied, err)
	}
	if len(applied) != 0 || tableExists(t, db, "b") {
		t.Fatal("a later migration ran after the checksum mismatch")
	}
	states, err := store.MigrationStatusFS(ctx, db.Pool, edited)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := store.WriteMigrationStatus(&out, states); err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(strings.Split(out.String(), "\n")[1]); len(f) < 2 || f[0] != "0001_a" || f[1] != "CHANGED" ||
		!strings.Contains(out.String(), "migrate refuses to run") {
		t.Fatalf("status does not show the change:\n%s", out.String())
	}
}

// Status lists what is applied and what is pending, and readiness
// follows it: a schema missing this binary's newest migration is not ready.
func TestMigrationStatusAndReadiness(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	ctx := context.Background()
	if err := store.SchemaReadyFor(ctx, db.Pool, "0002_b"); !errors.Is(err, store.ErrSchemaNotReady) {
		t.Fatalf("an empty schema is ready: %v", err)
	}
	files := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x int)`)}}
	if _, err := store.MigrateFS(ctx, db.Pool, files); err != nil {
		t.Fatal(err)
	}
	files["0002_b.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE b (y int)`)}
	if err := store.SchemaReadyFor(ctx, db.Pool, "0002_b"); !errors.Is(err, store.ErrSchemaNotReady) || !strings.Contains(err.Error(), "0002_b") {
		t.Fatalf("a schema one migration behind is ready: %v", err)
	}
	states, err := store.MigrationStatusFS(ctx, db.Pool, files)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := store.WriteMigrationStatus(&out, states); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[1])[:2], " ") != "0001_a applied" ||
		strings.Join(strings.Fields(lines[2])[:3], " ") != "0002_b pending -" || lines[3] != "1 pending: run `worker migrate`" {
		t.Fatalf("status:\n%s", out.String())
	}
	if _, err := store.MigrateFS(ctx, db.Pool, files); err != nil {
		t.Fatal(err)
	}
	if err := store.SchemaReadyFor(ctx, db.Pool, "0002_b"); err != nil {
		t.Fatalf("migrated schema not ready: %v", err)
	}
	// An older binary, needing only 0001_a, runs against the newer schema.
	if err := store.SchemaReadyFor(ctx, db.Pool, "0001_a"); err != nil {
		t.Fatalf("an older binary is refused by a newer schema: %v", err)
	}
}
