package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/linepipe/linepipe/pkg/store"
)

var (
	pgOnce sync.Once
	pgURL  string
	pgErr  error
)

// PostgresURL is the server tests use: TEST_DATABASE_URL, or a container
// started once per test binary.
func PostgresURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			pgURL = u
			return
		}
		pgURL, pgErr = startPostgresContainer()
	})
	if pgErr != nil {
		t.Fatalf("no Postgres for tests: set TEST_DATABASE_URL or run Docker: %v", pgErr)
	}
	return pgURL
}

func startPostgresContainer() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "postgres:16-alpine",
			ExposedPorts: []string{"5432/tcp"},
			Env:          map[string]string{"POSTGRES_PASSWORD": "postgres", "POSTGRES_DB": "test"},
			WaitingFor: wait.ForLog("database system is ready to accept connections").
				WithOccurrence(2).WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return "", err
	}
	host, err := c.Host(ctx)
	if err != nil {
		return "", err
	}
	port, err := c.MappedPort(ctx, "5432/tcp")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://postgres:postgres@%s:%s/test?sslmode=disable", host, port.Port()), nil
}

// DB is a migrated schema of its own for one test.
type DB struct {
	Pool   *pgxpool.Pool
	URL    string // connection string with search_path set to Schema
	Schema string
}

// NewDB creates a fresh schema, migrates it and drops it when the test
// ends. URL can be handed to a subprocess; it selects the same schema.
func NewDB(t testing.TB) *DB {
	t.Helper()
	db := NewEmptyDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := store.Migrate(ctx, db.Pool); err != nil {
		t.Fatalf("migrating test schema: %v", err)
	}
	return db
}

// NewEmptyDB is NewDB without migrations: a schema with no tables, for
// tests of migration and of services facing a database not yet migrated.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	base := PostgresURL(t)
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatalf("connecting to test Postgres: %v", err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("creating schema: %v", err)
	}
	u := WithSearchPath(t, base, schema)
	pool, err := store.Open(ctx, u, 10)
	if err != nil {
		t.Fatalf("opening test pool: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if _, err := admin.Exec(cctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("dropping schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return &DB{Pool: pool, URL: u, Schema: schema}
}

// WithSearchPath returns base with search_path set to schema, in URL or
// keyword/value form as base is.
func WithSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("parsing database url: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}
