package worker

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/tests/testenv"
)

// migrateURL is db's URL, which must be in URL form, with its host set.
func migrateURL(t *testing.T, db *testenv.DB, host string) (*url.URL, string) {
	t.Helper()
	u, err := url.Parse(db.URL)
	if err != nil || u.Host == "" {
		t.Fatalf("the test database's URL %q is not in URL form: %v", db.URL, err)
	}
	target := u.Host
	if host != "" {
		u.Host = host
	}
	return u, target
}

// `worker migrate` started before Postgres listens (a fresh compose
// volume, a Job beside a new database) waits for it and migrates, rather
// than failing the deployment.
func TestMigrateWaitsForPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewEmptyDB(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there until Postgres "starts"
	u, target := migrateURL(t, db, addr)

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- Migrate(ctx, u.String(), zap.NewNop()) }()
	time.Sleep(time.Second)
	select {
	case err := <-done:
		t.Fatalf("migrate gave up before Postgres listened: %v", err)
	default:
	}
	pl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	go forward(pl, target)

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("migrate, once Postgres listened: %v", err)
		}
	case <-time.After(MigrateConnectWait):
		t.Fatal("migrate did not finish once Postgres listened")
	}
	var applied int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM linepipe_migrations`).Scan(&applied); err != nil || applied == 0 {
		t.Errorf("%d migrations recorded (%v) after waiting %s; want the schema migrated", applied, err, time.Since(start))
	}
}

// A server that answers and refuses (here: no such database) is not
// waited for: the error comes at once, not after MigrateConnectWait.
func TestMigrateFailsAtOnceWhenRefused(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	u, _ := migrateURL(t, db, "")
	u.Path = "/linepipe_no_such_database"
	start := time.Now()
	err := Migrate(context.Background(), u.String(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "linepipe_no_such_database") {
		t.Fatalf("migrate into a missing database: %v; want the server's refusal", err)
	}
	if took := time.Since(start); took > MigrateConnectWait/4 {
		t.Errorf("the refusal took %s: it was waited on as if Postgres were unreachable", took)
	}
}

// forward relays every connection l accepts to target.
func forward(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer s.Close()
			go func() { _, _ = io.Copy(s, c) }()
			_, _ = io.Copy(c, s)
		}()
	}
}
