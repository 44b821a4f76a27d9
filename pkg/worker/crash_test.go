package worker

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// A worker that dies after its transaction committed but before it acked
// leaves messages that are redelivered. The redelivery must change
// nothing: no second row, no second state change, no second reply.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setup(t)
	db, sc, js, s := b.db, b.sc, b.js, b.stream
	log := zaptest.NewLogger(t)
	const channel = "1650000002"
	user := fixture.User(fixture.UserID(40))
	evs := []fixture.E{
		fixture.Text(user, time.Now(), "echo me once"),
		fixture.Event("follow", user, time.Now()),
		fixture.Text(user, time.Now(), "and me once"),
	}
	b.publish(t, channel, evs...)

	w := New(Config{AckWait: time.Second, IdleWait: time.Second}, sc, js, db.Pool, NewMetrics(ops.NewRegistry()), log, EchoBot{})
	cons, err := s.CreateOrUpdateConsumer(ctx, w.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The doomed worker: fetch, commit, and die before acking.
	msgs, err := w.fetch(cons, w.fetchSize())
	if err != nil || len(msgs) != len(evs) {
		t.Fatalf("fetched %d messages (%v), want %d", len(msgs), err, len(evs))
	}
	var items []*item
	for _, m := range msgs {
		it, err := decode(m, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if err := w.persist(ctx, items); err != nil {
		t.Fatal(err)
	}

	// Its successor gets the redeliveries once AckWait has passed.
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	b.waitStored(t, len(evs))
	wcancel()
	<-done

	counts := map[string]int{
		`SELECT count(*) FROM events`:                          3,
		`SELECT count(*) FROM messages`:                        2,
		`SELECT count(*) FROM followers WHERE following`:       1,
		`SELECT count(*) FROM outbox WHERE endpoint = 'reply'`: 2,
	}
	for q, want := range counts {
		var got int
		if err := db.Pool.QueryRow(ctx, q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}
