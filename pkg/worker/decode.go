package worker

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// errPoison marks a message that can never be stored however often it is
// retried; it goes straight to dead_letters.
var errPoison = errors.New("unprocessable stream message")

// item is one stream message on its way into Postgres.
type item struct {
	msg     jetstream.Msg
	meta    events.Meta
	webhook *events.WebhookLog // kind webhook-log
	log     *events.WebhookLog // the log record an event carries
	ev      *events.Event      // kind event
	row     store.EventRow
	key     store.MessageKey // the message an event concerns, if any
	id      int64            // events.id after insert; 0 for a duplicate
}

// decode reads one stream message. Unknown event types and fields are not
// errors: the raw bytes are stored whatever they hold.
func decode(m jetstream.Msg, now time.Time) (*item, error) {
	h := m.Headers()
	it := &item{msg: m, meta: events.MetaFromHeaders(h, now)}
	if it.meta.ChannelID == "" {
		return it, fmt.Errorf("%w: no %s header", errPoison, events.HeaderChannel)
	}
	switch kind := events.HeaderValue(h, events.HeaderKind); kind {
	case events.KindWebhookLog:
		rec, err := events.DecodeWebhookLog(m.Data())
		if err != nil || rec.WebhookID == "" {
			return it, fmt.Errorf("%w: webhook log record: %v", errPoison, err)
		}
		it.webhook = &rec
		return it, nil
	case events.KindEvent:
	default:
		return it, fmt.Errorf("%w: unknown kind %q", errPoison, kind)
	}

	if v := events.HeaderValue(h, events.HeaderWebhookLog); v != "" {
		// The record is secondary: an unreadable one never poisons the event.
		if rec, err := events.DecodeWebhookLog([]byte(v)); err == nil && rec.WebhookID != "" {
			it.log = &rec
		}
	}
	raw := storable(m.Data())
	ev, ok := readEvent(raw)
	if !ok {
		return it, fmt.Errorf("%w: event is not JSON", errPoison)
	}
	sanitize(ev)
	it.ev = ev
	at := ev.Time()
	if ev.Timestamp <= 0 || ev.Timestamp > maxTimestampMillis {
		// Missing or not representable in Postgres: the receive time is
		// the best stand-in, and the raw event keeps what LINE sent.
		at = it.meta.ReceivedAt
	}
	it.row = store.EventRow{
		DedupID: events.DedupID(it.meta.ChannelID, ev.WebhookEventID, raw), ChannelID: it.meta.ChannelID,
		Destination: store.SanitizeText(it.meta.Destination, 0), Type: ev.Type, Mode: ev.Mode, Source: ev.Source,
		MessageID: messageIDOf(ev), EventTime: at, ReceivedAt: it.meta.ReceivedAt,
		Redelivery: ev.DeliveryContext.IsRedelivery, WebhookID: it.meta.WebhookID, Raw: raw,
	}
	if id := messageIDOf(ev); id != "" {
		it.key = store.MessageKey{ChannelID: it.meta.ChannelID, MessageID: id}
	}
	return it, nil
}

// maxTimestampMillis is 9999-12-31T23:59:59.999Z, the last instant every
// Postgres client and server represents alike.
const maxTimestampMillis = 253402300799999

// lockKeys is the sorted, distinct advisory-lock keys of the messages a
// batch touches.
func lockKeys(items []*item) []int64 {
	seen := map[int64]bool{}
	var keys []int64
	for _, it := range items {
		if it.key.MessageID == "" {
			continue
		}
		k := store.MessageLockKey(it.key)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
