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

// expansion is a stream message as the worker handles it: a bundle's
// records, or the message itself.
type expansion struct {
	parts []jetstream.Msg
	// rest is a damaged bundle's unreadable rest, presented as a message
	// on the bundle's subject, and damaged why it cannot be read; nil for
	// a bundle read whole and for any other message.
	rest    jetstream.Msg
	damaged error
	// held says the rest may hold an unsend: the parts that carry a
	// message are held back in dead_letters rather than stored (hold).
	held bool
}

// expand turns a bundle (events.EncodeBundle) into one message per
// record, each read, stored, retried and dead-lettered exactly as if
// ingest had published it alone. Any other message comes back as is.
//
// A bundle damaged part way (events.MalformedBundleError) still gives
// its readable records, and its unreadable rest comes back as a message
// of its own, which goes to dead_letters alone: the events before it are
// stored (and an unsend among them honoured) instead of being kept out
// of reach in one dead letter with the rest. If the rest may hold an
// unsend, the message it takes back may be among the readable records,
// and storing that one would make its text readable in events and
// messages, and hand it to the bot, with the unsend out of reach: held
// is set, and the worker keeps such records in dead_letters (hold),
// where an unsend still finds them by message id and one UPDATE replays
// them once an operator has looked at the rest.
func expand(m jetstream.Msg, sc stream.Config) (expansion, error) {
	if events.HeaderValue(m.Headers(), events.HeaderKind) != events.KindBundle {
		return expansion{parts: []jetstream.Msg{m}}, nil
	}
	var x expansion
	recs, err := events.DecodeBundle(m.Data())
	var bad *events.MalformedBundleError
	if errors.As(err, &bad) && len(bad.Readable) > 0 {
		recs, x.damaged, x.held = bad.Readable, err, mayHoldUnsend(bad.Rest)
	} else if err != nil {
		return x, err
	}
	b := &bundleParent{msg: m, pending: len(recs)}
	if x.damaged != nil {
		b.pending++
		x.rest = &bundleMsg{bundleParent: b, header: m.Headers(), data: bad.Rest, subject: m.Subject()}
	}
	x.parts = make([]jetstream.Msg, len(recs))
	for i, r := range recs {
		rm := &bundleMsg{bundleParent: b, header: nats.Header(r.Header), data: r.Data}
		channel := events.HeaderValue(r.Header, events.HeaderChannel)
		rm.subject = sc.EventSubject(channel)
		if events.HeaderValue(r.Header, events.HeaderKind) == events.KindWebhookLog {
			rm.subject = sc.WebhookLogSubject(channel)
		}
		x.parts[i] = rm
	}
	return x, nil
}

// errHeld marks a record held back from a damaged bundle (expansion.held).
var errHeld = errors.New("held back from a damaged bundle")

// hold says whether a readable record of a damaged bundle whose rest may
// hold an unsend is kept in dead_letters rather than stored: any event
// that carries a message, except an unsend, which is always safe to
// apply. Events without a message and webhook log records hold nothing
// an unsend could take back, so they are stored as usual.
func hold(x expansion, it *item) bool {
	return x.held && it.key.MessageID != "" && (it.ev == nil || it.ev.Type != events.TypeUnsend)
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

// restFate is what a damaged bundle's rest dead letter says became of
// the records before it.
func restFate(x expansion) string {
	if x.held {
		return "it may hold an unsend, so the records before it that carry a message are held back as dead letters with the same stream_seq, and the others stored"
	}
	return "the records before it are handled as events of their own"
}
