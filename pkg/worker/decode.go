package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
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
		var rec events.WebhookLog
		if err := json.Unmarshal(m.Data(), &rec); err != nil || rec.WebhookID == "" {
			return it, fmt.Errorf("%w: webhook log record: %v", errPoison, err)
		}
		it.webhook = &rec
		return it, nil
	case events.KindEvent:
	default:
		return it, fmt.Errorf("%w: unknown kind %q", errPoison, kind)
	}

	if v := events.HeaderValue(h, events.HeaderWebhookLog); v != "" {
		var rec events.WebhookLog
		// The record is secondary: an unreadable one never poisons the event.
		if json.Unmarshal([]byte(v), &rec) == nil && rec.WebhookID != "" {
			it.log = &rec
		}
	}
	raw := m.Data()
	ev, err := events.Decode(raw)
	if err != nil {
		// Valid JSON of an unexpected shape (say, a string timestamp from
		// a future format): keep it as it came, routed by what can be read.
		if !json.Valid(raw) {
			return it, fmt.Errorf("%w: event is not JSON", errPoison)
		}
		ev = looseEvent(raw)
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
		Destination: it.meta.Destination, Type: ev.Type, Mode: ev.Mode, Source: ev.Source,
		MessageID: ev.MessageID(), EventTime: at, ReceivedAt: it.meta.ReceivedAt,
		Redelivery: ev.DeliveryContext.IsRedelivery, WebhookID: it.meta.WebhookID, Raw: raw,
	}
	if id := ev.MessageID(); id != "" {
		it.key = store.MessageKey{ChannelID: it.meta.ChannelID, MessageID: id}
	}
	return it, nil
}

// maxTimestampMillis is 9999-12-31T23:59:59.999Z, the last instant every
// Postgres client and server represents alike.
const maxTimestampMillis = 253402300799999

// sanitize removes NUL characters from the fields stored in text
// columns: JSON may carry \u0000, Postgres text cannot, and one odd
// character must not make an event unstorable. The raw event (type json)
// keeps it as sent.
func sanitize(ev *events.Event) {
	for _, s := range []*string{&ev.Type, &ev.Mode, &ev.WebhookEventID, &ev.ReplyToken,
		&ev.Source.Type, &ev.Source.UserID, &ev.Source.GroupID, &ev.Source.RoomID} {
		*s = strings.ReplaceAll(*s, "\x00", "")
	}
	if ev.Message != nil {
		for _, s := range []*string{&ev.Message.ID, &ev.Message.Type, &ev.Message.Text} {
			*s = strings.ReplaceAll(*s, "\x00", "")
		}
	}
	if ev.Unsend != nil {
		ev.Unsend.MessageID = strings.ReplaceAll(ev.Unsend.MessageID, "\x00", "")
	}
	if ev.Joined != nil {
		for i := range ev.Joined.Members {
			ev.Joined.Members[i].UserID = strings.ReplaceAll(ev.Joined.Members[i].UserID, "\x00", "")
		}
	}
	if ev.Left != nil {
		for i := range ev.Left.Members {
			ev.Left.Members[i].UserID = strings.ReplaceAll(ev.Left.Members[i].UserID, "\x00", "")
		}
	}
}

// looseEvent reads whichever routing fields decode on their own.
func looseEvent(raw []byte) *events.Event {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	ev := &events.Event{}
	_ = json.Unmarshal(fields["type"], &ev.Type)
	_ = json.Unmarshal(fields["mode"], &ev.Mode)
	_ = json.Unmarshal(fields["webhookEventId"], &ev.WebhookEventID)
	_ = json.Unmarshal(fields["timestamp"], &ev.Timestamp)
	_ = json.Unmarshal(fields["source"], &ev.Source)
	return ev
}

// lockKeys is the sorted, distinct advisory-lock keys of the messages a
// batch touches.
func lockKeys(items []*item) []int64 {
	seen := map[int64]bool{}
	var keys []int64
	for _, it := range items {
		if it.key.MessageID == "" {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(it.key.ChannelID))
		h.Write([]byte{0})
		h.Write([]byte(it.key.MessageID))
		k := int64(h.Sum64())
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
