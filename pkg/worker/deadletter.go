package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// A message is dead-lettered by its own failures only. Each time it fails
// alone with an error that is not outage-shaped, the failure is counted
// in Postgres (worker_failures, keyed by the event's webhookEventId), and
// at MaxAttempts it goes to dead_letters. JetStream's delivery count is
// not used: it also counts the redeliveries of an outage, and the first
// permanent-looking error after a long outage would then dead-letter a
// good event. Postgres rather than a header on a re-published copy,
// because the count is then written only when Postgres answered (an
// outage cannot count), and re-publishing would need a new stream
// message, its own dedup id and a publish-then-ack gap of its own.

// failureKey names an item in worker_failures: its event's dedup id, or
// for a webhook's log record alone, the webhook id.
func failureKey(it *item) string {
	if it.webhook != nil {
		return "webhook-log:" + it.webhook.WebhookID
	}
	return it.row.DedupID
}

// retryOrDeadLetter decides a message's fate after it failed alone.
func (w *Worker) retryOrDeadLetter(ctx context.Context, it *item, err error) {
	deliveries := deliveriesOf(it)
	if w.transient(ctx, err) {
		w.retryLater(it, deliveries, deliveries, err)
		return
	}
	failures, cerr := store.CountFailure(ctx, w.db, failureKey(it), err.Error())
	if cerr != nil {
		// Postgres refused to count: that is the database's trouble,
		// not the message's.
		w.retryLater(it, deliveries, deliveries, err)
		return
	}
	if failures >= w.cfg.MaxAttempts {
		w.deadLetter(ctx, it, err, failures)
		return
	}
	w.retryLater(it, deliveries, uint64(failures), err)
}

func (w *Worker) retryLater(it *item, deliveries, backoff uint64, err error) {
	w.metrics.retries.Inc()
	w.log.Warn("storing message failed; will retry", zap.Uint64("deliveries", deliveries),
		zap.String("webhook_event_id", it.row.DedupID), zap.String("error", store.SanitizeText(err.Error(), store.MaxErrorText)))
	_ = it.msg.NakWithDelay(redeliveryDelay(backoff))
}

// retriedKeys is the failure keys of the items delivered before: only
// they can have a failure count to forget once they are stored.
func retriedKeys(items []*item) []string {
	var keys []string
	for _, it := range items {
		if deliveriesOf(it) > 1 {
			keys = append(keys, failureKey(it))
		}
	}
	return keys
}

func deliveriesOf(it *item) uint64 {
	if md, err := it.msg.Metadata(); err == nil && md != nil {
		return md.NumDelivered
	}
	return 1
}

// deadLetter keeps the message in dead_letters with its bytes and the
// error, then terminates it so it leaves the stream. The row is written
// under the message's advisory lock and against its tombstone, so an
// unsend running at the same moment cannot leave its text behind. If the
// row cannot be written the message is left for redelivery: never dropped.
func (w *Worker) deadLetter(ctx context.Context, it *item, cause error, failures int) {
	m := it.msg
	d := store.DeadLetter{Subject: m.Subject(), Data: m.Data(), Error: cause.Error(), ChannelID: it.meta.ChannelID,
		WebhookEventID: it.row.DedupID, MessageID: it.key.MessageID, Failures: failures}
	if failures > 0 {
		d.FailureKey = failureKey(it)
	}
	if it.key.MessageID == "" && it.meta.ChannelID != "" {
		// Refused before routing (say, not decodable as an event): the
		// message id is still looked for, so an unsend can find it.
		if ev, ok := readEvent(storable(m.Data())); ok {
			sanitize(ev)
			d.MessageID = messageIDOf(ev)
			d.WebhookEventID = events.DedupID(it.meta.ChannelID, ev.WebhookEventID, m.Data())
		}
	}
	deliveries := deliveriesOf(it)
	d.Deliveries = deliveries
	if md, err := m.Metadata(); err == nil {
		d.StreamSeq = md.Sequence.Stream
	}
	d.Headers, _ = json.Marshal(m.Headers())
	err := pgx.BeginFunc(ctx, w.db, func(tx pgx.Tx) error {
		if err := store.InsertDeadLetter(ctx, tx, d); err != nil {
			return err
		}
		return applyUnsendOf(ctx, tx, it)
	})
	if err != nil {
		w.log.Error("dead-lettering failed; message will be redelivered", zap.Error(err))
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	if err := m.Term(); err != nil {
		w.log.Warn("terminating dead-lettered message", zap.Error(err))
	}
	w.metrics.deadLetters.Inc()
	w.log.Error("message dead-lettered", zap.String("subject", d.Subject), zap.Uint64("stream_seq", d.StreamSeq),
		zap.Uint64("deliveries", d.Deliveries), zap.Int("failures", failures),
		zap.String("webhook_event_id", d.WebhookEventID), zap.String("error", store.SanitizeText(d.Error, store.MaxErrorText)))
}

// applyUnsendOf still honours an unsend that is being dead-lettered (bot
// logic failing on unsend events, say): its tombstone and scrubs commit
// with the dead letter, under the lock InsertDeadLetter took, so a failure
// elsewhere never leaves an unsent message readable. Replaying the dead
// letter later applies it again, which changes nothing.
func applyUnsendOf(ctx context.Context, tx pgx.Tx, it *item) error {
	if it.ev == nil || it.ev.Type != events.TypeUnsend || it.key.MessageID == "" {
		return nil
	}
	b := &pgx.Batch{}
	store.QueueUnsends(b, []store.Unsend{{MessageKey: it.key, At: it.row.EventTime, WebhookEventID: it.row.DedupID}})
	return tx.SendBatch(ctx, b).Close()
}
