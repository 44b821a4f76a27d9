package worker

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// persist stores items in one transaction: events and webhook log rows
// first (one pipelined round trip), then what new events imply (a
// second), then bot handlers. A duplicate event implies nothing.
func (w *Worker) persist(ctx context.Context, items []*item) error {
	return pgx.BeginFunc(ctx, w.db, func(tx pgx.Tx) error {
		if err := store.LockMessages(ctx, tx, lockKeys(items)); err != nil {
			return err
		}
		unsent, err := w.unsentSet(ctx, tx, items)
		if err != nil {
			return err
		}

		first := &pgx.Batch{}
		for _, it := range items {
			if it.webhook != nil {
				store.QueueInsertWebhookLog(first, *it.webhook)
				continue
			}
			it := it
			store.QueueInsertEvent(first, it.row, func(id int64) { it.id = id })
		}
		if err := tx.SendBatch(ctx, first).Close(); err != nil {
			return fmt.Errorf("inserting events: %w", err)
		}

		second := &pgx.Batch{}
		for _, it := range items {
			if it.id != 0 {
				queueEffects(second, it, unsent[it.key])
			}
		}
		if second.Len() > 0 {
			if err := tx.SendBatch(ctx, second).Close(); err != nil {
				return fmt.Errorf("applying events: %w", err)
			}
		}

		for _, it := range items {
			if it.id == 0 || it.ev == nil {
				continue
			}
			s := Stored{ID: it.id, ChannelID: it.meta.ChannelID, Event: it.ev, Raw: it.row.Raw, Meta: it.meta, Unsent: unsent[it.key]}
			for _, h := range w.handlers {
				if err := h.Handle(ctx, tx, s); err != nil {
					return fmt.Errorf("handler for event %s: %w", it.row.DedupID, err)
				}
			}
		}
		return nil
	})
}

// unsentSet is every message in the batch that has been unsent: by a
// tombstone already stored, or by an unsend in this very batch (whatever
// its position, since an unsend is final).
func (w *Worker) unsentSet(ctx context.Context, tx pgx.Tx, items []*item) (map[store.MessageKey]bool, error) {
	var keys []store.MessageKey
	for _, it := range items {
		if it.key.MessageID != "" && it.ev.Type != events.TypeUnsend {
			keys = append(keys, it.key)
		}
	}
	unsent, err := store.UnsentAmong(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.ev != nil && it.ev.Type == events.TypeUnsend && it.key.MessageID != "" {
			unsent[it.key] = true
		}
	}
	return unsent, nil
}

// queueEffects queues what a newly stored event changes besides its
// events row. Every state change is last-writer-wins by event time.
func queueEffects(b *pgx.Batch, it *item, unsent bool) {
	ev, ch, at := it.ev, it.meta.ChannelID, it.row.EventTime
	switch ev.Type {
	case events.TypeMessage, events.TypeMessageEdited:
		if ev.Message == nil || ev.Message.ID == "" {
			return
		}
		if unsent {
			store.QueueScrubMessageEvents(b, it.key)
			return
		}
		row := store.MessageRow{MessageKey: it.key, Type: ev.Message.Type, Source: ev.Source, At: at,
			Content: ev.Message.Raw, WebhookEventID: it.row.DedupID}
		if ev.Message.Type == "text" {
			text := ev.Message.Text
			row.Text = &text
		}
		if ev.Type == events.TypeMessage {
			store.QueueStoreMessage(b, row)
		} else {
			store.QueueEditMessage(b, row)
		}
	case events.TypeUnsend:
		if it.key.MessageID != "" {
			store.QueueUnsend(b, it.key, at, it.row.DedupID)
		}
	case events.TypeFollow, events.TypeUnfollow:
		if ev.Source.UserID != "" && ev.Source.ChatID() == "" {
			store.QueueFollow(b, ch, ev.Source.UserID, ev.Type == events.TypeFollow, at)
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
