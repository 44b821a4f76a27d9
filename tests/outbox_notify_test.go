package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/tests/testenv"
)

// The outbox's triggers notify the channel senders LISTEN on: once for an
// INSERT statement however many rows it adds, and once for a row put back
// to pending (the documented requeue); finishing a row or changing its
// priority notifies nobody. Every schema of the database shares the
// channel, so notifications are told apart by the backend that sent them,
// and each step ends with a marker notification from the same backend:
// what arrived before it is everything that step's statement sent.
func TestOutboxNotifiesOnInsertAndRequeue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	listener, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+sender.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = listener.Exec(context.Background(), "UNLISTEN *") }()
	writer, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Release()
	pid := writer.Conn().PgConn().PID()

	// notifies runs sql on the writer and counts the notifications it sent.
	step := 0
	notifies := func(sql string) int {
		t.Helper()
		step++
		if _, err := writer.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		marker := fmt.Sprint("end of step ", step)
		if _, err := writer.Exec(ctx, `SELECT pg_notify($1, $2)`, sender.NotifyChannel, marker); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			note, err := listener.Conn().WaitForNotification(ctx)
			if err != nil {
				t.Fatalf("waiting for the notifications of %s: %v", sql, err)
			}
			switch {
			case note.PID != pid:
			case note.Payload == marker:
				return n
			default:
				n++
			}
		}
	}

	if n := notifies(`INSERT INTO outbox (channel_id, endpoint, body) VALUES ('c', 'push', '{}')`); n != 1 {
		t.Errorf("an INSERT of one row sent %d notifications, want 1", n)
	}
	if n := notifies(`INSERT INTO outbox (channel_id, endpoint, body) SELECT 'c', 'push', '{}' FROM generate_series(1, 50)`); n != 1 {
		t.Errorf("an INSERT of 50 rows sent %d notifications, want 1", n)
	}
	if n := notifies(`UPDATE outbox SET status = 'failed', finished_at = now(), last_error = 'refused'
		WHERE id = (SELECT min(id) FROM outbox)`); n != 0 {
		t.Errorf("finishing a row sent %d notifications, want none", n)
	}
	if n := notifies(`UPDATE outbox SET priority = 5 WHERE status = 'pending'`); n != 0 {
		t.Errorf("changing the priority of pending rows sent %d notifications, want none", n)
	}
	if n := notifies(`UPDATE outbox SET status = 'pending', next_attempt_at = now(), last_status_code = NULL, last_error = NULL
		WHERE id = (SELECT min(id) FROM outbox) AND status IN ('failed', 'expired', 'skipped')`); n != 1 {
		t.Errorf("a requeue sent %d notifications, want 1", n)
	}
}
