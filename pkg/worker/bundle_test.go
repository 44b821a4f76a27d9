package worker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/fixture"
)

// publishBundle puts evs on the stream as one bundle, the way ingest
// does for concurrent webhooks; raw records are stored as given.
func (b *bundle) publishBundle(t *testing.T, channel string, evs []fixture.E, raw ...[]byte) {
	t.Helper()
	b.publishBundleBytes(t, events.EncodeBundle(bundleRecords(channel, evs, raw...)))
}

func (b *bundle) publishBundleBytes(t *testing.T, data []byte) {
	t.Helper()
	m := nats.NewMsg(b.sc.BundleSubject())
	m.Data = data
	m.Header[events.HeaderKind] = []string{events.KindBundle}
	if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// bundleRecords is evs and raw as the records of one bundle, with the
// headers ingest writes.
func bundleRecords(channel string, evs []fixture.E, raw ...[]byte) []events.Record {
	var recs []events.Record
	add := func(data []byte, id string) {
		h := nats.Header{}
		events.Meta{ChannelID: channel, ReceivedAt: time.Now()}.SetHeaders(h)
		h[events.HeaderKind] = []string{events.KindEvent}
		h[jetstream.MsgIDHeader] = []string{id}
		recs = append(recs, events.Record{Header: h, Data: data})
	}
	for _, e := range evs {
		data, _ := json.Marshal(e)
		add(data, fixture.ID(e))
	}
	for i, r := range raw {
		add(r, "raw-"+string(rune('a'+i)))
	}
	return recs
}

// A bundle's records are stored as events of their own, a poison record
// among them goes to dead_letters alone with its own bytes and subject,
// and the bundle leaves the stream once all of it is settled.
func TestBundleRecordsStoredOneByOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000031"
	evs := []fixture.E{
		fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "first of the bundle"),
		fixture.Text(fixture.User(fixture.UserID(2)), time.Now(), "second of the bundle"),
		fixture.Event("follow", fixture.User(fixture.UserID(3)), time.Now()),
	}
	poison := []byte("not json at all")
	b.publishBundle(t, channel, evs, poison)
	runWorker(t, New(Config{AckWait: 2 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop()), 1)
	b.waitStored(t, len(evs))

	rows, err := b.db.Pool.Query(ctx, `SELECT webhook_event_id, channel_id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ ID, Channel string }])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range evs {
		want[fixture.ID(e)] = true
	}
	for _, r := range got {
		if !want[r.ID] || r.Channel != channel {
			t.Errorf("stored %s on channel %s: not one of the bundle's events", r.ID, r.Channel)
		}
		delete(want, r.ID)
	}
	if len(want) != 0 {
		t.Errorf("events of the bundle not stored: %v", want)
	}
	var subject string
	var data []byte
	if err := b.db.Pool.QueryRow(ctx, `SELECT subject, data FROM dead_letters`).Scan(&subject, &data); err != nil {
		t.Fatalf("the poison record is not the one dead letter: %v", err)
	}
	if subject != b.sc.EventSubject(channel) || string(data) != string(poison) {
		t.Errorf("dead letter holds %q on %s; want the record's own bytes on its event subject", data, subject)
	}
}

// A damaged bundle whose unreadable rest may hold an unsend stores none
// of its messages: the message that unsend takes back may be one of them.
// They are held in dead_letters, where an unsend finds them by message
// id; the events without a message are stored. The README's procedure
// then applies the unsend found in the rest (make that row the event and
// replay it) and replays the held rows: the message is stored scrubbed,
// and its text is readable nowhere.
func TestDamagedBundleWithUnsendInRestHoldsItsMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000033"
	user := fixture.User(fixture.UserID(1))
	text := fixture.Text(user, time.Now(), "unsent in the damaged record")
	follow := fixture.Event("follow", fixture.User(fixture.UserID(2)), time.Now())
	earlier := fixture.Unsend(fixture.User(fixture.UserID(3)), time.Now(), "earlier-message")
	whole := events.EncodeBundle(bundleRecords(channel, []fixture.E{text, follow, earlier, fixture.Unsend(user, time.Now(), fixture.MsgID(text))}))
	b.publishBundleBytes(t, whole[:len(whole)-5])
	runWorker(t, New(Config{AckWait: 2 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop()), 1)
	b.waitStored(t, 2)

	var stored []string
	if err := b.db.Pool.QueryRow(ctx, `SELECT array_agg(webhook_event_id ORDER BY id) FROM events`).Scan(&stored); err != nil ||
		!slices.Equal(stored, []string{fixture.ID(follow), fixture.ID(earlier)}) {
		t.Fatalf("stored %q (%v); want the follow and the readable unsend, which carry no message to hold", stored, err)
	}
	letters := func() map[string]string { // subject → error
		rows, err := b.db.Pool.Query(ctx, `SELECT subject, coalesce(message_id, ''), error FROM dead_letters`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var subject, msg, errText string
			if err := rows.Scan(&subject, &msg, &errText); err != nil {
				t.Fatal(err)
			}
			out[subject+" "+msg] = errText
		}
		return out
	}
	dl := letters()
	held, rest := b.sc.EventSubject(channel)+" "+fixture.MsgID(text), b.sc.BundleSubject()+" "
	if len(dl) != 2 || !strings.HasPrefix(dl[held], "held back from a damaged bundle") || !strings.Contains(dl[rest], "malformed bundle") {
		t.Fatalf("dead letters %v; want the text held back under its message id, and the rest on the bundle subject", dl)
	}
	var seqs int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(DISTINCT stream_seq) FROM dead_letters`).Scan(&seqs); err != nil || seqs != 1 {
		t.Errorf("%d stream_seqs (%v); the held rows and the rest must share the bundle's", seqs, err)
	}

	// The README's procedure: apply the unsend found in the rest by
	// making that row the event and replaying it, then replay the rows
	// held back from the same bundle.
	unsend, _ := json.Marshal(fixture.Unsend(user, time.Now(), fixture.MsgID(text)))
	if _, err := b.db.Pool.Exec(ctx, `UPDATE dead_letters SET data = convert_to($1, 'UTF8'),
			headers = '{"Linepipe-Kind":["event"],"Linepipe-Channel":["1650000033"]}', replay_requested_at = now()
		WHERE subject LIKE '%.bundle'`, string(unsend)); err != nil {
		t.Fatal(err)
	}
	w := New(Config{}, b.sc, nil, b.db.Pool, NewMetrics(ops.NewRegistry()), zap.NewNop())
	var seq int64
	if err := b.db.Pool.QueryRow(ctx, `SELECT stream_seq FROM dead_letters LIMIT 1`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	// The README's statement, gated on the rest being gone: before the
	// unsend's replay it requests nothing, after it the held message.
	requestHeld := func() int64 {
		tag, err := b.db.Pool.Exec(ctx, `UPDATE dead_letters SET replay_requested_at = now()
			WHERE stream_seq = $1 AND error LIKE 'held back from a damaged bundle%'
			  AND NOT EXISTS (SELECT 1 FROM dead_letters r WHERE r.stream_seq = $1 AND r.subject LIKE '%.bundle')`, seq)
		if err != nil {
			t.Fatal(err)
		}
		return tag.RowsAffected()
	}
	if n := requestHeld(); n != 0 {
		t.Fatalf("held rows requested while the rest is still there: %d", n)
	}
	if done, err := w.ReplayOne(ctx); !done || err != nil {
		t.Fatalf("replaying the unsend: %v, %v", done, err)
	}
	if n := requestHeld(); n != 1 {
		t.Fatalf("held rows requested once the rest was replayed: %d, want the one message", n)
	}
	if done, err := w.ReplayOne(ctx); !done || err != nil {
		t.Fatalf("replaying the held message: %v, %v", done, err)
	}
	var tombstones, messageEvents, readable, left int
	if err := b.db.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM unsent_messages WHERE channel_id = $1 AND message_id = $2),
			(SELECT count(*) FROM events WHERE webhook_event_id = $3),
			(SELECT count(*) FROM events WHERE raw::text LIKE '%unsent in the damaged%')
				+ (SELECT count(*) FROM messages WHERE coalesce(text, '') || coalesce(content::text, '') LIKE '%unsent in the damaged%')
				+ (SELECT count(*) FROM dead_letters WHERE position('unsent in the damaged' IN encode(data, 'escape')) > 0),
			(SELECT count(*) FROM dead_letters)`,
		channel, fixture.MsgID(text), fixture.ID(text)).Scan(&tombstones, &messageEvents, &readable, &left); err != nil {
		t.Fatal(err)
	}
	if tombstones != 1 || messageEvents != 1 || readable != 0 || left != 0 {
		t.Errorf("after the procedure: %d tombstones, %d events rows of the message, %d readable copies, %d dead letters; want 1, 1, 0, 0",
			tombstones, messageEvents, readable, left)
	}
}

// A bundle unreadable from its first record has nothing to split off,
// so it is dead-lettered whole, never dropped.
func TestMalformedBundleIsDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := []byte{1, 0x7f, 'x'}
	b.publishBundleBytes(t, bad)
	runWorker(t, New(Config{AckWait: 2 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop()), 1)
	b.waitStored(t, 0)
	var data []byte
	var errText string
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT data, error FROM dead_letters`).Scan(&data, &errText); err != nil {
		t.Fatal(err)
	}
	if string(data) != string(bad) || errText == "" {
		t.Errorf("dead letter %q (%s); want the bundle's bytes and why", data, errText)
	}
}

// A bundle damaged part way stores the events before the damage, an
// unsend among them honoured, and dead-letters only the unreadable rest:
// one dead letter of the rest's own bytes, saying why, and the bundle
// leaves the stream.
func TestDamagedBundleStoresWhatIsReadable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000032"
	user := fixture.User(fixture.UserID(1))
	text := fixture.Text(user, time.Now(), "unsent before the damage")
	unsend := fixture.Unsend(user, time.Now(), fixture.MsgID(text))
	recs := bundleRecords(channel, []fixture.E{text, unsend, fixture.Text(user, time.Now(), "in the damaged record")})
	whole := events.EncodeBundle(recs)
	b.publishBundleBytes(t, whole[:len(whole)-5])
	runWorker(t, New(Config{AckWait: 2 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop()), 1)
	b.waitStored(t, 2)

	var readable int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE raw::text LIKE '%unsent before the damage%'`).
		Scan(&readable); err != nil || readable != 0 {
		t.Errorf("%d events rows still hold the unsent text (%v); the unsend before the damage must scrub it", readable, err)
	}
	var data []byte
	var subject, errText string
	if err := b.db.Pool.QueryRow(ctx, `SELECT data, subject, error FROM dead_letters`).Scan(&data, &subject, &errText); err != nil {
		t.Fatalf("the damaged rest is not the one dead letter: %v", err)
	}
	rest := whole[len(events.EncodeBundle(recs[:2])) : len(whole)-5]
	if string(data) != string(rest) || subject != b.sc.BundleSubject() || !strings.Contains(errText, "malformed bundle") {
		t.Errorf("dead letter %q on %s (%s); want the damaged record's bytes %q on the bundle's subject, and why",
			data, subject, errText, rest)
	}
}

// TestNewerBundleStaysOnTheStream checks a rolling upgrade that starts
// with ingest: a bundle in a format this worker does not read is neither
// dead-lettered nor acknowledged, but left on the stream for a newer
// worker, counted, while a bundle of this format behind it is stored.
func TestNewerBundleStaysOnTheStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := events.EncodeBundle([]events.Record{{Header: map[string][]string{events.HeaderChannel: {"1"},
		events.HeaderKind: {events.KindEvent}},
		Data: []byte(`{"type":"follow","webhookEventId":"01HNEWERBUNDLE0000000000001","timestamp":1,"source":{"type":"user","userId":"U1"}}`)}})
	newer := nats.NewMsg(b.sc.BundleSubject())
	newer.Data = append([]byte{good[0] + 1}, good[1:]...)
	newer.Header[events.HeaderKind] = []string{events.KindBundle}
	current := nats.NewMsg(b.sc.BundleSubject())
	current.Data = good
	current.Header[events.HeaderKind] = []string{events.KindBundle}
	for _, m := range []*nats.Msg{newer, current} {
		if _, err := b.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	metrics := NewMetrics(ops.NewRegistry())
	runWorker(t, New(Config{AckWait: 2 * time.Second, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		metrics, zap.NewNop()), 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var stored int
		if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == 1 && testutil.ToFloat64(metrics.newerBundles) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %d events stored, %v newer bundles counted; want 1 and 1", stored, testutil.ToFloat64(metrics.newerBundles))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var letters int
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM dead_letters`).Scan(&letters); err != nil {
		t.Fatal(err)
	}
	if letters != 0 {
		t.Errorf("%d dead letters; a newer bundle is not poison", letters)
	}
	// Past the purger's grace for the stored bundle, only the newer one is left.
	time.Sleep(PurgeGrace + time.Second)
	info, err := b.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.State.FirstSeq != 1 {
		t.Errorf("stream holds %d messages from seq %d; want the newer bundle alone (seq 1)", info.State.Msgs, info.State.FirstSeq)
	}
}

// recordingMsg is the stream message behind a bundle in the settle test:
// it records what the worker told JetStream about it.
type recordingMsg struct {
	jetstream.Msg
	mu    sync.Mutex
	calls []string
	delay time.Duration
	data  []byte
}

func (m *recordingMsg) record(c string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, c)
	return nil
}
func (m *recordingMsg) Data() []byte { return m.data }
func (m *recordingMsg) Ack() error   { return m.record("ack") }
func (m *recordingMsg) NakWithDelay(d time.Duration) error {
	m.delay = d
	return m.record("nak")
}
func (m *recordingMsg) InProgress() error { return m.record("progress") }
func (m *recordingMsg) Headers() nats.Header {
	return nats.Header{events.HeaderKind: []string{events.KindBundle}}
}

func bundleOf(t *testing.T, parent *recordingMsg, n int) []jetstream.Msg {
	t.Helper()
	recs := make([]events.Record, n)
	for i := range recs {
		recs[i] = events.Record{Header: map[string][]string{events.HeaderChannel: {"1"}}, Data: []byte("{}")}
	}
	parent.data = events.EncodeBundle(recs)
	x, err := expand(parent, stream.Config{SubjectPrefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return x.parts
}

// The bundle is acknowledged once, after its last record is settled, and
// never if any record asked for a retry: then it comes back whole after
// the longest delay asked.
func TestBundleSettlesOnlyWhenEveryRecordIs(t *testing.T) {
	t.Parallel()
	t.Run("all stored", func(t *testing.T) {
		parent := &recordingMsg{}
		parts := bundleOf(t, parent, 3)
		for i, p := range parts {
			if len(parent.calls) != 0 {
				t.Fatalf("bundle told %v before record %d was settled", parent.calls, i)
			}
			if err := p.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if err := parts[0].Ack(); !errors.Is(err, errSettled) {
			t.Errorf("a second ack of a record: %v, want errSettled", err)
		}
		if len(parent.calls) != 1 || parent.calls[0] != "ack" {
			t.Errorf("bundle got %v, want one ack", parent.calls)
		}
	})
	t.Run("one retry", func(t *testing.T) {
		parent := &recordingMsg{}
		parts := bundleOf(t, parent, 3)
		_ = parts[0].NakWithDelay(2 * time.Second)
		_ = parts[1].Term() // dead-lettered: settled
		_ = parts[2].NakWithDelay(5 * time.Second)
		if len(parent.calls) != 1 || parent.calls[0] != "nak" || parent.delay != 5*time.Second {
			t.Errorf("bundle got %v (delay %s), want one nak after 5s", parent.calls, parent.delay)
		}
	})
	t.Run("progress is throttled", func(t *testing.T) {
		parent := &recordingMsg{}
		parts := bundleOf(t, parent, 50)
		for _, p := range parts {
			_ = p.InProgress()
		}
		if len(parent.calls) != 1 {
			t.Errorf("bundle got %d progress signals for one round over its records, want 1", len(parent.calls))
		}
	})
}
