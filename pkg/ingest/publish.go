package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Publisher stores messages durably. Publish returns once every message is
// acknowledged by the stream (or was a duplicate of one already stored),
// or an error when any is not acknowledged before ctx ends.
type Publisher interface {
	Publish(ctx context.Context, msgs []*nats.Msg) (duplicates int, err error)
}

// ErrNotStored means the stream did not acknowledge every message in time;
// ingest answers 503 so LINE redelivers.
var ErrNotStored = errors.New("ingest: events not acknowledged by JetStream")

// JetStreamPublisher publishes asynchronously and waits for all acks, so a
// webhook with many events costs one round trip, not one per event.
type JetStreamPublisher struct {
	JS jetstream.JetStream
}

// Publish implements Publisher.
func (p JetStreamPublisher) Publish(ctx context.Context, msgs []*nats.Msg) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		// Nats-Msg-Id is already a header of m (eventMsgs, webhookLogMsg);
		// JetStream deduplicates on the header, so no publish option is
		// needed to set it again.
		f, err := p.JS.PublishMsgAsync(m)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNotStored, err)
		}
		futures = append(futures, f)
	}
	dups := 0
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			return dups, fmt.Errorf("%w: %v", ErrNotStored, err)
		case <-ctx.Done():
			return dups, fmt.Errorf("%w: %v", ErrNotStored, ctx.Err())
		}
	}
	return dups, nil
}

// eventHeaders is how many headers an event message carries: Meta's
// five, the kind, Nats-Msg-Id and the webhook log record.
const eventHeaders = 8

// eventMsgs builds one stream message per event: the raw event bytes with
// linepipe's headers and the webhookEventId as Nats-Msg-Id, so JetStream
// drops a redelivered event inside its duplicates window. The id and the
// redelivery flag were read by ParseWebhook's single walk of the body, so
// no event is decoded again here.
func eventMsgs(cfg stream.Config, meta events.Meta, evs []events.WebhookEvent) []*nats.Msg {
	msgs := make([]*nats.Msg, len(evs))
	subject := cfg.EventSubject(meta.ChannelID)
	for i, ev := range evs {
		// Sized for every header set below, so the map never grows.
		m := &nats.Msg{Subject: subject, Data: ev.Raw, Header: make(nats.Header, eventHeaders)}
		em := meta
		em.Redelivery = ev.Redelivery
		em.SetHeaders(m.Header)
		m.Header[events.HeaderKind] = []string{events.KindEvent}
		m.Header[jetstream.MsgIDHeader] = []string{events.DedupID(meta.ChannelID, ev.WebhookEventID, ev.Raw)}
		msgs[i] = m
	}
	return msgs
}

// redelivered reports whether LINE marked any event of a webhook a
// redelivery (webhook_log.redelivery and ingest's log line).
func redelivered(evs []events.WebhookEvent) bool {
	for _, ev := range evs {
		if ev.Redelivery {
			return true
		}
	}
	return false
}

// webhookLogMsg carries a webhook's log record on its own, for a webhook
// none of whose events was new.
func webhookLogMsg(cfg stream.Config, channelID, webhookID string, rec []byte) *nats.Msg {
	m := nats.NewMsg(cfg.WebhookLogSubject(channelID))
	m.Data = rec
	m.Header[events.HeaderKind] = []string{events.KindWebhookLog}
	m.Header[events.HeaderChannel] = []string{channelID}
	m.Header[jetstream.MsgIDHeader] = []string{"webhook:" + webhookID}
	return m
}
