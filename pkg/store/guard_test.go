package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Once an outbox row is scrubbed it stays scrubbed: scrubbed_at cannot be
// cleared or moved and the scrubbed body cannot change, so "scrub with
// any body, then unscrub" cannot change a body after an attempt without
// a new retry key, nor bring an unsent message's text back.
func TestOutboxGuardKeepsScrubbedRowsScrubbed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	id, err := store.EnqueueOutbox(ctx, db.Pool, store.OutboxInsert{ChannelID: "1650000009", Endpoint: "push",
		Body: []byte(`{"to":"U1","messages":[{"type":"text","text":"private"}]}`), SourceMessageID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET first_attempt_at = now(), attempts = 1, status = 'retrying' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	refused := func(name, sql string) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, id)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: %v, want a check_violation", name, err)
		}
	}
	// The unsend's own statement scrubs the row.
	b := &pgx.Batch{}
	store.QueueUnsend(b, store.MessageKey{ChannelID: "1650000009", MessageID: "m1"}, time.Now(), "unsend-1")
	if err := db.Pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	var status, body string
	var finished bool
	if err := db.Pool.QueryRow(ctx, `SELECT status, body::text, finished_at IS NOT NULL FROM outbox WHERE id = $1`, id).
		Scan(&status, &body, &finished); err != nil || status != "cancelled" || body != "{}" || !finished {
		t.Fatalf("after the unsend: %s %s finished=%v (%v)", status, body, finished, err)
	}
	refused("clearing scrubbed_at", `UPDATE outbox SET scrubbed_at = NULL WHERE id = $1`)
	refused("moving scrubbed_at", `UPDATE outbox SET scrubbed_at = scrubbed_at + interval '1 s' WHERE id = $1`)
	refused("changing the scrubbed body", `UPDATE outbox SET body = '{"to":"U1","messages":[{"type":"text","text":"back"}]}' WHERE id = $1`)
	refused("new body with a new key", `UPDATE outbox SET body = '{"x":1}', retry_key = gen_random_uuid(), status = 'pending',
		attempts = 0, first_attempt_at = NULL WHERE id = $1`)

	// The two-step bypass 0002 allowed on an unscrubbed row: scrub to any
	// body, then unscrub.
	id2, err := store.EnqueueOutbox(ctx, db.Pool, store.OutboxInsert{ChannelID: "1650000009", Endpoint: "push",
		Body: []byte(`{"to":"U1","messages":[{"type":"text","text":"first"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET first_attempt_at = now(), attempts = 1 WHERE id = $1`, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET body = '{"to":"U1","messages":[{"type":"text","text":"second"}]}',
		scrubbed_at = now() WHERE id = $1`, id2); err != nil {
		t.Fatal(err)
	}
	id = id2
	refused("unscrubbing after a scrub", `UPDATE outbox SET scrubbed_at = NULL WHERE id = $1`)
	// Other columns of a scrubbed row still move (the sender finishing it).
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'cancelled', finished_at = now() WHERE id = $1`, id2); err != nil {
		t.Fatalf("finishing a scrubbed row: %v", err)
	}
}
