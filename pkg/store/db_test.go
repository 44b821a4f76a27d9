package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// A service's pool has its connections open before its first request;
// a URL's pool_min_conns still decides; Open stays lazy, as tests and
// one-shot commands want.
func TestOpenServiceOpensItsConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	open := func(f func(context.Context, string, int32) (*pgxpool.Pool, error), url string) *pgxpool.Pool {
		p, err := f(ctx, url, 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	warm := open(store.OpenService, db.URL)
	sep := "&" // db.URL names its schema, so it has parameters already
	if !strings.Contains(db.URL, "://") {
		sep = " "
	}
	pinned := open(store.OpenService, db.URL+sep+"pool_min_conns=1")
	lazy := open(store.Open, db.URL)
	deadline := time.Now().Add(20 * time.Second)
	for warm.Stat().TotalConns() < 3 || pinned.Stat().TotalConns() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connections after 20 s: %d of 3 (service pool), %d of 1 (pool_min_conns=1)",
				warm.Stat().TotalConns(), pinned.Stat().TotalConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := pinned.Stat().TotalConns(); n != 1 {
		t.Errorf("pool_min_conns=1 pool holds %d connections, want 1", n)
	}
	if n := lazy.Stat().TotalConns(); n != 0 {
		t.Errorf("a lazy pool opened %d connections before any request", n)
	}
}
