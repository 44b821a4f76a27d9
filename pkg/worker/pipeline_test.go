package worker

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// While a loop stores one batch, it has already fetched and decoded the
// next, and no more: two batches in hand. Both are still stored and
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
	// Another transaction holds the first event's unique key, uncommitted,
	// so the first batch cannot commit until it ends.
	tx, err := b.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO events (webhook_event_id, channel_id, type, event_time, received_at, raw)
		VALUES ($1, $2, 'message', now(), now(), '{}')`, fixture.ID(evs[0]), channel); err != nil {
		t.Fatal(err)
	}
	b.publish(t, channel, evs...)
	w := New(Config{BatchSize: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop())
	stop := runWorker(t, w, 1)

	inHand := func() int {
		c, err := b.stream.Consumer(ctx, DefaultConsumer)
		if err != nil {
			return 0 // not made yet
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending
	}
	deadline := time.Now().Add(10 * time.Second)
	for inHand() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not fetch the next batch while one was being stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := inHand(); n != 2 {
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
		if want := map[bool]int{true: 1, false: 0}[i < 2]; n != want {
			t.Errorf("event %d: %d rows after the stop, want %d", i+1, n, want)
		}
	}
	info := b.consumerInfo(t, DefaultConsumer)
	if info.NumAckPending != 0 || info.NumPending != 1 {
		t.Fatalf("after the stop: %d unacknowledged, %d never fetched; want 0 and 1", info.NumAckPending, info.NumPending)
	}
}
