package tests

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// TestOutboxRetryKeyGuard: the trigger refuses any change of retry_key
// except the documented new send of a finished, undelivered row, so no
// statement can make a retry look like a new message to LINE.
func TestOutboxRetryKeyGuard(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	refused := func(what, sql string, id int64) {
		t.Helper()
		_, err := b.db.Pool.Exec(ctx, sql, id)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: %v, want a check_violation", what, err)
		}
	}
	pending := b.insert(t, "push", pushBody(userID(1), "a"))
	refused("new key on a pending row", `UPDATE outbox SET retry_key = gen_random_uuid() WHERE id = $1`, pending)
	refused("new key on a pending row, reset as for a new send", `UPDATE outbox SET retry_key = gen_random_uuid(),
		attempts = 0, first_attempt_at = NULL WHERE id = $1`, pending)

	failed := b.insert(t, "push", pushBody(userID(2), "b"))
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET status = 'failed', attempts = 1, first_attempt_at = now(),
		finished_at = now() WHERE id = $1`, failed); err != nil {
		t.Fatal(err)
	}
	refused("new key keeping the attempts", `UPDATE outbox SET retry_key = gen_random_uuid(), status = 'pending' WHERE id = $1`, failed)
	// The same key must name the same request, and its age stays on record
	// (LINE forgets a key after 24 h; a reset age would let it be sent again).
	refused("same key, another channel", `UPDATE outbox SET channel_id = '1650000999', status = 'pending' WHERE id = $1`, failed)
	refused("same key, another endpoint", `UPDATE outbox SET endpoint = 'multicast', status = 'pending' WHERE id = $1`, failed)
	refused("same key, attempts reset", `UPDATE outbox SET status = 'pending', attempts = 0, first_attempt_at = NULL WHERE id = $1`, failed)
	refused("same key, made younger", `UPDATE outbox SET first_attempt_at = first_attempt_at + interval '1 hour' WHERE id = $1`, failed)
	// The documented requeue keeps the key and its age, and is allowed.
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET status = 'failed', attempts = 2, first_attempt_at = first_attempt_at - interval '1 s'
		WHERE id = $1`, failed); err != nil {
		t.Fatalf("an older first_attempt_at and more attempts were refused: %v", err)
	}
	before := b.row(t, failed).RetryKey
	// The documented new send (docs/OUTBOX.md) is allowed.
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET retry_key = gen_random_uuid(), status = 'pending', attempts = 0,
		first_attempt_at = NULL, maybe_delivered = false, next_attempt_at = now() WHERE id = $1`, failed); err != nil {
		t.Fatalf("the documented new send was refused: %v", err)
	}
	if r := b.row(t, failed); r.RetryKey == before || r.Status != "pending" {
		t.Fatalf("new send left %+v", r)
	}
}
