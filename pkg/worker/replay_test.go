package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/fixture"
)

// flakyBot is bot logic with a bug an operator can fix: while broken it
// fails every message event; fixed, it records each event it saw in the
// outbox (in the storing transaction), with whether it was unsent.
type flakyBot struct {
	broken atomic.Bool
	seen   atomic.Int64
}

func (f *flakyBot) Handle(ctx context.Context, tx pgx.Tx, s Stored) error {
	if s.Event.Type != events.TypeMessage {
		return nil
	}
	if f.broken.Load() {
		return errors.New("bot bug: cannot handle this message")
	}
	f.seen.Add(1)
	body := `{"to":"U0","messages":[{"type":"text","text":"handled"}]}`
	if s.Unsent {
		body = `{"to":"U0","messages":[{"type":"text","text":"unsent"}]}`
	}
	_, err := store.EnqueueOutbox(ctx, tx, store.OutboxInsert{ChannelID: s.ChannelID, Endpoint: "push", Body: []byte(body)})
	return err
}

// replayRig is a worker consuming a test stream with a flakyBot, and its
// replay loop polling every 20ms.
type replayRig struct {
	*bundle
	bot     *flakyBot
	w       *Worker
	metrics *Metrics
}

func newReplayRig(t *testing.T) *replayRig {
	t.Helper()
	r := &replayRig{bundle: setup(t), bot: &flakyBot{}}
	r.bot.broken.Store(true)
	r.metrics = NewMetrics(ops.NewRegistry())
	r.w = New(Config{AckWait: time.Second, IdleWait: 200 * time.Millisecond, MaxAttempts: 1},
		r.sc, r.js, r.db.Pool, r.metrics, zaptest.NewLogger(t), r.bot)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = r.w.Run(ctx); done <- struct{}{} }()
	go func() { r.w.RunReplays(ctx, 20*time.Millisecond); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return r
}

// waitFor polls a boolean query until it is true, failing after 30 s.
func (r *replayRig) waitFor(t *testing.T, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		if err := r.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&ok); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", sql)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReplays waits until the replay counter for result reaches want,
// failing after 30 s. A replay counts itself after its commit, so the
// rows it changed can be seen a moment before the counter moves.
func (r *replayRig) waitReplays(t *testing.T, result string, want float64) {
	t.Helper()
	c := r.metrics.ops.replays.WithLabelValues(result)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(c) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := testutil.ToFloat64(c); got != want {
		t.Fatalf("%s replays counted %v, want %v", result, got, want)
	}
}

func (r *replayRig) requestReplay(t *testing.T, webhookEventID string) {
	t.Helper()
	tag, err := r.db.Pool.Exec(context.Background(),
		`UPDATE dead_letters SET replay_requested_at = now() WHERE webhook_event_id = $1`, webhookEventID)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("requesting replay of %s: %v (%d rows)", webhookEventID, err, tag.RowsAffected())
	}
}

// A handler bug dead-letters an event; a replay while the bug is still
// there fails and says so on the row; once the bug is fixed, one UPDATE
// stores the event through the normal path and removes the dead letter.
func TestDeadLetterReplayAfterHandlerFix(t *testing.T) {
	t.Parallel()
	r := newReplayRig(t)
	const channel = "1650000101"
	ev := fixture.Text(fixture.User(fixture.UserID(101)), time.Now(), "replay me")
	id := events.DedupID(channel, fixture.ID(ev), nil)
	r.publish(t, channel, ev)
	r.waitFor(t, `SELECT count(*) = 1 FROM dead_letters WHERE webhook_event_id = $1 AND error LIKE '%bot bug%'`, id)

	// Still broken: the replay fails, the row keeps the new error and
	// counts the attempt, and waits for the operator again.
	if _, err := r.db.Pool.Exec(context.Background(), `UPDATE dead_letters SET error = 'old' WHERE webhook_event_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	r.requestReplay(t, id)
	r.waitFor(t, `SELECT count(*) = 1 FROM dead_letters WHERE webhook_event_id = $1 AND replay_attempts = 1
		AND replay_requested_at IS NULL AND replayed_at IS NOT NULL AND error LIKE '%bot bug%'`, id)
	if n := r.count(t, `SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("a failed replay left %d events stored", n)
	}

	r.bot.broken.Store(false)
	r.requestReplay(t, id)
	r.waitFor(t, `SELECT count(*) = 0 FROM dead_letters`)
	if n := r.count(t, `SELECT count(*) FROM events WHERE webhook_event_id = $1 AND raw->'message'->>'text' = 'replay me'`, id); n != 1 {
		t.Fatalf("%d events stored by the replay, want 1", n)
	}
	if n := r.count(t, `SELECT count(*) FROM messages WHERE text = 'replay me'`); n != 1 {
		t.Fatalf("%d messages rows, want 1", n)
	}
	// The handler ran in the storing transaction, once.
	if n := r.count(t, `SELECT count(*) FROM outbox WHERE body->'messages'->0->>'text' = 'handled'`); n != 1 || r.bot.seen.Load() != 1 {
		t.Fatalf("handler effects %d, calls %d; want 1 and 1", n, r.bot.seen.Load())
	}
	r.waitReplays(t, replayStored, 1)
	r.waitReplays(t, replayFailed, 1)

	// Replaying an event already stored (LINE redelivered it meanwhile) is
	// a duplicate: no second row, no second handler run, dead letter gone.
	if _, err := r.db.Pool.Exec(context.Background(), `INSERT INTO dead_letters (subject, stream_seq, deliveries,
			channel_id, webhook_event_id, headers, data, error, replay_requested_at)
		SELECT 'replayed', 1, 1, channel_id, webhook_event_id, $2::json, convert_to(raw::text, 'UTF8'), 'x', now()
		FROM events WHERE webhook_event_id = $1`, id, `{"Linepipe-Channel":["`+channel+`"],"Linepipe-Kind":["event"]}`); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, `SELECT count(*) = 0 FROM dead_letters`)
	if n := r.count(t, `SELECT count(*) FROM events`); n != 1 || r.bot.seen.Load() != 1 {
		t.Fatalf("duplicate replay: %d events, %d handler calls", n, r.bot.seen.Load())
	}
	r.waitReplays(t, replayDuplicate, 1)
}

// A dead letter whose message was unsent meanwhile is replayed as the late
// copy it is: stored scrubbed, no message row, the handler told it was
// unsent. The same holds after retention removed the tombstone: the
// scrubbed dead letter restores it.
func TestDeadLetterReplayOfUnsentMessageStaysScrubbed(t *testing.T) {
	t.Parallel()
	r := newReplayRig(t)
	const channel = "1650000102"
	user := fixture.User(fixture.UserID(102))
	for _, dropTombstone := range []bool{false, true} {
		msg := fixture.Text(user, time.Now(), "secret words")
		id := events.DedupID(channel, fixture.ID(msg), nil)
		r.bot.broken.Store(true)
		r.publish(t, channel, msg)
		r.waitFor(t, `SELECT count(*) = 1 FROM dead_letters WHERE webhook_event_id = $1`, id)

		unsend := fixture.Unsend(user, time.Now(), fixture.MsgID(msg))
		r.publish(t, channel, unsend)
		r.waitFor(t, `SELECT count(*) = 1 FROM dead_letters WHERE webhook_event_id = $1 AND scrubbed_at IS NOT NULL
			AND position('secret words' in convert_from(data, 'UTF8')) = 0`, id)
		if dropTombstone {
			if _, err := r.db.Pool.Exec(context.Background(), `DELETE FROM unsent_messages WHERE message_id = $1`, fixture.MsgID(msg)); err != nil {
				t.Fatal(err)
			}
		}

		r.bot.broken.Store(false)
		r.requestReplay(t, id)
		r.waitFor(t, `SELECT count(*) = 0 FROM dead_letters WHERE webhook_event_id = $1`, id)
		var raw string
		var scrubbed bool
		if err := r.db.Pool.QueryRow(context.Background(), `SELECT raw::text, scrubbed_at IS NOT NULL FROM events
			WHERE webhook_event_id = $1`, id).Scan(&raw, &scrubbed); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, "secret words") || !scrubbed {
			t.Fatalf("tombstone dropped %v: replayed copy not scrubbed: %s (scrubbed_at set %v)", dropTombstone, raw, scrubbed)
		}
		if n := r.count(t, `SELECT count(*) FROM messages WHERE message_id = $1`, fixture.MsgID(msg)); n != 0 {
			t.Fatalf("tombstone dropped %v: replay stored the unsent message", dropTombstone)
		}
		if n := r.count(t, `SELECT count(*) FROM unsent_messages WHERE message_id = $1`, fixture.MsgID(msg)); n != 1 {
			t.Fatalf("tombstone dropped %v: %d tombstones after replay, want 1", dropTombstone, n)
		}
	}
	if n := r.count(t, `SELECT count(*) FROM outbox WHERE body::text LIKE '%handled%'`); n != 0 {
		t.Fatal("the handler treated an unsent message as readable")
	}
	if n := r.count(t, `SELECT count(*) FROM outbox WHERE body->'messages'->0->>'text' = 'unsent'`); n != 2 {
		t.Fatalf("handler saw %d unsent replays, want 2", n)
	}
}

func (r *replayRig) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := r.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Replicas replaying at once share the requested rows: each dead letter
// is stored once, its handler runs once, and every row is gone.
func TestDeadLetterReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setup(t)
	bot := &flakyBot{}
	const channel, n = "1650000103", 40
	user := fixture.User(fixture.UserID(103))
	for i := 0; i < n; i++ {
		raw, _ := json.Marshal(fixture.Text(user, time.Now(), fmt.Sprint("replica ", i)))
		if _, err := b.db.Pool.Exec(ctx, `INSERT INTO dead_letters (subject, stream_seq, deliveries, channel_id, headers, data, error, replay_requested_at)
			VALUES ('s', $1, 5, $2, $3::json, $4, 'bot bug', now())`, i+1, channel,
			`{"Linepipe-Channel":["`+channel+`"],"Linepipe-Kind":["event"]}`, raw); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		w := New(Config{}, b.sc, b.js, b.db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t), bot)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				done, err := w.ReplayOne(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !done {
					return
				}
			}
		}()
	}
	wg.Wait()
	if left := (&replayRig{bundle: b}).count(t, `SELECT count(*) FROM dead_letters`); left != 0 {
		t.Fatalf("%d dead letters left", left)
	}
	if got := (&replayRig{bundle: b}).count(t, `SELECT count(DISTINCT raw->'message'->>'text') FROM events`); got != n || bot.seen.Load() != n {
		t.Fatalf("%d distinct events stored, %d handler runs; want %d and %d", got, bot.seen.Load(), n, n)
	}
}
