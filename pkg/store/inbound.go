package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
)

// The worker stores a batch of stream messages in one transaction with a
// few pipelined round trips: the statements below are queued on a
// pgx.Batch rather than executed one by one.

// EventRow is one webhook event as the events table keeps it.
type EventRow struct {
	DedupID     string // webhookEventId, or a digest for an event without one
	ChannelID   string
	Destination string
	Type        string
	Mode        string
	Source      events.Source
	MessageID   string
	EventTime   time.Time
	ReceivedAt  time.Time
	Redelivery  bool
	WebhookID   string
	Raw         []byte
}

// QueueInsertEvents inserts rows with one set-based statement, skipping
// any whose id is stored already (or repeats earlier in rows). inserted
// is called, when the batch runs, with each new row's index in rows and
// its id; a row it is not called for is a duplicate and must cause
// nothing else.
func QueueInsertEvents(b *pgx.Batch, rows []EventRow, inserted func(i int, id int64)) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	ids, chans, dests, types, modes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stypes, users, groups, rooms, msgs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at, recv := make([]time.Time, n), make([]time.Time, n)
	redeliv := make([]bool, n)
	hooks, raws := make([]string, n), make([]string, n)
	first := make(map[string]int, n)
	for i, ev := range rows {
		ids[i], chans[i], dests[i], types[i], modes[i] = ev.DedupID, ev.ChannelID, ev.Destination, ev.Type, ev.Mode
		stypes[i], users[i], groups[i], rooms[i] = ev.Source.Type, ev.Source.UserID, ev.Source.GroupID, ev.Source.RoomID
		msgs[i], at[i], recv[i], redeliv[i], hooks[i], raws[i] = ev.MessageID, ev.EventTime, ev.ReceivedAt, ev.Redelivery, ev.WebhookID, string(ev.Raw)
		if _, seen := first[ev.DedupID]; !seen {
			first[ev.DedupID] = i
		}
	}
	b.Queue(`INSERT INTO events (webhook_event_id, channel_id, destination, type, mode, source_type,
			user_id, group_id, room_id, message_id, event_time, received_at, is_redelivery, webhook_id, raw)
		SELECT id, ch, dest, typ, nullif(mode, ''), nullif(st, ''), nullif(u, ''), nullif(g, ''), nullif(r, ''),
			nullif(m, ''), at, recv, redeliv, nullif(hook, ''), raw::json
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::bool[], $14::text[], $15::text[])
			AS t(id, ch, dest, typ, mode, st, u, g, r, m, at, recv, redeliv, hook, raw)
		ON CONFLICT (webhook_event_id) DO NOTHING
		RETURNING webhook_event_id, id`,
		ids, chans, dests, types, modes, stypes, users, groups, rooms, msgs, at, recv, redeliv, hooks, raws,
	).Query(func(res pgx.Rows) error {
		for res.Next() {
			var key string
			var id int64
			if err := res.Scan(&key, &id); err != nil {
				return err
			}
			inserted(first[key], id)
		}
		return res.Err()
	})
}

// QueueInsertWebhookLogs records accepted webhooks (idempotent).
func QueueInsertWebhookLogs(b *pgx.Batch, recs []events.WebhookLog) {
	if len(recs) == 0 {
		return
	}
	n := len(recs)
	ids, chans, ips, methods, paths := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	status, count := make([]int32, n), make([]int32, n)
	redeliv := make([]bool, n)
	for i, r := range recs {
		ids[i], chans[i], ips[i], methods[i], paths[i] = r.WebhookID, r.ChannelID, r.RemoteIP, r.Method, r.Path
		at[i], status[i], count[i], redeliv[i] = r.ReceivedAt, int32(r.Status), int32(r.EventCount), r.Redelivery
	}
	b.Queue(`INSERT INTO webhook_log (webhook_id, channel_id, remote_ip, received_at, method, path, status,
			event_count, redelivery)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
			$7::int[], $8::int[], $9::bool[])
		ON CONFLICT (webhook_id) DO NOTHING`,
		ids, chans, ips, at, methods, paths, status, count, redeliv)
}

// MessageKey names one message of one channel.
type MessageKey struct{ ChannelID, MessageID string }

// QueueUnsentAmong finds which of keys have an unsend tombstone; found is
// called for each when the batch runs. Every worker batch with a message
// runs it, so its plan is made once per connection and kept, with
// sequential scans priced out (planOnceByIndex): the one path left is
// a probe of the primary key per key, right at any number of tombstones.
func QueueUnsentAmong(b *pgx.Batch, keys []MessageKey, found func(MessageKey)) {
	if len(keys) == 0 {
		return
	}
	chans := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		chans[i], ids[i] = k.ChannelID, k.MessageID
	}
	planOnceByIndex.around(b, func() {
		b.Queue(`SELECT u.channel_id, u.message_id FROM unsent_messages u
			JOIN unnest($1::text[], $2::text[]) AS k(channel_id, message_id) USING (channel_id, message_id)`, chans, ids,
		).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k MessageKey
				if err := rows.Scan(&k.ChannelID, &k.MessageID); err != nil {
					return err
				}
				found(k)
			}
			return rows.Err()
		})
	})
}

// QueueLockMessages takes a transaction-scoped advisory lock per message,
// in ascending order so concurrent batches cannot deadlock. Storing a
// message and unsending it both hold the lock, so the two can never
// interleave in a way that leaves content behind an unsend. Queue it
// before any statement that reads tombstones or writes those messages'
// content, except new events rows: a concurrent unsend cannot see those
// before this transaction commits, so the caller reads the tombstones
// after the lock and scrubs its own copies of an unsent message.
func QueueLockMessages(b *pgx.Batch, sortedKeys []int64) {
	if len(sortedKeys) == 0 {
		return
	}
	b.Queue(`SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, n)`, sortedKeys)
}

// MessageRow is the current content of one message.
type MessageRow struct {
	MessageKey
	Type           string
	Source         events.Source
	At             time.Time // the event's timestamp
	Text           *string
	Content        []byte // the message object as sent
	WebhookEventID string
}

// QueueStoreMessages stores message events' content with one statement.
// When a newer edit is already stored (edits can arrive first), only
// sent_at is taken from the original. rows must not repeat a key.
func QueueStoreMessages(b *pgx.Batch, rows []MessageRow) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	chans, ids, types, stypes, users, groups, rooms := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	texts := make([]*string, n)
	contents, events := make([]string, n), make([]string, n)
	for i, m := range rows {
		chans[i], ids[i], types[i], stypes[i] = m.ChannelID, m.MessageID, m.Type, m.Source.Type
		users[i], groups[i], rooms[i] = m.Source.UserID, m.Source.GroupID, m.Source.RoomID
		at[i], texts[i], contents[i], events[i] = m.At, m.Text, string(m.Content), m.WebhookEventID
	}
	b.Queue(`INSERT INTO messages (channel_id, message_id, type, source_type, user_id, group_id, room_id,
			sent_at, text, content, content_at, webhook_event_id)
		SELECT ch, id, typ, nullif(st, ''), nullif(u, ''), nullif(g, ''), nullif(r, ''), at, txt, content::json, at, ev
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::text[], $10::text[], $11::text[])
			AS t(ch, id, typ, st, u, g, r, at, txt, content, ev)
		ON CONFLICT (channel_id, message_id) DO UPDATE SET
			sent_at = least(messages.sent_at, excluded.sent_at),
			updated_at = now()`,
		chans, ids, types, stypes, users, groups, rooms, at, texts, contents, events)
}

// QueueEditMessage applies a messageEdited event: text and content change
// only if this edit is newer than what is stored (last writer wins by
// event time). An edit that arrives before its original creates the row.
func QueueEditMessage(b *pgx.Batch, m MessageRow) {
	b.Queue(`INSERT INTO messages (channel_id, message_id, type, source_type, user_id, group_id, room_id,
			sent_at, text, content, content_at, edited, webhook_event_id)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, ''), nullif($7, ''), $8, $9,
			$10::text::json, $8, true, $11)
		ON CONFLICT (channel_id, message_id) DO UPDATE SET
			text = excluded.text, content = excluded.content, content_at = excluded.content_at,
			edited = true, updated_at = now()
		WHERE messages.content_at < excluded.content_at`,
		m.ChannelID, m.MessageID, m.Type, m.Source.Type, m.Source.UserID, m.Source.GroupID, m.Source.RoomID,
		m.At, m.Text, string(m.Content), m.WebhookEventID)
}

// Unsend is one unsend event: the message it takes back, when, and the
// unsend's own event id.
type Unsend struct {
	MessageKey
	At             time.Time
	WebhookEventID string
}

// QueueUnsends makes messages unreadable everywhere linepipe keeps them,
// with one statement per table for the whole batch: it records the
// tombstones, deletes the messages rows, scrubs the stored message and
// edit events, scrubs dead letters holding them, cancels and scrubs
// outbox rows derived from the messages (an echo of their text), and
// marks their content for deletion (QueueUnsendContents). Every
// scrub is one that cannot fail on the data it scrubs (migration 0004):
// a NUL, a lone surrogate or bytes that are not JSON still end scrubbed.
// The caller holds the messages' advisory locks.
func QueueUnsends(b *pgx.Batch, us []Unsend) {
	if len(us) == 0 {
		return
	}
	planPerRun.around(b, func() { queueUnsends(b, us) })
}

// queueUnsends is QueueUnsends without its planning bracket.
func queueUnsends(b *pgx.Batch, us []Unsend) {
	n := len(us)
	chans, ids, evs := make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	keys := make([]MessageKey, n)
	for i, u := range us {
		chans[i], ids[i], at[i], evs[i], keys[i] = u.ChannelID, u.MessageID, u.At, u.WebhookEventID, u.MessageKey
	}
	b.Queue(`INSERT INTO unsent_messages (channel_id, message_id, unsent_at, webhook_event_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
		ON CONFLICT (channel_id, message_id) DO NOTHING`, chans, ids, at, evs)
	b.Queue(`DELETE FROM messages m USING unnest($1::text[], $2::text[]) AS k(ch, id)
		WHERE m.channel_id = k.ch AND m.message_id = k.id`, chans, ids)
	queueScrubEvents(b, keys)
	b.Queue(`UPDATE dead_letters d SET data = linepipe_scrub_dead_letter(d.data, d.message_id), scrubbed_at = now()
		FROM unnest($1::text[], $2::text[]) AS k(ch, id)
		WHERE d.channel_id = k.ch AND d.message_id = k.id AND d.scrubbed_at IS NULL`, chans, ids)
	b.Queue(`UPDATE outbox o SET body = '{}', scrubbed_at = now(),
			finished_at = CASE WHEN o.status IN ('pending', 'retrying') THEN now() ELSE o.finished_at END,
			status = CASE WHEN o.status IN ('pending', 'retrying') THEN 'cancelled' ELSE o.status END
		FROM unnest($1::text[], $2::text[]) AS k(ch, id)
		WHERE o.channel_id = k.ch AND o.source_message_id = k.id AND o.scrubbed_at IS NULL`, chans, ids)
	QueueUnsendContents(b, us)
}

// planBracket is a pair of statements queued around others in a batch:
// open sets how they are planned, close puts the settings back to
// Postgres's defaults for the statements after them. Both settings are
// local to the transaction.
type planBracket struct{ open, close string }

// around queues p.open, the statements queue adds to b, then p.close.
func (p planBracket) around(b *pgx.Batch, queue func()) {
	b.Queue(p.open)
	queue()
	b.Queue(p.close)
}

// planPerRun brackets the statements that find a batch's messages' rows
// by key in tables that grow: an unsend's statements. Each is planned for
// its own arguments on every run. (The tombstone lookup, which every
// batch runs, keeps one plan instead: planOnceByIndex.)
//
// Postgres plans a prepared statement generically after five runs when
// the generic plan looks no dearer, and keeps that plan until the table
// is analyzed again. These statements first run against near-empty
// tables, and their generic plans then hash a sequential scan of the
// table (unsent_messages, messages, the outbox, message_content), look
// each key up by channel alone (messages_user_idx), or walk every message
// event (events_message_idx). Once the tables have grown, with no ANALYZE
// (autovacuum off, or behind a burst) to replace the plans, every batch
// reads whole tables: in the bench's worker drain the delete of messages
// rows alone took 15 % of the worker's Postgres time, 1.2 ms for a
// batch's handful of unsends. Planned per run, each finds its rows by
// key: the delete took 0.2 ms to plan and run.
var planPerRun = planBracket{
	open:  `select set_config('plan_cache_mode', 'force_custom_plan', true)`,
	close: `select set_config('plan_cache_mode', 'auto', true)`,
}

// planOnceByIndex brackets the tombstone lookup, which every batch with a
// message runs, mostly for a handful of keys: planned per run
// (planPerRun) it cost a quarter of a millisecond of planning to execute
// in a few microseconds, the largest single statement cost of the
// worker's small batches at 1,000 webhooks/s (pg_stat_statements, bench
// reply stage: 525 ms of planning in 2,033 batches). The lookup has one
// index path at any size, a probe of unsent_messages' primary key per
// key, so its plan is generic, made once per connection and kept, and
// sequential scans are priced out while it is made, as the sender's
// statements are (outboxPlanSettings): a plan made on a near-empty table
// cannot hash a scan of the table it later meets with a month of
// tombstones.
var planOnceByIndex = planBracket{
	open: `select set_config('enable_seqscan', 'off', true), ` +
		`set_config('plan_cache_mode', 'force_generic_plan', true)`,
	close: `select set_config('enable_seqscan', 'on', true), set_config('plan_cache_mode', 'auto', true)`,
}

// QueueUnsend is QueueUnsends for one message.
func QueueUnsend(b *pgx.Batch, k MessageKey, unsentAt time.Time, webhookEventID string) {
	QueueUnsends(b, []Unsend{{MessageKey: k, At: unsentAt, WebhookEventID: webhookEventID}})
}

// QueueScrubMessageEvents scrubs the stored events of messages (not the
// unsends themselves). An event Postgres cannot even parse keeps only
// the envelope its row's columns record.
func QueueScrubMessageEvents(b *pgx.Batch, keys []MessageKey) {
	if len(keys) == 0 {
		return
	}
	planPerRun.around(b, func() { queueScrubEvents(b, keys) })
}

// queueScrubEvents is QueueScrubMessageEvents without its planning
// bracket.
func queueScrubEvents(b *pgx.Batch, keys []MessageKey) {
	chans, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		chans[i], ids[i] = k.ChannelID, k.MessageID
	}
	b.Queue(`UPDATE events e SET raw = linepipe_scrub_event(e.raw, e.type, e.webhook_event_id, e.message_id),
			scrubbed_at = now()
		FROM unnest($1::text[], $2::text[]) AS k(ch, id)
		WHERE e.channel_id = k.ch AND e.message_id = k.id AND e.type <> 'unsend' AND e.scrubbed_at IS NULL`,
		chans, ids)
}

// QueueScrubUnsendEvents scrubs the message an unsend event itself
// carries: ids are events rows of type unsend that may hold one. Only a
// row that holds a key the worker reads as the message is written and
// marked scrubbed (linepipe_event_holds_message, migration 0012); any
// other keeps its bytes as sent. It needs no planning bracket
// (planPerRun): its rows are named by primary key, the one path Postgres
// takes at any size (TestUnsendPlansStayIndexed).
func QueueScrubUnsendEvents(b *pgx.Batch, ids []int64) {
	if len(ids) == 0 {
		return
	}
	b.Queue(`UPDATE events SET raw = linepipe_scrub_event(raw, type, webhook_event_id, message_id), scrubbed_at = now()
		WHERE id = ANY($1::bigint[]) AND type = 'unsend' AND scrubbed_at IS NULL
			AND linepipe_event_holds_message(raw)`, ids)
}

// Follow is one user's follow state for a channel at an event's time.
type Follow struct {
	ChannelID, UserID string
	Following         bool
	At                time.Time
}

// QueueFollows records follow states with one statement, last writer wins
// by event time. rows must not repeat a (channel, user): the caller keeps
// the newest of each. Rows are written in key order, so two replicas'
// batches that follow the same users lock their rows in the same order
// and cannot deadlock.
func QueueFollows(b *pgx.Batch, rows []Follow) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	chans, users, following, at := make([]string, n), make([]string, n), make([]bool, n), make([]time.Time, n)
	for i, f := range rows {
		chans[i], users[i], following[i], at[i] = f.ChannelID, f.UserID, f.Following, f.At
	}
	b.Queue(`INSERT INTO followers (channel_id, user_id, following, state_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[]) AS f(ch, u, following, at)
		ORDER BY ch COLLATE "C", u COLLATE "C"
		ON CONFLICT (channel_id, user_id) DO UPDATE
		SET following = excluded.following, state_at = excluded.state_at, updated_at = now()
		WHERE followers.state_at < excluded.state_at`, chans, users, following, at)
}

// QueueChat records whether the account is in a group or room, last
// writer wins by event time.
func QueueChat(b *pgx.Batch, channelID, chatID, chatType string, joined bool, at time.Time) {
	b.Queue(`INSERT INTO chats (channel_id, chat_id, chat_type, joined, state_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (channel_id, chat_id) DO UPDATE
		SET joined = excluded.joined, state_at = excluded.state_at, updated_at = now()
		WHERE chats.state_at < excluded.state_at`, channelID, chatID, chatType, joined, at)
}

// QueueMember records whether a user is in a group or room, last writer
// wins by event time.
func QueueMember(b *pgx.Batch, channelID, chatID, userID string, member bool, at time.Time) {
	b.Queue(`INSERT INTO chat_members (channel_id, chat_id, user_id, member, state_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (channel_id, chat_id, user_id) DO UPDATE
		SET member = excluded.member, state_at = excluded.state_at, updated_at = now()
		WHERE chat_members.state_at < excluded.state_at`, channelID, chatID, userID, member, at)
}

// DeadLetter is a stream message the worker gave up on.
type DeadLetter struct {
	Subject        string
	StreamSeq      uint64
	Deliveries     uint64 // JetStream's delivery count
	Failures       int    // the message's own failures (0: refused at once)
	ChannelID      string
	WebhookEventID string
	MessageID      string
	Headers        []byte // JSON object
	Data           []byte
	Error          string
	// FailureKey is the worker_failures row to clear with the insert.
	FailureKey string
}

// InsertDeadLetter keeps a failed message for an operator. Call it in a
// transaction: it takes the message's advisory lock first, as storing and
// unsending it do, so a concurrent unsend either sees the dead letter and
// scrubs it or commits its tombstone first, and then the data is stored
// scrubbed. Error text is sanitised and capped.
func InsertDeadLetter(ctx context.Context, tx pgx.Tx, d DeadLetter) error {
	ch, msg := SanitizeText(d.ChannelID, 0), SanitizeText(d.MessageID, 0)
	if ch != "" && msg != "" {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`,
			MessageLockKey(MessageKey{ChannelID: ch, MessageID: msg})); err != nil {
			return fmt.Errorf("locking message for dead letter: %w", err)
		}
	}
	var failures *int32
	if d.Failures > 0 {
		f := int32(d.Failures)
		failures = &f
	}
	_, err := tx.Exec(ctx, `INSERT INTO dead_letters (subject, stream_seq, deliveries, failures, channel_id,
			webhook_event_id, message_id, headers, data, error, scrubbed_at)
		SELECT $1, $2, $3, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8::text::json,
			CASE WHEN u.message_id IS NULL THEN $9::bytea ELSE linepipe_scrub_dead_letter($9::bytea, $7) END,
			$10, CASE WHEN u.message_id IS NULL THEN NULL ELSE now() END
		FROM (SELECT 1) one
		LEFT JOIN unsent_messages u ON u.channel_id = $5 AND u.message_id = $7`,
		SanitizeText(d.Subject, MaxErrorText), int64(d.StreamSeq), int64(d.Deliveries), failures, ch,
		SanitizeText(d.WebhookEventID, 0), msg, string(d.Headers), d.Data, SanitizeText(d.Error, MaxErrorText))
	if err != nil {
		return fmt.Errorf("inserting dead letter: %w", err)
	}
	if d.FailureKey != "" {
		if _, err := tx.Exec(ctx, `DELETE FROM worker_failures WHERE event_key = $1`, SanitizeText(d.FailureKey, 0)); err != nil {
			return fmt.Errorf("clearing failure count: %w", err)
		}
	}
	return nil
}

// MessageLockKey is the transaction-scoped advisory lock key of one
// message. Storing, unsending and dead-lettering a message all take it.
func MessageLockKey(k MessageKey) int64 {
	h := fnv.New64a()
	h.Write([]byte(k.ChannelID))
	h.Write([]byte{0})
	h.Write([]byte(k.MessageID))
	return int64(h.Sum64())
}

// CountFailure records one failure of an event through its own fault and
// returns how many it has had. Only an answer from Postgres counts: if
// this statement fails, nothing was counted.
func CountFailure(ctx context.Context, q Querier, eventKey, errText string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `INSERT INTO worker_failures (event_key, failures, last_error) VALUES ($1, 1, $2)
		ON CONFLICT (event_key) DO UPDATE SET failures = worker_failures.failures + 1,
			last_error = excluded.last_error, last_failed_at = now()
		RETURNING failures`, SanitizeText(eventKey, 0), SanitizeText(errText, MaxErrorText)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting failure: %w", err)
	}
	return n, nil
}

// QueueClearFailures forgets the failure counts of events now stored.
func QueueClearFailures(b *pgx.Batch, eventKeys []string) {
	if len(eventKeys) == 0 {
		return
	}
	b.Queue(`DELETE FROM worker_failures WHERE event_key = ANY($1::text[])`, eventKeys)
}
