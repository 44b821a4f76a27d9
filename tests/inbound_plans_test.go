package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
)

// unsendGrownTables are the tables an unsend reads by message that grow
// with traffic.
var unsendGrownTables = []string{"messages", "events", "unsent_messages", "message_content", "outbox", "dead_letters"}

// TestUnsendPlansStayIndexed: the worker's unsend statements, and the
// tombstone lookup every batch makes, keep finding a message's rows
// through indexes however small the tables were when the statements were
// first planned. Postgres plans a prepared statement generically after
// five runs and keeps that plan until the table is next analyzed; planned
// on near-empty tables, the delete of messages rows and the lookup of a
// hundred keys' tombstones hashed a sequential scan of the table, and
// other plans looked each key up by channel alone.
func TestUnsendPlansStayIndexed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection, so every statement is prepared and planned where
	// the later unsends run; rows go in through another.
	db, pool := oneConnection(t)
	const channel = "1650000077"
	n := 0
	// stored writes the next message through the other connection.
	stored := func() string {
		t.Helper()
		n++
		id := fmt.Sprintf("plan%06d", n)
		storeMessage(t, db.Pool, channel, id)
		return id
	}
	unsend := func(id string) {
		t.Helper()
		unsendBatch(t, pool, store.MessageKey{ChannelID: channel, MessageID: id})
	}
	// Past the five custom plans, on near-empty tables.
	for i := 0; i < 8; i++ {
		unsend(stored())
	}
	// A day's traffic: thousands of messages of the same channel, their
	// events and content, echo replies and dead letters, and a month's
	// tombstones (a hundred keys are looked up by scanning 5,000 of them,
	// rightly, but not 100,000).
	if _, err := db.Pool.Exec(ctx, `
		WITH g AS (SELECT 'grown' || i AS id, i FROM generate_series(1, 5000) i),
		m AS (INSERT INTO messages (channel_id, message_id, type, user_id, sent_at, text, content, content_at, webhook_event_id)
			SELECT $1, id, 'image', 'U' || (i % 7), now(), NULL, '{}', now(), 'ev-' || id FROM g),
		e AS (INSERT INTO events (webhook_event_id, channel_id, destination, type, event_time, received_at, message_id, raw)
			SELECT 'ev-' || id, $1, 'Udest', 'message', now(), now(), id,
				json_build_object('type', 'message', 'message', json_build_object('id', id, 'type', 'image')) FROM g),
		c AS (INSERT INTO message_content (channel_id, message_id, message_type) SELECT $1, id, 'image' FROM g),
		o AS (INSERT INTO outbox (channel_id, endpoint, body, source_message_id)
			SELECT $1, 'push', '{"to":"U1","messages":[{"type":"text","text":"hi"}]}', id FROM g),
		d AS (INSERT INTO dead_letters (subject, stream_seq, deliveries, channel_id, message_id, data, error)
			SELECT 'linepipe.events', i, 1, $1, id, '\x7b7d', 'handler failed' FROM g)
		INSERT INTO unsent_messages (channel_id, message_id, unsent_at, webhook_event_id)
			SELECT $1, 'gone' || i, now(), 'ev-gone' || i FROM generate_series(1, 100000) i`, channel); err != nil {
		t.Fatal(err)
	}
	// The messages to unsend go in first, through the other connection,
	// whose counters are published before the first reading.
	measured := []string{stored(), stored(), stored()}
	publishStats(t, db.Pool)
	before := tableScans(t, pool, unsendGrownTables...)
	for _, id := range measured {
		unsend(id)
	}
	after := tableScans(t, pool, unsendGrownTables...)
	if after["messages"].deletes-before["messages"].deletes != 3 {
		t.Fatalf("statistics did not record the unsends' deletes: %+v then %+v", before["messages"], after["messages"])
	}
	for _, table := range unsendGrownTables {
		b, a := before[table], after[table]
		if n := a.seq - b.seq; n != 0 {
			t.Errorf("%d sequential scans of %s in three unsends; want none", n, table)
		}
		// Each unsend touches a row or two per table; a plan that looks
		// keys up by channel alone reads them all.
		if n := a.indexed - b.indexed; n > 60 {
			t.Errorf("%d rows of %s fetched through indexes in three unsends; want a few per statement", n, table)
		}
	}
}

// storeMessage writes, through db, a text message with its event, as the
// worker stores one.
func storeMessage(t *testing.T, db *pgxpool.Pool, channel, id string) {
	t.Helper()
	b := &pgx.Batch{}
	m := textMessage(store.MessageKey{ChannelID: channel, MessageID: id})
	store.QueueInsertEvents(b, []store.EventRow{{DedupID: m.WebhookEventID, ChannelID: channel, Destination: "Udest",
		Type: "message", MessageID: id, EventTime: m.At, ReceivedAt: m.At,
		Raw: []byte(`{"type":"message","message":` + string(m.Content) + `}`)}}, func(int, int64) {})
	store.QueueStoreMessages(b, []store.MessageRow{m})
	if err := pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
		return tx.SendBatch(context.Background(), b).Close()
	}); err != nil {
		t.Fatal(err)
	}
}

// textMessage is the messages row of a text message k saying "hello",
// sent now by the event "ev-" + its id.
func textMessage(k store.MessageKey) store.MessageRow {
	text := "hello"
	return store.MessageRow{MessageKey: k, Type: "text", At: time.Now(), Text: &text,
		Content: []byte(`{"id":"` + k.MessageID + `","type":"text","text":"hello"}`), WebhookEventID: "ev-" + k.MessageID}
}

// unsendBatch runs, on pool, what the worker's batch runs for an unsend of
// k among a hundred message events: the tombstone lookup of their
// messages, then the unsend.
func unsendBatch(t *testing.T, pool *pgxpool.Pool, k store.MessageKey) {
	t.Helper()
	keys := []store.MessageKey{k}
	for i := 0; len(keys) < 100; i++ {
		keys = append(keys, store.MessageKey{ChannelID: k.ChannelID, MessageID: fmt.Sprintf("%s-other%d", k.MessageID, i)})
	}
	b := &pgx.Batch{}
	store.QueueUnsentAmong(b, keys, func(store.MessageKey) {})
	store.QueueUnsends(b, []store.Unsend{{MessageKey: k, At: time.Now(), WebhookEventID: "ev-unsend-" + k.MessageID}})
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The unsend's own event, carrying its message, as the worker
		// stores it before scrubbing it.
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO events (webhook_event_id, channel_id, destination, type, event_time,
				received_at, message_id, raw) VALUES ($1, $2, 'Udest', 'unsend', now(), now(), $3,
				json_build_object('type', 'unsend', 'unsend', json_build_object('messageId', $3::text),
					'message', json_build_object('id', $3::text, 'type', 'text', 'text', 'carried')))
			RETURNING id`, "ev-unsend-"+k.MessageID, k.ChannelID, k.MessageID).Scan(&id); err != nil {
			return err
		}
		store.QueueScrubUnsendEvents(b, []int64{id})
		return tx.SendBatch(ctx, b).Close()
	}); err != nil {
		t.Fatal(err)
	}
}

// TestInboundInsertsKeepTheirPlans: the tombstone lookup every batch
// makes keeps one plan per connection (planning it for each batch cost
// more than running it), and the brackets around it and the unsend's
// statements end: the worker's inserts that follow in the same
// transaction keep the plan Postgres chose for them, instead of paying
// for planning on every batch (planning every worker statement cost
// 212 ms of a drain's Postgres time against 48).
func TestInboundInsertsKeepTheirPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := oneConnection(t)
	const channel = "1650000078"
	for i := 0; i < 10; i++ {
		k := store.MessageKey{ChannelID: channel, MessageID: fmt.Sprintf("kept%02d", i)}
		b := &pgx.Batch{}
		store.QueueUnsentAmong(b, []store.MessageKey{k}, func(store.MessageKey) {})
		// A late copy of an unsent message is scrubbed between them, in
		// the unsends' bracket of plans made per run.
		store.QueueScrubMessageEvents(b, []store.MessageKey{{ChannelID: channel, MessageID: "gone" + k.MessageID}})
		store.QueueStoreMessages(b, []store.MessageRow{textMessage(k)})
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
			t.Fatal(err)
		}
	}
	if generic, custom := preparedPlans(t, pool, "INSERT INTO messages"); generic == 0 {
		t.Errorf("the messages insert after the tombstone lookup was planned afresh in all %d batches; want its kept plan", custom)
	}
	// The lookup itself runs in every batch with a message: one plan per
	// connection, never one per batch.
	if generic, custom := preparedPlans(t, pool, "SELECT u.channel_id, u.message_id FROM unsent_messages"); custom != 0 || generic != 10 {
		t.Errorf("the tombstone lookup ran %d times on a generic plan and was planned for %d runs; want its one kept plan in all 10", generic, custom)
	}
	if generic, custom := preparedPlans(t, pool, "UPDATE events e SET raw = linepipe_scrub_event"); custom != 10 {
		t.Errorf("the scrub of a late copy was planned for %d of 10 runs (%d generic); want every run", custom, generic)
	}
}

// preparedPlans is how often the statement prepared on pool's connection
// that starts with prefix ran on a generic plan and on a plan made for
// its run.
func preparedPlans(t *testing.T, pool *pgxpool.Pool, prefix string) (generic, custom int64) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT generic_plans, custom_plans FROM pg_prepared_statements
		WHERE starts_with(statement, $1)`, prefix).Scan(&generic, &custom); err != nil {
		t.Fatal(err)
	}
	return generic, custom
}
