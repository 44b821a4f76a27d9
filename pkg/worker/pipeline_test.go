package worker

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// Under a backlog (every fetch comes back full: here a batch size of
// one), a loop that stores one batch has already fetched and decoded
// the next, and no more: two batches in hand. Both are still stored and
// acknowledged when the worker is stopped meanwhile, and the batch after
// them is left on the stream for the next worker.
func TestNextBatchWaitsDecodedWhileOneStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000011"
	var evs []fixture.E
	for i := range 3 {
		evs = append(evs, fixture.Text(fixture.User(fixture.UserID(120+i)), time.Now(), "pipelined"))
	}
	tx := holdEventKey(t, b, channel, evs[0])
	b.publish(t, channel, evs...)
	w := New(Config{BatchSize: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop())
	stop := runWorker(t, w, 1)

	b.waitInHand(t, 2)
	time.Sleep(300 * time.Millisecond)
	if n := b.inHand(t); n != 2 {
		t.Fatalf("%d messages in hand while one batch was being stored; want 2", n)
	}

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(200 * time.Millisecond)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop after its batches in hand were stored")
	}
	for i, e := range evs {
		var n int
		if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE webhook_event_id = $1`,
			fixture.ID(e)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		want := 0
		if i < 2 {
			want = 1
		}
		if n != want {
			t.Errorf("event %d: %d rows after the stop, want %d", i+1, n, want)
		}
	}
	info := b.consumerInfo(t, DefaultConsumer)
	if info.NumAckPending != 0 || info.NumPending != 1 {
		t.Fatalf("after the stop: %d unacknowledged, %d never fetched; want 0 and 1", info.NumAckPending, info.NumPending)
	}
}

// Without a backlog (a fetch that was not full) a loop fetches nothing
// more until its batch is stored: a message that arrives meanwhile stays
// on the stream for whichever loop is free, instead of waiting behind
// this loop's commit.
func TestQuietStreamIsNotFetchedAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000012"
	first := fixture.Text(fixture.User(fixture.UserID(130)), time.Now(), "quiet")
	next := fixture.Text(fixture.User(fixture.UserID(131)), time.Now(), "quiet")
	tx := holdEventKey(t, b, channel, first)
	b.publish(t, channel, first)
	w := New(Config{IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop())
	runWorker(t, w, 1)

	b.waitInHand(t, 1)
	b.publish(t, channel, next)
	time.Sleep(300 * time.Millisecond)
	if n := b.inHand(t); n != 1 {
		t.Fatalf("%d messages in hand while a batch that was not full was being stored; want 1", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitStored(t, 2)
}

// holdEventKey inserts e's events row in a transaction left open, so a
// worker batch holding e cannot commit until the test rolls it back.
func holdEventKey(t *testing.T, b *bundle, channel string, e fixture.E) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `INSERT INTO events (webhook_event_id, channel_id, type, event_time, received_at, raw)
		VALUES ($1, $2, 'message', now(), now(), '{}')`, fixture.ID(e), channel); err != nil {
		t.Fatal(err)
	}
	return tx
}

// inHand is how many messages the worker consumer has delivered and not
// yet had acknowledged (0 before the consumer exists).
func (b *bundle) inHand(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	c, err := b.stream.Consumer(ctx, DefaultConsumer)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending
}

// waitInHand waits until at least n messages are in hand, failing after 10 s.
func (b *bundle) waitInHand(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.inHand(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d messages in hand after 10s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
