package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// fetchTracked fetches n messages of the worker's consumer, tracked by p.
func fetchTracked(t *testing.T, cons jetstream.Consumer, p *purger, n int) []jetstream.Msg {
	t.Helper()
	b, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, trackedMsg{Msg: m, p: p})
	}
	if len(msgs) != n {
		t.Fatalf("fetched %d of %d messages", len(msgs), n)
	}
	return msgs
}

// waitMsgs polls until the stream holds want messages.
func waitMsgs(t *testing.T, st jetstream.Stream, want uint64, round func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		round()
		info, err := st.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %d messages, want %d", info.State.Msgs, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPurgerRemovesWhatWasSettled: the stream keeps its messages (limits
// retention), so the worker must remove what it stored. Below the floor a
// purge removes them; a settled message held above the floor by an
// earlier one that waits (for a retry, say) is deleted on its own after
// PurgeGrace, and never a message that is not settled.
func TestPurgerRemovesWhatWasSettled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if got := b.stream.CachedInfo().Config.Retention; got != jetstream.LimitsPolicy {
		t.Fatalf("a new stream has retention %v, want limits", got)
	}
	w := New(Config{}, b.sc, b.js, nil, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	cons, err := b.stream.CreateOrUpdateConsumer(ctx, w.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	// JetStream moves the ack floor past a message that reaches the
	// consumer's delivery cap, and everything below the floor is purged:
	// the cap must be one no retry schedule reaches.
	if md := cons.CachedInfo().Config.MaxDeliver; md != -1 && md < 1<<30 {
		t.Fatalf("consumer MaxDeliver %d: a message retried that often would be purged unstored", md)
	}
	for range 6 {
		b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"))
	}
	clock := testenv.NewClock(time.Now())
	p := newPurger(b.stream, cons, time.Millisecond, clock.Now, zaptest.NewLogger(t), w.metrics.ops.purgeFailures)
	msgs := fetchTracked(t, cons, p, 6)

	// 1 and 2 stored: the floor passes them and a purge removes them.
	for _, m := range msgs[:2] {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	waitMsgs(t, b.stream, 4, func() { p.round(ctx) })

	// 3 waits for a retry; 4 and 5 are stored. Within the grace they stay.
	if err := msgs[2].NakWithDelay(time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[3:5] {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let NATS apply the acks
	p.round(ctx)
	if info, _ := b.stream.Info(ctx); info.State.Msgs != 4 {
		t.Fatalf("the stream holds %d messages within the grace, want 4", info.State.Msgs)
	}
	// Past the grace, 4 and 5 go on their own; 3 (waiting) and 6 (in
	// flight) stay.
	clock.Advance(PurgeGrace + time.Second)
	waitMsgs(t, b.stream, 2, func() { p.round(ctx) })
	for _, seq := range []uint64{3, 6} {
		if _, err := b.stream.GetMsg(ctx, seq); err != nil {
			t.Errorf("message %d, not settled, was removed: %v", seq, err)
		}
	}
	if n := p.pending(); n != 0 {
		t.Errorf("%d settled messages still tracked after their removal", n)
	}
	// A terminated (dead-lettered) message counts as settled too.
	if err := msgs[5].Term(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(PurgeGrace + time.Second)
	waitMsgs(t, b.stream, 1, func() { p.round(ctx) })
	if got := testutil.ToFloat64(w.metrics.ops.purgeFailures); got != 0 {
		t.Fatalf("%v purge failures counted while NATS answered", got)
	}

	// A round NATS refuses (here the stream is gone) is counted for the
	// operator's alert, and the next waits longer.
	if err := b.js.DeleteStream(ctx, b.sc.Stream); err != nil {
		t.Fatal(err)
	}
	p.settledMsg(7)
	p.round(ctx)
	if got := testutil.ToFloat64(w.metrics.ops.purgeFailures); got != 1 {
		t.Errorf("%v purge failures counted after a refused round, want 1", got)
	}
	if d := p.delay(); d != 2*time.Millisecond {
		t.Errorf("next round in %s after a failure, want the interval doubled", d)
	}
}

// TestWorkerEmptiesTheStreamAndStops: the worker's own purger, started by
// its loops, removes everything they stored, including the last batch
// before shutdown.
func TestWorkerEmptiesTheStreamAndStops(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 40 {
		b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"))
	}
	w := New(Config{IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	b.waitStored(t, 40)
	b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"))
	b.waitStored(t, 41)
	cancel()
	wg.Wait()
	if info, _ := b.stream.Info(context.Background()); info.State.Msgs != 0 {
		t.Fatalf("%d messages left on the stream after the worker stopped", info.State.Msgs)
	}
	if w.purge.current.Load() != nil {
		t.Fatal("the purger outlived the worker's loops")
	}
}

// TestWorkQueueStreamKeptAsIs: a stream made with work-queue retention
// cannot be changed in place by NATS. Every stage keeps it as it is (and
// the worker warns) instead of failing to start, and the documented move
// to limits retention works under a running worker.
func TestWorkQueueStreamKeptAsIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	sc := stream.Config{URL: testenv.NATSURL(t), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(sc, "test", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	old := sc.StreamConfig()
	old.Retention = jetstream.WorkQueuePolicy
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), sc.Stream) })
	st, err := stream.Ensure(ctx, js, sc)
	if err != nil {
		t.Fatalf("ensuring a work-queue stream: %v", err)
	}
	if got := st.CachedInfo().Config.Retention; got != jetstream.WorkQueuePolicy {
		t.Fatalf("retention %v after Ensure, want the stream's own work queue", got)
	}
	b := &bundle{db: db, sc: sc, js: js, stream: st}
	b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"), fixture.Text(fixture.User(fixture.UserID(2)), time.Now(), "hi"))
	w := New(Config{IdleWait: 200 * time.Millisecond}, sc, js, db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(rctx) }()
	b.waitStored(t, 2)
	if w.purge.current.Load() != nil {
		t.Error("a purger runs on a work-queue stream")
	}

	// Moving to limits retention (README, Migrations and upgrades): the
	// emptied stream is deleted and ingest makes it anew; the running
	// worker makes its consumer again and purges what it stores.
	if err := js.DeleteStream(ctx, sc.Stream); err != nil {
		t.Fatal(err)
	}
	if b.stream, err = stream.Ensure(ctx, js, sc); err != nil {
		t.Fatal(err)
	}
	if got := b.stream.CachedInfo().Config.Retention; got != jetstream.LimitsPolicy {
		t.Fatalf("the stream made anew has retention %v, want limits", got)
	}
	b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(3)), time.Now(), "after the move"))
	b.waitStored(t, 3)
	if w.purge.current.Load() == nil {
		t.Error("no purger runs on the stream made anew with limits retention")
	}
	cancel()
	<-done
}

// TestWorkerRecreatesItsConsumer: an operator who deletes the stream's
// consumer (moving a work-queue stream to limits retention, say) does
// not leave running workers fetching from nothing: they make it again
// and go on storing.
func TestWorkerRecreatesItsConsumer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(Config{IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"))
	b.waitStored(t, 1)
	if err := b.stream.DeleteConsumer(context.Background(), w.cfg.Consumer); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(2)), time.Now(), "again"))
	b.waitStored(t, 2)
	cancel()
	<-done
}

// staleFloor is the consumer read before its last acknowledgements were
// applied: acks go without waiting for NATS, so a stopping worker's final
// round can read a floor that has not passed what it just stored.
type staleFloor struct{ purgeConsumer }

func (s staleFloor) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	ci, err := s.purgeConsumer.Info(ctx)
	if err != nil {
		return nil, err
	}
	c := *ci
	c.AckFloor = jetstream.SequenceInfo{}
	return &c, nil
}

// TestFinalRoundRemovesWhatTheFloorHasNotPassed: when the worker stops,
// its purger's last round deletes every message it stored that the floor
// has not passed, however recently settled: no later round of this
// process would, and a stored message left on the stream stays readable
// there after its unsend. A message not settled stays.
func TestFinalRoundRemovesWhatTheFloorHasNotPassed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := New(Config{}, b.sc, b.js, nil, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	cons, err := b.stream.CreateOrUpdateConsumer(ctx, w.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		b.publish(t, "C1", fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "hi"))
	}
	p := newPurger(b.stream, staleFloor{cons}, time.Hour, time.Now, zaptest.NewLogger(t), w.metrics.ops.purgeFailures)
	msgs := fetchTracked(t, cons, p, 3)
	for _, m := range msgs[:2] {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	stopped, stop := context.WithCancel(ctx)
	stop()
	p.run(stopped)
	info, err := b.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the stream holds %d messages after the final round, want 1 (the one not settled)", info.State.Msgs)
	}
	if _, err := b.stream.GetMsg(ctx, 3); err != nil {
		t.Fatalf("message 3, not settled, was removed: %v", err)
	}
}
