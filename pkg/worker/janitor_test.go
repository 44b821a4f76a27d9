package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// seedRetention is, per table, rows past the default keep (expired) and
// rows that must stay: fresh ones, and old ones still needed.
var seedRetention = []string{
	// events: 90 days.
	`INSERT INTO events (webhook_event_id, channel_id, type, event_time, received_at, raw)
	 SELECT 'old' || i, 'c', 'follow', now() - interval '100 days', now() - interval '100 days', '{}'
	 FROM generate_series(1, 5) i`,
	`INSERT INTO events (webhook_event_id, channel_id, type, event_time, received_at, raw)
	 VALUES ('keep', 'c', 'follow', now() - interval '100 days', now() - interval '89 days', '{}')`,
	// webhook_log: 90 days.
	`INSERT INTO webhook_log (webhook_id, channel_id, remote_ip, received_at, method, path, status, event_count) VALUES
	 ('old', 'c', '203.0.113.1', now() - interval '91 days', 'POST', '/webhook/c', 200, 1),
	 ('keep', 'c', '203.0.113.1', now() - interval '1 day', 'POST', '/webhook/c', 200, 1)`,
	// api_log: 90 days.
	`INSERT INTO api_log (called_at, method, endpoint, status, duration_ms, error)
	 SELECT now() - interval '95 days', 'POST', 'push', 200, 1, 'old' FROM generate_series(1, 7)`,
	`INSERT INTO api_log (called_at, method, endpoint, status, duration_ms, error)
	 VALUES (now() - interval '1 hour', 'POST', 'push', 200, 1, 'keep')`,
	// outbox: finished rows, 30 days. Unfinished rows stay however old.
	`INSERT INTO outbox (channel_id, endpoint, body, status, created_at, finished_at, last_error) VALUES
	 ('c', 'push', '{}', 'delivered', now() - interval '40 days', now() - interval '40 days', 'old'),
	 ('c', 'push', '{}', 'cancelled', now() - interval '40 days', now() - interval '31 days', 'old'),
	 ('c', 'push', '{}', 'uncertain', now() - interval '40 days', now() - interval '35 days', 'old'),
	 ('c', 'push', '{}', 'delivered', now() - interval '40 days', now() - interval '29 days', 'keep'),
	 ('c', 'push', '{}', 'pending',   now() - interval '400 days', NULL, 'keep'),
	 ('c', 'push', '{}', 'retrying',  now() - interval '400 days', NULL, 'keep'),
	 ('c', 'push', '{}', 'in_flight', now() - interval '400 days', NULL, 'keep')`,
	// dead_letters: 90 days, unless a replay is requested.
	`INSERT INTO dead_letters (subject, stream_seq, deliveries, data, error, failed_at, replay_requested_at) VALUES
	 ('s', 1, 1, '\x00', 'old', now() - interval '91 days', NULL),
	 ('s', 2, 1, '\x00', 'keep', now() - interval '91 days', now()),
	 ('s', 3, 1, '\x00', 'keep', now() - interval '1 day', NULL)`,
	// unsent_messages: 30 days.
	`INSERT INTO unsent_messages (channel_id, message_id, unsent_at, webhook_event_id, recorded_at) VALUES
	 ('c', 'old', now() - interval '31 days', 'old', now() - interval '31 days'),
	 ('c', 'keep', now() - interval '31 days', 'keep', now() - interval '29 days')`,
	// outbox_rate: idle per-recipient buckets, 1 day; channel buckets stay.
	`INSERT INTO outbox_rate (channel_id, bucket, tat) VALUES
	 ('c', 'to:Uold', now() - interval '2 days'),
	 ('c', 'to:Ukeep', now() + interval '1 second'),
	 ('c', 'push', now() - interval '300 days')`,
}

// Retention deletes the expired rows of every table, in batches, and
// keeps fresh rows and old rows still needed.
func TestRetentionDeletesExpiredRowsOnly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	for _, q := range seedRetention {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	m := NewMetrics(ops.NewRegistry())
	w := New(Config{}, testStreamConfig(), nil, db.Pool, m, zaptest.NewLogger(t))

	// Batches of 2: the tables with 5 and 7 expired rows take several
	// statements.
	deleted, err := w.RetainOnce(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"events": 5, "webhook_log": 1, "api_log": 7, "outbox": 3, "dead_letters": 1,
		"unsent_messages": 1, "outbox_rate": 1}
	for table, n := range want {
		if deleted[table] != n {
			t.Errorf("%s: deleted %d, want %d", table, deleted[table], n)
		}
		if got := testutil.ToFloat64(m.ops.retentionDeleted.WithLabelValues(table)); got != float64(n) {
			t.Errorf("%s: counter %v, want %d", table, got, n)
		}
	}
	left := map[string]int{
		`SELECT count(*) FROM events WHERE webhook_event_id = 'keep'`:                      1,
		`SELECT count(*) FROM events`:                                                      1,
		`SELECT count(*) FROM webhook_log WHERE webhook_id = 'keep'`:                       1,
		`SELECT count(*) FROM api_log WHERE error = 'keep'`:                                1,
		`SELECT count(*) FROM api_log`:                                                     1,
		`SELECT count(*) FROM outbox WHERE last_error = 'keep'`:                            4,
		`SELECT count(*) FROM outbox`:                                                      4,
		`SELECT count(*) FROM dead_letters WHERE error = 'keep'`:                           2,
		`SELECT count(*) FROM dead_letters`:                                                2,
		`SELECT count(*) FROM unsent_messages WHERE message_id = 'keep'`:                   1,
		`SELECT count(*) FROM unsent_messages`:                                             1,
		`SELECT count(*) FROM outbox_rate WHERE bucket IN ('to:Ukeep', 'push')`:            2,
		`SELECT count(*) FROM outbox_rate`:                                                 2,
		`SELECT count(*) FROM outbox WHERE status IN ('pending', 'retrying', 'in_flight')`: 3,
	}
	for q, n := range left {
		var got int
		if err := db.Pool.QueryRow(ctx, q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s = %d, want %d", q, got, n)
		}
	}
	if testutil.ToFloat64(m.ops.retentionLastRun) == 0 {
		t.Error("last run gauge not set")
	}

	// An operator's change applies at the next round; a table without a
	// retention row is kept forever.
	if _, err := db.Pool.Exec(ctx, `UPDATE retention SET keep = '1 hour' WHERE table_name = 'webhook_log';
		DELETE FROM retention WHERE table_name = 'api_log';
		UPDATE api_log SET called_at = now() - interval '10 years'; UPDATE webhook_log SET received_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if deleted, err = w.RetainOnce(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if deleted["webhook_log"] != 1 || deleted["api_log"] != 0 {
		t.Fatalf("after the operator's change: %v", deleted)
	}
}

// Tombstones and events are what make a redelivered or late copy harmless:
// the retention table refuses to keep them shorter than 7 days.
func TestRetentionRefusesToDropTheRedeliveryHorizon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	for _, table := range []string{"unsent_messages", "events"} {
		_, err := db.Pool.Exec(ctx, `UPDATE retention SET keep = '6 days' WHERE table_name = $1`, table)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.ConstraintName != "retention_redelivery_horizon" {
			t.Fatalf("%s kept 6 days: %v, want the horizon check", table, err)
		}
	}
	_, err := db.Pool.Exec(ctx, `UPDATE retention SET keep = '59 minutes' WHERE table_name = 'outbox_rate'`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.ConstraintName != "retention_rate_bucket_in_use" {
		t.Fatalf("rate buckets kept 59 minutes: %v, want the bucket check", err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO retention VALUES ('evnets', '1 day')`); err == nil {
		t.Fatal("a misspelt table was accepted")
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE retention SET keep = '7 days' WHERE table_name = 'unsent_messages'`); err != nil {
		t.Fatal(err)
	}
}

// One replica at a time: while another session holds the retention lock,
// a round is skipped, not run twice.
func TestRetentionRunsOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if _, err := db.Pool.Exec(ctx, seedRetention[0]); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1 || current_schema()))`, retentionLockSalt); err != nil {
		t.Fatal(err)
	}
	w := New(Config{}, testStreamConfig(), nil, db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	deleted, err := w.RetainOnce(ctx, 0)
	if err != nil || deleted != nil {
		t.Fatalf("round ran beside another: %v %v", deleted, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1 || current_schema()))`, retentionLockSalt); err != nil {
		t.Fatal(err)
	}
	if deleted, err = w.RetainOnce(ctx, 0); err != nil || deleted["events"] != 5 {
		t.Fatalf("round after the lock was freed: %v %v", deleted, err)
	}
}

// testStreamConfig is a stream configuration for tests that never touch
// the stream.
func testStreamConfig() stream.Config { return stream.Config{}.WithDefaults() }
