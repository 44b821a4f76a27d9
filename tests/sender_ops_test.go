package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// The operator statements documented in docs/OUTBOX.md, run verbatim.
const (
	requeueSQL = `UPDATE outbox SET status = 'pending', next_attempt_at = now(), last_status_code = NULL, last_error = NULL
		WHERE id = $1 AND status IN ('failed', 'expired', 'skipped')`
	newSendSQL = `UPDATE outbox SET retry_key = gen_random_uuid(), status = 'pending', attempts = 0,
		first_attempt_at = NULL, maybe_delivered = false, last_status_code = NULL, last_error = NULL,
		request_id = NULL, accepted_request_id = NULL, sent_message_ids = NULL, next_attempt_at = now()
		WHERE id = $1 AND status IN ('failed', 'expired', 'skipped', 'cancelled', 'uncertain') AND NOT maybe_delivered`
	copySQL = `INSERT INTO outbox (channel_id, endpoint, body, source_message_id, not_after, priority)
		SELECT channel_id, endpoint, body, source_message_id, not_after, priority FROM outbox
		WHERE id = $1 AND scrubbed_at IS NULL
		  AND status IN ('failed', 'expired', 'skipped', 'cancelled', 'uncertain') AND NOT maybe_delivered`
)

// TestOutboxOperatorSQL: a row failed by a rejected token is requeued
// with its key once the token is fixed; an expired row is sent anew with
// a new key; the key of a delivered row cannot be changed.
func TestOutboxOperatorSQL(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	exec := func(sql string, args ...any) int64 {
		t.Helper()
		tag, err := b.db.Pool.Exec(ctx, sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		return tag.RowsAffected()
	}
	exec(`UPDATE channels SET access_token = 'revoked-token' WHERE channel_id = $1`, b.channel)
	failed := b.insert(t, "push", pushBody(userID(1), "one"))
	// A row whose key was first used 23.5 hours ago.
	old := b.insert(t, "push", pushBody(userID(2), "two"))
	exec(`UPDATE outbox SET status = 'retrying', attempts = 1, first_attempt_at = now() - interval '23 hours 30 minutes' WHERE id = $1`, old)
	b.start(t, b.config("s"))
	before := b.waitStatus(t, failed, "failed")
	b.waitStatus(t, old, "expired")

	exec(`UPDATE channels SET access_token = NULL WHERE channel_id = $1`, b.channel)
	if n := exec(requeueSQL, failed); n != 1 {
		t.Fatalf("requeue touched %d rows", n)
	}
	after := b.waitStatus(t, failed, "delivered")
	if after.RetryKey != before.RetryKey {
		t.Fatal("requeue changed the retry key")
	}

	oldKey := b.row(t, old).RetryKey
	if n := exec(newSendSQL, old); n != 1 {
		t.Fatalf("new send touched %d rows", n)
	}
	fresh := b.waitStatus(t, old, "delivered")
	if fresh.RetryKey == oldKey || fresh.Attempts != 1 {
		t.Fatalf("new send: key %s (old %s), %d attempts", fresh.RetryKey, oldKey, fresh.Attempts)
	}
	if d := linefake.GroupBy(b.line.Accepted(), linefake.ByRetryKey); len(d) != 2 {
		t.Fatalf("LINE accepted %d keys, want 2", len(d))
	}

	for _, bad := range []string{
		`UPDATE outbox SET retry_key = gen_random_uuid() WHERE id = $1`,
		`UPDATE outbox SET body = '{"to":"` + userID(9) + `","messages":[{"type":"text","text":"changed"}]}' WHERE id = $1`,
	} {
		if _, err := b.db.Pool.Exec(ctx, bad, failed); err == nil || !strings.Contains(err.Error(), "outbox") {
			t.Fatalf("guard let %q through: %v", bad, err)
		}
	}
	if n := exec(newSendSQL, failed); n != 0 {
		t.Fatal("new send accepted a delivered row")
	}

	// Neither a new key nor a copy for a row that is delivered, or whose
	// earlier attempt may have reached LINE: either would send it twice.
	// A copy of a finished row LINE never had is a new row of its own.
	if n := exec(copySQL, failed); n != 0 {
		t.Fatal("copy accepted a delivered row")
	}
	maybe := b.insert(t, "push", pushBody(userID(3), "maybe"))
	exec(`UPDATE outbox SET status = 'expired', attempts = 1, first_attempt_at = now(), maybe_delivered = true,
		finished_at = now() WHERE id = $1`, maybe)
	if n := exec(newSendSQL, maybe); n != 0 {
		t.Fatal("new send accepted a row that may have been delivered")
	}
	if n := exec(copySQL, maybe); n != 0 {
		t.Fatal("copy accepted a row that may have been delivered")
	}
	exec(`UPDATE outbox SET maybe_delivered = false WHERE id = $1`, maybe)
	if n := exec(copySQL, maybe); n != 1 {
		t.Fatalf("copy of a finished, undelivered row inserted %d rows, want 1", n)
	}
}

// TestSenderRecipientCap: pushes to one user beyond the cap wait,
// postponed, while other users are served at once.
func TestSenderRecipientCap(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	var capped []int64
	for i := 0; i < 4; i++ {
		capped = append(capped, b.insert(t, "push", pushBody(userID(1), fmt.Sprint(i))))
	}
	other := b.insert(t, "push", pushBody(userID(2), "other"))
	cfg := b.config("s")
	cfg.RecipientCap = sender.Rate{Limit: 2, Per: 10 * time.Minute} // then one per 5 minutes
	b.start(t, cfg)
	b.waitStatus(t, other, "delivered")
	b.waitStatus(t, capped[0], "delivered")
	b.waitStatus(t, capped[1], "delivered")
	var pending int
	var next time.Time
	waitFor(t, "the capped rows to be postponed", func() (bool, string) {
		err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*), min(next_attempt_at) FROM outbox
			WHERE id = ANY($1) AND status = 'pending' AND attempts = 0`, capped[2:]).Scan(&pending, &next)
		return err == nil && pending == 2 && time.Until(next) > time.Minute, fmt.Sprint(pending, next, err)
	})
	if n := len(b.line.Accepted()); n != 3 {
		t.Fatalf("LINE accepted %d pushes, want 3", n)
	}
}

// BenchmarkDrain measures how fast one sender drains the outbox to the
// emulator with no faults: rows/s.
func BenchmarkDrain(bm *testing.B) {
	b := setupSender(bm, linefake.Config{RateLimits: linefake.RateLimits{Push: linefake.Unlimited}})
	ctx := context.Background()
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', json_build_object('to', 'U' || lpad(to_hex(g), 32, '0'),
			'messages', json_build_array(json_build_object('type', 'text', 'text', 'bench ' || g)))
		FROM generate_series(1, $2) AS g`, b.channel, bm.N); err != nil {
		bm.Fatal(err)
	}
	cfg := b.config("bench")
	cfg.Concurrency, cfg.BatchSize = 32, 100
	cfg.Rates = map[string]sender.Rate{"push": {}}
	bm.ResetTimer()
	start := time.Now()
	stop := b.start(bm, cfg)
	waitFor(bm, "the outbox to drain", func() (bool, string) {
		c := b.statusCounts(bm)
		return c["delivered"] == bm.N, fmt.Sprint(c)
	})
	bm.StopTimer()
	stop()
	bm.ReportMetric(float64(bm.N)/time.Since(start).Seconds(), "rows/s")
}

// TestSenderSendsStoredBytes: the body goes out exactly as enqueued
// (spacing, key order, escapes), on every attempt, so a retry with the
// same key is the same request LINE saw first.
func TestSenderSendsStoredBytes(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{Seed: 3, Faults: linefake.Faults{FailRate: 0.5}})
	ctx := context.Background()
	body := "{ \"messages\" : [ {\"text\":\"caf\\u00e9 \U0001F600\",  \"type\":\"text\"} ],\n  \"to\":\"" + userID(5) + "\" }"
	var ids []int64
	for i := 0; i < 10; i++ {
		id, err := store.EnqueueOutbox(ctx, b.db.Pool, store.OutboxInsert{ChannelID: b.channel, Endpoint: "push", Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := store.EnqueueOutbox(ctx, b.db.Pool, store.OutboxInsert{ChannelID: b.channel, Endpoint: "fax", Body: []byte(body)}); !errors.Is(err, store.ErrUnknownEndpoint) {
		t.Fatalf("unknown endpoint enqueued: %v", err)
	}
	b.start(t, b.config("s"))
	for _, id := range ids {
		b.waitStatus(t, id, "delivered")
	}
	for _, d := range b.line.Accepted() {
		if string(d.Body) != body {
			t.Fatalf("LINE received %q, stored %q", d.Body, body)
		}
	}
	if b.line.Stats().Count("push", 500) == 0 {
		t.Fatal("no attempt was retried")
	}
}
