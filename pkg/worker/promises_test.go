package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// consumerInfo is the durable consumer's state as JetStream reports it.
func (b *bundle) consumerInfo(t *testing.T, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := b.stream.Consumer(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// The worker acknowledges only after COMMIT succeeded. A constraint
// trigger deferred to COMMIT makes every commit fail after the batch was
// written; through the real consuming loop, nothing may be acknowledged
// (the messages stay on the work-queue stream) and nothing stored. Once
// commits succeed again, everything is stored.
func TestNothingIsAckedWhenCommitFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	if _, err := b.db.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '40001'; END $$;
		CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();`); err != nil {
		t.Fatal(err)
	}
	const channel = "1650000006"
	user := fixture.User(fixture.UserID(110))
	evs := []fixture.E{fixture.Text(user, time.Now(), "commit me"), fixture.Event("follow", user, time.Now()),
		fixture.Text(user, time.Now(), "and me")}
	b.publish(t, channel, evs...)

	core, logs := observer.New(zapcore.DebugLevel)
	w := New(Config{AckWait: time.Second, IdleWait: 500 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.New(core), EchoBot{})
	stop := runWorker(t, w, 2)
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessage("batch failed transiently; retrying it later").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the worker never saw its commit fail twice")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	info, err := b.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(evs)) {
		t.Fatalf("the stream holds %d of %d messages after failed commits: some were acknowledged", info.State.Msgs, len(evs))
	}
	var stored int
	if err := b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM outbox)`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Fatalf("%d rows survived a failed commit", stored)
	}

	if _, err := b.db.Pool.Exec(ctx, `DROP TRIGGER refuse_at_commit ON events`); err != nil {
		t.Fatal(err)
	}
	runWorker(t, New(Config{AckWait: time.Second, IdleWait: 500 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop(), EchoBot{}), 1)
	b.waitStored(t, len(evs))
}

// A batch that waits on a lock for longer than AckWait signals progress,
// so JetStream does not hand its messages to another loop meanwhile: one
// delivery each, one row each.
func TestSlowBatchIsNotRedelivered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000007"
	e := fixture.Text(fixture.User(fixture.UserID(111)), time.Now(), "slow")
	// Another transaction holds the event's unique key, uncommitted, for
	// three and a half AckWaits; the worker's insert waits behind it.
	tx := holdEventKey(t, b, channel, e)
	b.publish(t, channel, e)
	w := New(Config{AckWait: time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop())
	runWorker(t, w, 2)
	time.Sleep(3500 * time.Millisecond)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitStored(t, 1)
	info := b.consumerInfo(t, DefaultConsumer)
	if info.Delivered.Consumer != 1 {
		t.Fatalf("the message was delivered %d times while its batch was being stored; want 1", info.Delivered.Consumer)
	}
	var n int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE webhook_event_id = $1 AND raw::text <> '{}'`,
		fixture.ID(e)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows of the event (%v), want 1", n, err)
	}
}

// Unsend and store of the same message race in separate transactions on
// separate loops, with no help from the test: whatever the interleaving,
// the text never survives.
func TestUnsendAndStoreRaceLeaveNoText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel, pairs = "1650000008", 150
	var evs []fixture.E
	for i := 0; i < pairs; i++ {
		src := fixture.User(fixture.UserID(200 + i))
		m := fixture.Replyable(fixture.Text(src, time.Now(), fmt.Sprintf("race-secret-%d-%s", i, fixture.EventID())))
		evs = append(evs, m, fixture.Unsend(src, time.Now(), fixture.MsgID(m)))
	}
	b.publish(t, channel, evs...)
	w := New(Config{BatchSize: 1, AckWait: 5 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop(), EchoBot{})
	runWorker(t, w, 6)
	b.waitStored(t, len(evs))
	var msgs, raws, replies int
	if err := b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages),
			(SELECT count(*) FROM events WHERE raw::text LIKE '%race-secret%'),
			(SELECT count(*) FROM outbox WHERE body::text LIKE '%race-secret%' OR status <> 'cancelled')`).
		Scan(&msgs, &raws, &replies); err != nil {
		t.Fatal(err)
	}
	if msgs != 0 || raws != 0 || replies != 0 {
		t.Fatalf("after racing unsends: %d messages rows, %d events and %d replies still hold text", msgs, raws, replies)
	}
}
