package worker

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// persist stores items in one transaction: events and webhook log rows
// first (one pipelined round trip), then what new events imply and the
// outbox rows bot handlers queue, with the COMMIT (persistIn says in how
// many round trips). A duplicate event implies nothing.
func (w *Worker) persist(ctx context.Context, items []*item) error {
	return w.persistIn(ctx, w.db, items)
}

// beginner starts a transaction: the pool, or a transaction in which
// persistIn runs under a savepoint (a dead-letter replay).
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// batchSender is the transaction persistIn's statements go to.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// persistIn is persist in a transaction begun on db. On the pool, with
// only EnqueueOnly handlers (or none), the transaction takes two round
// trips: BEGIN travels with the events, and what they imply with the
// outbox rows and COMMIT, since such handlers read nothing the second
// part writes. Otherwise the handlers run after what the events imply
// is written, since they may read it.
func (w *Worker) persistIn(ctx context.Context, db beginner, items []*item) error {
	if pool, ok := db.(store.Acquirer); ok && w.enqueueOnly {
		tx, done, err := store.BeginPipe(ctx, pool)
		if err != nil {
			return err
		}
		defer done()
		unsent, err := w.insertEvents(ctx, tx, items)
		if err != nil {
			return err
		}
		queued, err := w.handle(ctx, noTx{}, items, unsent)
		if err != nil {
			return err
		}
		return tx.CommitWith(ctx, implied(items, unsent), "applying events", queued)
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		unsent, err := w.insertEvents(ctx, tx, items)
		if err != nil {
			return err
		}
		if second := implied(items, unsent); second.Len() > 0 {
			if err := tx.SendBatch(ctx, second).Close(); err != nil {
				return fmt.Errorf("applying events: %w", err)
			}
		}
		queued, err := w.handle(ctx, tx, items, unsent)
		if err != nil || len(queued) == 0 {
			return err
		}
		return store.EnqueueOutboxRows(ctx, tx, queued)
	})
}

// insertEvents sends the transaction's first round trip: it inserts the
// events, noting each new one's id in its item, then locks the batch's
// messages and reads their tombstones. It returns the messages that are
// unsent.
//
// The insert need not wait for the lock: a concurrent unsend cannot see
// these rows before this commit, but its tombstone, committed before it
// releases the lock, is read after the lock is ours, and a copy of an
// unsent message is scrubbed by what the events imply (implied), before
// anything commits. Locking after the insert keeps the locks for the
// shorter rest of the transaction, and a batch waiting for another's
// insert of the same key never holds a message lock.
func (w *Worker) insertEvents(ctx context.Context, tx batchSender, items []*item) (map[store.MessageKey]bool, error) {
	first := &pgx.Batch{}
	var rows []store.EventRow
	var rowItems []*item
	var logs []events.WebhookLog
	logged := map[string]bool{}
	for _, it := range items {
		for _, rec := range []*events.WebhookLog{it.webhook, it.log} {
			if rec != nil && !logged[rec.WebhookID] {
				logged[rec.WebhookID] = true
				logs = append(logs, *rec)
			}
		}
		if it.webhook == nil {
			rows = append(rows, it.row)
			rowItems = append(rowItems, it)
		}
	}
	store.QueueInsertEvents(first, rows, func(i int, id int64) { rowItems[i].id = id })
	store.QueueInsertWebhookLogs(first, logs)
	store.QueueClearFailures(first, retriedKeys(items))
	store.QueueLockMessages(first, lockKeys(items))
	unsent := map[store.MessageKey]bool{}
	store.QueueUnsentAmong(first, messageKeys(items), func(k store.MessageKey) { unsent[k] = true })
	if err := tx.SendBatch(ctx, first).Close(); err != nil {
		return nil, fmt.Errorf("inserting events: %w", err)
	}
	// An unsend in this very batch counts too, whatever its position:
	// an unsend is final.
	for _, it := range items {
		if it.ev != nil && it.ev.Type == events.TypeUnsend && it.key.MessageID != "" {
			unsent[it.key] = true
		}
	}
	return unsent, nil
}

// implied is what the batch's new events imply besides their rows:
// messages and their content, unsends and the scrubs of unsent copies,
// follow and chat state.
func implied(items []*item, unsent map[store.MessageKey]bool) *pgx.Batch {
	b := &pgx.Batch{}
	queueMessages(b, items, unsent)
	queueContent(b, items, unsent)
	queueUnsends(b, items, unsent)
	var follows latestFollows
	for _, it := range items {
		if it.id != 0 {
			queueEffects(b, it, unsent[it.key], &follows)
		}
	}
	store.QueueFollows(b, follows.rows)
	return b
}

// handle runs the handlers for every newly stored event, giving them
// htx, and returns the outbox rows they queued, which must still be
// written before COMMIT.
func (w *Worker) handle(ctx context.Context, htx pgx.Tx, items []*item, unsent map[store.MessageKey]bool) ([]store.OutboxInsert, error) {
	var queued []store.OutboxInsert
	for _, it := range items {
		if it.id == 0 || it.ev == nil {
			continue
		}
		s := Stored{ID: it.id, ChannelID: it.meta.ChannelID, Event: it.ev, Raw: it.row.Raw, Meta: it.meta,
			Unsent: unsent[it.key], outbox: &queued}
		for _, h := range w.handlers {
			if err := h.Handle(ctx, htx, s); err != nil {
				return nil, &handlerError{event: it.row.DedupID, err: err}
			}
		}
	}
	return queued, nil
}

// messageKeys is the messages whose tombstones the batch must know.
func messageKeys(items []*item) []store.MessageKey {
	var keys []store.MessageKey
	for _, it := range items {
		if it.key.MessageID != "" && it.ev.Type != events.TypeUnsend {
			keys = append(keys, it.key)
		}
	}
	return keys
}

// queueMessages stores the content of every new, not unsent message
// event with set-based statements (a second statement only for a key
// that repeats within the batch). Their order against the batch's other
// effects does not matter: edits and state are last-writer-wins.
func queueMessages(b *pgx.Batch, items []*item, unsent map[store.MessageKey]bool) {
	var rounds [][]store.MessageRow
	var seen []map[store.MessageKey]bool
	for _, it := range items {
		ev := it.ev
		if it.id == 0 || ev == nil || ev.Type != events.TypeMessage || ev.Message == nil || ev.Message.ID == "" || unsent[it.key] {
			continue
		}
		r := 0
		for r < len(rounds) && seen[r][it.key] {
			r++
		}
		if r == len(rounds) {
			rounds = append(rounds, nil)
			seen = append(seen, map[store.MessageKey]bool{})
		}
		rounds[r] = append(rounds[r], messageRow(it))
		seen[r][it.key] = true
	}
	for _, rows := range rounds {
		store.QueueStoreMessages(b, rows)
	}
}

// messageRow is the messages row a message or edit event implies.
func messageRow(it *item) store.MessageRow {
	ev := it.ev
	row := store.MessageRow{MessageKey: it.key, Type: ev.Message.Type, Source: ev.Source, At: it.row.EventTime,
		Content: ev.Message.Raw, WebhookEventID: it.row.DedupID}
	if ev.Message.Type == "text" {
		text := ev.Message.Text
		row.Text = &text
	}
	return row
}

// queueUnsends queues, set-based, every new unsend of the batch, the
// scrub of every newly stored copy of an unsent message, and the scrub
// of an unsend that itself carries a message (unsendbody.go).
func queueUnsends(b *pgx.Batch, items []*item, unsent map[store.MessageKey]bool) {
	var us []store.Unsend
	var scrub []store.MessageKey
	var carriers []int64
	for _, it := range items {
		if it.id == 0 || it.ev == nil || it.key.MessageID == "" {
			continue
		}
		if it.ev.Type == events.TypeUnsend {
			us = append(us, store.Unsend{MessageKey: it.key, At: it.row.EventTime, WebhookEventID: it.row.DedupID})
			if mayHoldMessageKey(it.row.Raw) {
				carriers = append(carriers, it.id)
			}
		} else if unsent[it.key] {
			scrub = append(scrub, it.key)
		}
	}
	store.QueueUnsends(b, us)
	store.QueueScrubMessageEvents(b, scrub)
	store.QueueScrubUnsendEvents(b, carriers)
}

// queueEffects queues what a newly stored event changes besides its
// events row. Every state change is last-writer-wins by event time.
func queueEffects(b *pgx.Batch, it *item, unsent bool, follows *latestFollows) {
	ev, ch, at := it.ev, it.meta.ChannelID, it.row.EventTime
	switch ev.Type {
	case events.TypeMessage, events.TypeMessageEdited:
		if ev.Message == nil || ev.Message.ID == "" {
			return
		}
		if !unsent && ev.Type == events.TypeMessageEdited {
			store.QueueEditMessage(b, messageRow(it))
		}
		// New messages were queued together by queueMessages, unsends
		// and scrubs of unsent copies by queueUnsends.
	case events.TypeFollow, events.TypeUnfollow:
		if ev.Source.UserID != "" && ev.Source.ChatID() == "" {
			follows.add(store.Follow{ChannelID: ch, UserID: ev.Source.UserID, Following: ev.Type == events.TypeFollow, At: at})
		}
	case events.TypeJoin, events.TypeLeave:
		if chat := ev.Source.ChatID(); chat != "" {
			store.QueueChat(b, ch, chat, ev.Source.Type, ev.Type == events.TypeJoin, at)
		}
	case events.TypeMemberJoined, events.TypeMemberLeft:
		chat := ev.Source.ChatID()
		members := ev.Joined
		if ev.Type == events.TypeMemberLeft {
			members = ev.Left
		}
		if chat == "" || members == nil {
			return
		}
		for _, m := range members.Members {
			if m.UserID != "" {
				store.QueueMember(b, ch, chat, m.UserID, ev.Type == events.TypeMemberJoined, at)
			}
		}
	}
}
