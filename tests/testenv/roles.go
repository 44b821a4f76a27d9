package testenv

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
)

// testUserPassword is the password of the test login users. CI's Postgres
// trusts loopback and ignores it; a container with password
// authentication needs it.
const testUserPassword = "linepipe-test"

var (
	loginMu    sync.Mutex
	loginUsers = map[string]bool{}
)

// RoleURL is a connection string for this test's schema as a login user
// that is a member of role (store.RoleIngest, RoleWorker or RoleSender)
// and nothing else, so a service run with it fails on any statement its
// role was not granted.
func (d *DB) RoleURL(t testing.TB, role string) string {
	t.Helper()
	user := role + "_test"
	loginMu.Lock()
	defer loginMu.Unlock()
	if !loginUsers[user] {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgxpool.New(ctx, PostgresURL(t))
		if err != nil {
			t.Fatalf("connecting to test Postgres: %v", err)
		}
		defer admin.Close()
		if err := store.EnsureLoginUser(ctx, admin, user, testUserPassword, role); err != nil {
			t.Fatalf("creating test login user: %v", err)
		}
		loginUsers[user] = true
	}
	return WithSearchPath(t, withUser(t, PostgresURL(t), user, testUserPassword), d.Schema)
}

// RolePool is a pool on RoleURL, closed when the test ends.
func (d *DB) RolePool(t testing.TB, role string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := store.Open(ctx, d.RoleURL(t, role), 8)
	if err != nil {
		t.Fatalf("opening %s pool: %v", role, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func withUser(t testing.TB, base, user, password string) string {
	t.Helper()
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("parsing database url: %v", err)
		}
		u.User = url.UserPassword(user, password)
		return u.String()
	}
	return base + " user=" + user + " password=" + password
}
