package worker

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/stream"
)

// expand turns a bundle (events.EncodeBundle) into one message per
// record, each read, stored, retried and dead-lettered exactly as if
// ingest had published it alone. Any other message comes back as is.
//
// A bundle damaged part way (events.MalformedBundleError) still gives
// its readable records, and its unreadable rest comes back as a last
// message of its own, with damaged set to why: that rest goes to
// dead_letters alone, so the events before it are stored (and an unsend
// among them honoured) instead of being kept out of reach in one dead
// letter with the rest. Unless the rest may hold an unsend: then the
// message it takes back may be among the readable records, and storing
// them would make that message's text readable in events and messages,
// and hand it to the bot, with the unsend out of reach. Such a bundle
// goes to dead_letters whole, as one that cannot be read at all.
func expand(m jetstream.Msg, sc stream.Config) (parts []jetstream.Msg, damaged error, err error) {
	if events.HeaderValue(m.Headers(), events.HeaderKind) != events.KindBundle {
		return []jetstream.Msg{m}, nil, nil
	}
	recs, err := events.DecodeBundle(m.Data())
	var bad *events.MalformedBundleError
	if errors.As(err, &bad) && len(bad.Readable) > 0 && !mayHoldUnsend(bad.Rest) {
		recs, damaged = bad.Readable, err
	} else if err != nil {
		return nil, nil, err
	}
	b := &bundleParent{msg: m, pending: len(recs)}
	out := make([]jetstream.Msg, len(recs), len(recs)+1)
	if damaged != nil {
		b.pending++
		out = append(out, &bundleMsg{bundleParent: b, header: m.Headers(), data: bad.Rest, subject: m.Subject()})
	}
	for i, r := range recs {
		rm := &bundleMsg{bundleParent: b, header: nats.Header(r.Header), data: r.Data}
		channel := events.HeaderValue(r.Header, events.HeaderChannel)
		rm.subject = sc.EventSubject(channel)
		if events.HeaderValue(r.Header, events.HeaderKind) == events.KindWebhookLog {
			rm.subject = sc.WebhookLogSubject(channel)
		}
		out[i] = rm
	}
	return out, damaged, nil
}

// mayHoldUnsend reports whether bytes that cannot be read as records
// may still hold an unsend event: its type, as LINE writes it, or with
// any letter escaped.
func mayHoldUnsend(b []byte) bool {
	return bytes.Contains(b, []byte(`"unsend"`)) || bytes.Contains(b, []byte(`\u`))
}

// NewerFormatDelay is how long a bundle written in a format this worker
// does not know waits on the stream before it is offered again.
const NewerFormatDelay = 30 * time.Second

// keepForNewer leaves a bundle a newer ingest wrote on the stream, to be
// offered again every NewerFormatDelay, instead of dead-lettering it:
// during a rolling upgrade that starts with ingest, this worker cannot
// read it but a newer one can, and dead_letters could neither replay it
// (replay takes single events) nor scrub an unsent message inside it
// (the row carries no message id). The error log and
// linepipe_worker_bundles_newer_total say to upgrade the workers.
func (w *Worker) keepForNewer(m jetstream.Msg) {
	w.metrics.newerBundles.Inc()
	w.log.Error("a bundle in a newer format than this worker reads, written by a newer ingest: kept on the stream; upgrade the workers",
		zap.Duration("offered_again_in", NewerFormatDelay))
	_ = m.NakWithDelay(NewerFormatDelay)
}

// bundleParent is the stream message behind a bundle's records. It is
// acknowledged once every record is settled, stored or dead-lettered, and
// redelivered whole if any record asked for a retry: the records stored
// meanwhile come back as duplicates, which the unique keys drop. Acking it
// any earlier would lose a record whose own retry was still due.
type bundleParent struct {
	msg          jetstream.Msg
	mu           sync.Mutex
	pending      int
	retry        bool
	delay        time.Duration
	lastProgress atomic.Int64
}

// settle records one record's outcome and, with the last, the bundle's.
func (b *bundleParent) settle(retry bool, delay time.Duration) error {
	b.mu.Lock()
	b.pending--
	if retry {
		b.retry = true
		b.delay = max(b.delay, delay)
	}
	last, again, d := b.pending == 0, b.retry, b.delay
	b.mu.Unlock()
	switch {
	case !last:
		return nil
	case again:
		return b.msg.NakWithDelay(d)
	default:
		return b.msg.Ack()
	}
}

// progress tells JetStream the bundle is alive, at most once a second
// however many of its records are being stored.
func (b *bundleParent) progress() error {
	now := time.Now().UnixNano()
	last := b.lastProgress.Load()
	if now-last < int64(time.Second) || !b.lastProgress.CompareAndSwap(last, now) {
		return nil
	}
	return b.msg.InProgress()
}

// bundleMsg is one record of a bundle, presented as a stream message.
type bundleMsg struct {
	*bundleParent
	subject string
	header  nats.Header
	data    []byte
	settled atomic.Bool
}

var errSettled = errors.New("bundle record already settled")

func (m *bundleMsg) finish(retry bool, delay time.Duration) error {
	if !m.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	return m.settle(retry, delay)
}

func (m *bundleMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.msg.Metadata() }
func (m *bundleMsg) Data() []byte                              { return m.data }
func (m *bundleMsg) Headers() nats.Header                      { return m.header }
func (m *bundleMsg) Subject() string                           { return m.subject }
func (m *bundleMsg) Reply() string                             { return "" }
func (m *bundleMsg) Ack() error                                { return m.finish(false, 0) }
func (m *bundleMsg) DoubleAck(context.Context) error           { return m.finish(false, 0) }
func (m *bundleMsg) Nak() error                                { return m.finish(true, 0) }
func (m *bundleMsg) NakWithDelay(d time.Duration) error        { return m.finish(true, d) }
func (m *bundleMsg) InProgress() error                         { return m.progress() }

// Term settles a record that went to dead_letters: it is kept there, so
// the bundle need not come back for it.
func (m *bundleMsg) Term() error                 { return m.finish(false, 0) }
func (m *bundleMsg) TermWithReason(string) error { return m.finish(false, 0) }
func (m *bundleMsg) String() string              { return "bundle record on " + m.subject }
