package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// runWorker runs w until the test ends or stop is called.
func runWorker(t *testing.T, w *Worker, loops int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < loops; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// A long outage of a read-only Postgres (a failover to a standby) makes
// many deliveries of every message; none of them counts, so the first
// failure of a message's own making after it does not dead-letter a good
// event: only the message's own failures decide.
func TestLongOutageNeverDeadLettersAGoodEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := setup(t)
	const channel, n = "1650000004", 5
	var evs []fixture.E
	for i := 0; i < n; i++ {
		evs = append(evs, fixture.Text(fixture.User(fixture.UserID(90+i)), time.Now(), "outage then a hiccup"))
	}
	b.publish(t, channel, evs...)

	// Postgres answers, but every write fails with 25006.
	ro, err := pgxpool.New(ctx, b.db.URL+"&default_transaction_read_only=on")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := Config{AckWait: time.Second, MaxAttempts: 2, IdleWait: 500 * time.Millisecond}
	stopSick := runWorker(t, New(cfg, b.sc, b.js, ro, NewMetrics(ops.NewRegistry()), zap.New(core)), 1)
	deadline := time.Now().Add(45 * time.Second)
	for logs.FilterMessage("batch failed transiently; retrying it later").Len() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not retry during the read-only outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopSick()
	if n := logs.FilterMessage("message dead-lettered").Len(); n != 0 {
		t.Fatalf("%d messages dead-lettered during a read-only outage", n)
	}

	// Postgres is writable again; bot logic fails once for each event
	// with an error of its own (not outage-shaped). Every message has
	// been delivered at least three times, more than MaxAttempts, yet
	// one failure of its own is one.
	var mu sync.Mutex
	failed := map[string]int{}
	flaky := HandlerFunc(func(_ context.Context, _ pgx.Tx, s Stored) error {
		mu.Lock()
		defer mu.Unlock()
		failed[s.Event.WebhookEventID]++
		if failed[s.Event.WebhookEventID] == 1 {
			return errors.New("bot logic hiccup")
		}
		return nil
	})
	runWorker(t, New(cfg, b.sc, b.js, b.db.Pool, NewMetrics(ops.NewRegistry()), zap.NewNop(), flaky), 1)
	b.waitStored(t, n)
	var dead, counts int
	if err := b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM worker_failures)`).
		Scan(&dead, &counts); err != nil {
		t.Fatal(err)
	}
	if dead != 0 || counts != 0 {
		t.Fatalf("%d dead letters, %d failure counts left; want none", dead, counts)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range evs {
		if failed[fixture.ID(e)] < 2 {
			t.Errorf("event %s reached the handler %d times", fixture.ID(e), failed[fixture.ID(e)])
		}
	}
}

// A message that fails through its own fault is dead-lettered after
// exactly MaxAttempts failures, with the count, and its failure row goes.
func TestOwnFailuresDeadLetterAtMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000005"
	bad := fixture.Text(fixture.User(fixture.UserID(95)), time.Now(), "always fails")
	b.publish(t, channel, bad)
	var mu sync.Mutex
	calls := 0
	failing := HandlerFunc(func(context.Context, pgx.Tx, Stored) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return errors.New("bot logic is broken")
	})
	w := New(Config{AckWait: time.Second, MaxAttempts: 3, IdleWait: 500 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop(), failing)
	runWorker(t, w, 1)
	b.waitStored(t, 0)
	deadline := time.Now().Add(30 * time.Second)
	var failures, deliveries, counts int
	for {
		err := b.db.Pool.QueryRow(ctx, `SELECT failures, deliveries, (SELECT count(*) FROM worker_failures)
			FROM dead_letters WHERE webhook_event_id = $1`, fixture.ID(bad)).Scan(&failures, &deliveries, &counts)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) || time.Now().After(deadline) {
			t.Fatalf("no dead letter: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// The batch attempt and the attempt alone both fail on the first
	// delivery; only failures alone count.
	if failures != 3 || deliveries != 3 || counts != 0 {
		t.Fatalf("dead letter after %d failures, %d deliveries, %d counts left; want 3, 3, 0 (handler ran %d times)",
			failures, deliveries, counts, calls)
	}
}

// An unsend that is itself dead-lettered (bot logic failing on unsend
// events) still takes its message back: tombstone, messages row, events.
func TestDeadLetteredUnsendStillScrubs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000011"
	src := fixture.User(fixture.UserID(96))
	msg := fixture.Text(src, time.Now().Add(-time.Minute), "take me back "+fixture.EventID())
	b.publish(t, channel, msg)
	w := New(Config{AckWait: time.Second, MaxAttempts: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop())
	stop := runWorker(t, w, 1)
	b.waitStored(t, 1)
	stop()

	failsOnUnsend := HandlerFunc(func(_ context.Context, _ pgx.Tx, s Stored) error {
		if s.Event.Type == "unsend" {
			return errors.New("bot logic fails on unsends")
		}
		return nil
	})
	b.publish(t, channel, fixture.Unsend(src, time.Now(), fixture.MsgID(msg)))
	runWorker(t, New(Config{AckWait: time.Second, MaxAttempts: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop(), failsOnUnsend), 1)
	b.waitStored(t, 1) // the unsend's own row is not stored: it was dead-lettered
	var dead, tomb, rows, readable int
	if err := b.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM unsent_messages),
			(SELECT count(*) FROM messages), (SELECT count(*) FROM events WHERE raw::text LIKE '%take me back%')`).
		Scan(&dead, &tomb, &rows, &readable); err != nil {
		t.Fatal(err)
	}
	if dead != 1 || tomb != 1 || rows != 0 || readable != 0 {
		t.Fatalf("dead letters %d, tombstones %d, messages %d, readable events %d; want 1, 1, 0, 0", dead, tomb, rows, readable)
	}
}
