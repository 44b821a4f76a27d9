package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/testenv"
)

// A row an operator requeues keeps the finished_at of the attempt that
// ended it (the requeue in README.md and docs/OUTBOX.md does not clear
// it), so an old finished_at does not make a row finished: retention
// deletes a requeued row neither while it waits nor while it is sent,
// however long ago it first finished; the finished row beside it goes.
func TestRetentionKeepsRequeuedOutboxRows(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	// Four rows that failed 40 days ago, past outbox's 30 days.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, status, created_at, finished_at, last_error)
		SELECT 'c', 'push', json_build_object('k', k), 'failed', now() - interval '41 days', now() - interval '40 days', 'refused'
		FROM unnest(ARRAY['requeued', 'retrying', 'in_flight', 'finished']) k`); err != nil {
		t.Fatal(err)
	}
	// The documented requeue, then the states a sender moves it through.
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'pending', next_attempt_at = now(), last_status_code = NULL,
		last_error = NULL WHERE body->>'k' <> 'finished' AND status IN ('failed', 'expired', 'skipped')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'retrying', attempts = 1 WHERE body->>'k' = 'retrying';
		UPDATE outbox SET status = 'in_flight', claim_id = gen_random_uuid(), claimed_by = 's',
			lease_until = now() + interval '1 minute' WHERE body->>'k' = 'in_flight'`); err != nil {
		t.Fatal(err)
	}
	w := New(Config{}, testStreamConfig(), nil, db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	deleted, err := w.RetainOnce(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if deleted["outbox"] != 1 {
		t.Errorf("retention deleted %d outbox rows, want only the finished one", deleted["outbox"])
	}
	rows, err := db.Pool.Query(ctx, `SELECT body->>'k' || ':' || status FROM outbox
		WHERE finished_at < now() - interval '30 days' ORDER BY body->>'k'`)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "[in_flight:in_flight requeued:pending retrying:retrying]" {
		t.Fatalf("rows left with an old finished_at: %v, want the requeued ones pending, retrying and in_flight", left)
	}
}
