package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/fixture"
)

// The gauges read what the tables and the stream hold: outbox depth and
// oldest-due age by endpoint and status, dead letters, and the consumer's
// pending and redelivered counts.
func TestStatsGauges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setup(t)
	m := NewMetrics(ops.NewRegistry())
	w := New(Config{AckWait: time.Second}, b.sc, b.js, b.db.Pool, m, zaptest.NewLogger(t))
	if _, err := b.stream.CreateOrUpdateConsumer(ctx, w.ConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	user := fixture.User(fixture.UserID(120))
	b.publish(t, "1650000120", fixture.Text(user, time.Now(), "a"), fixture.Text(user, time.Now(), "b"), fixture.Text(user, time.Now(), "c"))

	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, status, next_attempt_at, lease_until) VALUES
		('c', 'push', '{}', 'pending', now() - interval '10 minutes', NULL),
		('c', 'push', '{}', 'pending', now() - interval '1 minute', NULL),
		('c', 'reply', '{}', 'retrying', now() + interval '1 hour', NULL),
		('c', 'push', '{}', 'in_flight', now(), now() - interval '2 minutes'),
		('c', 'pussh', '{}', 'pending', now(), NULL),
		('c', 'push', '{}', 'delivered', now() - interval '1 day', NULL);
		INSERT INTO dead_letters (subject, stream_seq, deliveries, data, error, replay_requested_at) VALUES
		('s', 1, 1, '\x00', 'e', NULL), ('s', 2, 1, '\x00', 'e', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if err := w.RefreshStats(ctx, 0); err != nil {
		t.Fatal(err)
	}
	o := m.ops
	rows := func(e, s string) float64 { return testutil.ToFloat64(o.outboxRows.WithLabelValues(e, s)) }
	age := func(e, s string) float64 { return testutil.ToFloat64(o.outboxOldestDue.WithLabelValues(e, s)) }
	if rows("push", "pending") != 2 || age("push", "pending") < 599 || age("push", "pending") > 660 {
		t.Errorf("push pending: %v rows, oldest due %vs; want 2 and about 600s", rows("push", "pending"), age("push", "pending"))
	}
	if rows("reply", "retrying") != 1 || age("reply", "retrying") != 0 {
		t.Errorf("reply retrying, due in an hour: %v rows, oldest due %vs; want 1 and 0", rows("reply", "retrying"), age("reply", "retrying"))
	}
	if rows("push", "in_flight") != 1 || age("push", "in_flight") < 119 {
		t.Errorf("push in_flight: %v rows, lease expired %vs ago; want 1 and about 120s", rows("push", "in_flight"), age("push", "in_flight"))
	}
	if rows("other", "pending") != 1 || rows("broadcast", "pending") != 0 {
		t.Errorf("other pending %v, broadcast pending %v; want 1 and 0", rows("other", "pending"), rows("broadcast", "pending"))
	}
	if testutil.ToFloat64(o.deadLetters) != 2 || testutil.ToFloat64(o.replaysRequested) != 1 {
		t.Errorf("dead letters %v, replays requested %v; want 2 and 1", testutil.ToFloat64(o.deadLetters), testutil.ToFloat64(o.replaysRequested))
	}
	if got := testutil.ToFloat64(o.consumerPending); got != 3 {
		t.Errorf("consumer pending %v, want 3", got)
	}

	// The depth count stops at the cap, so a huge backlog costs no more.
	s, err := store.ReadStats(ctx, b.db.Pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, d := range s.Outbox {
		if d.Status != "in_flight" {
			counted += d.Rows
		}
	}
	if counted != 2 {
		t.Errorf("capped read counted %d waiting rows, want 2", counted)
	}

	// A message delivered and not acknowledged within AckWait comes back:
	// it shows as redelivered.
	cons, err := b.stream.Consumer(ctx, w.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(o.consumerRedelivered) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no redelivered message after 30s")
		}
		if b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil {
			for range b.Messages() {
			}
		}
		if err := w.RefreshStats(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// The store delay is measured from ingest's receipt (the
// Linepipe-Received-At header) to commit, for newly stored events only.
func TestStoreDelayHistogram(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := NewMetrics(ops.NewRegistry())
	w := New(Config{AckWait: time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool, m, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const channel = "1650000121"
	ev := fixture.Text(fixture.User(fixture.UserID(121)), time.Now(), "late")
	for i := 0; i < 2; i++ { // the second is a duplicate: not observed
		msg := nats.NewMsg(b.sc.EventSubject(channel))
		msg.Data, _ = json.Marshal(ev)
		events.Meta{ChannelID: channel, ReceivedAt: time.Now().Add(-5 * time.Second)}.SetHeaders(msg.Header)
		msg.Header[events.HeaderKind] = []string{events.KindEvent}
		if _, err := b.js.PublishMsg(ctx, msg); err != nil { // no Nats-Msg-Id: both reach the worker
			t.Fatal(err)
		}
	}
	b.waitStored(t, 1)
	var h dto.Metric
	if err := m.ops.storeDelay.Write(&h); err != nil {
		t.Fatal(err)
	}
	if n, sum := h.GetHistogram().GetSampleCount(), h.GetHistogram().GetSampleSum(); n != 1 || sum < 5 || sum > 60 {
		t.Fatalf("store delay: %d samples summing %vs; want 1 of about 5s", n, sum)
	}
}
