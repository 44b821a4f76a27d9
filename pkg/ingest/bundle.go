package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
)

// Defaults for BundlePublisher.
const (
	// DefaultBundleMaxEvents bounds the events of one bundle.
	DefaultBundleMaxEvents = 500
	// DefaultBundleMaxBytes keeps a bundle far under NATS's default 1 MiB
	// max_payload; a webhook bigger than that is split across bundles.
	DefaultBundleMaxBytes = 512 << 10
	// DefaultSingleMaxEvents is the largest redelivery published one
	// message per event. NATS fsyncs each of those messages on its own
	// (1.7 to 2 ms apiece where measured), so together they must fit well
	// within the publish budget (DefaultPublishTimeout, 1 s): a redelivery
	// of 400 events took 850 ms alone, and a webhook of 700 never fit and
	// got 503 on every attempt. A larger redelivery is bundled like any
	// other webhook.
	DefaultSingleMaxEvents = 50
	// DefaultBundleInflight is how many bundles await their PubAck at
	// once. One is classic group commit: whatever arrives while a bundle
	// is being synced goes in the next. NATS syncs a stream's messages one
	// after another anyway, so more in flight only made bundles smaller
	// (make bench -stages ingest: 6,444 webhooks/s with one, 5,512 with
	// four, same machine).
	DefaultBundleInflight = 1
)

// BundlePublisher is ingest's group commit. Concurrent webhooks hand it
// their messages; it publishes whatever has gathered as one bundle
// (events.EncodeBundle) while earlier bundles are still being stored.
// With NATS fsyncing before every acknowledgement (sync_interval:
// always), one stream message per event costs one fsync per event and
// caps ingest at the disk's fsync rate; a bundle is synced once for all
// its events. A webhook still gets 200 only after the PubAck of the
// bundle holding its events, so the promise is unchanged.
//
// A webhook too large for one bundle (MaxEvents, MaxBytes) is split, in
// order, into chunks that each fit one, and gets 200 once every chunk's
// bundle is stored: alone, one fsync per event, a webhook of 700 events
// outlasted the 1 s publish budget on every attempt. Chunks are gathered
// like any webhook, so they may share bundles with others.
//
// What a bundle gives up is JetStream's per-event deduplication (a
// bundle carries no Nats-Msg-Id: nothing republishes it). Postgres'
// unique keys drop a repeated event anyway. A redelivery of at most
// SingleMaxEvents events, where repeats are expected and where ingest
// reports duplicates, is published alone through Single, one message per
// event; a larger one is bundled, since its fsyncs one by one would not
// fit the publish budget. Single also takes an event too large for any
// bundle (the rest of its webhook is still bundled), and every webhook
// once Run has stopped.
type BundlePublisher struct {
	JS        jetstream.JetStream
	Subject   string // the stream's bundle subject (stream.Config.BundleSubject)
	Single    Publisher
	MaxEvents int
	MaxBytes  int
	Inflight  int
	// SingleMaxEvents is the largest redelivery published through Single.
	SingleMaxEvents int
	// Timeout bounds waiting for one bundle's PubAck.
	Timeout time.Duration
	Metrics *Metrics
	Log     *zap.Logger

	reqs    chan *bundleReq
	stopped chan struct{}
}

type bundleReq struct {
	msgs []*nats.Msg
	size int
	done chan error
}

// NewBundlePublisher fills defaults; run Run before Publish is used.
func NewBundlePublisher(p BundlePublisher) *BundlePublisher {
	if p.MaxEvents <= 0 {
		p.MaxEvents = DefaultBundleMaxEvents
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultBundleMaxBytes
	}
	if p.Inflight <= 0 {
		p.Inflight = DefaultBundleInflight
	}
	if p.SingleMaxEvents <= 0 {
		p.SingleMaxEvents = DefaultSingleMaxEvents
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultPublishTimeout
	}
	if p.Log == nil {
		p.Log = zap.NewNop()
	}
	p.reqs = make(chan *bundleReq)
	p.stopped = make(chan struct{})
	return &p
}

// Publish implements Publisher.
func (p *BundlePublisher) Publish(ctx context.Context, msgs []*nats.Msg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if len(msgs) <= p.SingleMaxEvents && isRedelivery(msgs) {
		return p.Single.Publish(ctx, msgs)
	}
	chunks, oversize := p.split(msgs)
	switch {
	case len(oversize) == 0:
		return p.bundled(ctx, chunks)
	case len(chunks) == 0:
		return p.Single.Publish(ctx, oversize)
	}
	// The oversize events are stored while the chunks gather and sync,
	// not after them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		dups int
		err  error
	}
	single := make(chan result, 1)
	go func() {
		dups, err := p.Single.Publish(ctx, oversize)
		single <- result{dups, err}
	}()
	dups, err := p.bundled(ctx, chunks)
	if err != nil {
		cancel() // the webhook fails anyway: stop waiting on its acks
	}
	r := <-single
	if err == nil {
		err = r.err
	}
	return dups + r.dups, err
}

// split cuts msgs, in order, into chunks that each fit one bundle, and
// returns apart the messages too large for any bundle.
func (p *BundlePublisher) split(msgs []*nats.Msg) (chunks []*bundleReq, oversize []*nats.Msg) {
	var cur *bundleReq
	for i, m := range msgs {
		size := msgSize(m)
		if size > p.MaxBytes {
			oversize = append(oversize, m)
			continue
		}
		if cur == nil || len(cur.msgs) == p.MaxEvents || cur.size+size > p.MaxBytes {
			cur = &bundleReq{msgs: make([]*nats.Msg, 0, min(len(msgs)-i, p.MaxEvents)), done: make(chan error, 1)}
			chunks = append(chunks, cur)
		}
		cur.msgs, cur.size = append(cur.msgs, m), cur.size+size
	}
	return chunks, oversize
}

// bundled hands the chunks to Run in order and waits until every one's
// bundle is stored. Chunks Run did not take, because it has stopped, go
// through Single.
func (p *BundlePublisher) bundled(ctx context.Context, chunks []*bundleReq) (int, error) {
	taken := 0
hand:
	for _, r := range chunks {
		select {
		case p.reqs <- r:
			taken++
		case <-p.stopped:
			break hand
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %v", ErrNotStored, ctx.Err())
		}
	}
	var alone []*nats.Msg
	for _, r := range chunks[:taken] {
		select {
		case err := <-r.done:
			if errors.Is(err, errBundlerStopped) {
				alone = append(alone, r.msgs...)
			} else if err != nil {
				return 0, err
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %v", ErrNotStored, ctx.Err())
		}
	}
	for _, r := range chunks[taken:] {
		alone = append(alone, r.msgs...)
	}
	if len(alone) == 0 {
		return 0, nil
	}
	return p.Single.Publish(ctx, alone)
}

// errBundlerStopped answers a request Run took but stopped before
// bundling; its messages go through Single.
var errBundlerStopped = errors.New("ingest: bundler stopped")

// Run gathers and publishes bundles until ctx ends; afterwards Publish
// publishes alone. Give it a context that outlives the HTTP server's
// graceful shutdown, so webhooks in flight then still get their bundle.
func (p *BundlePublisher) Run(ctx context.Context) {
	slots := make(chan struct{}, p.Inflight)
	var carry *bundleReq
	defer func() {
		// A request held over for the next bundle would otherwise wait
		// for a bundle that never comes.
		if carry != nil {
			carry.done <- errBundlerStopped
		}
		close(p.stopped)
	}()
	for {
		// Take a slot first: while every slot waits on NATS, new webhooks
		// gather for the next bundle. That is the group commit.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-p.reqs:
			case <-ctx.Done():
				return
			}
		}
		bundle, n, size := []*bundleReq{first}, len(first.msgs), first.size
	gather:
		for n < p.MaxEvents {
			select {
			case r := <-p.reqs:
				if n+len(r.msgs) > p.MaxEvents || size+r.size > p.MaxBytes {
					carry = r
					break gather
				}
				bundle, n, size = append(bundle, r), n+len(r.msgs), size+r.size
			default:
				break gather
			}
		}
		go func() {
			defer func() { <-slots }()
			err := p.publish(bundle, n)
			for _, r := range bundle {
				r.done <- err
			}
		}()
	}
}

// publish stores one bundle of n messages.
func (p *BundlePublisher) publish(bundle []*bundleReq, n int) error {
	recs := make([]events.Record, 0, n)
	for _, r := range bundle {
		for _, m := range r.msgs {
			recs = append(recs, events.Record{Header: m.Header, Data: m.Data})
		}
	}
	m := nats.NewMsg(p.Subject)
	m.Data = events.EncodeBundle(recs)
	m.Header[events.HeaderKind] = []string{events.KindBundle}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	if _, err := p.JS.PublishMsg(ctx, m); err != nil {
		if p.Metrics != nil {
			p.Metrics.observeBundle(n, false)
		}
		return fmt.Errorf("%w: %v", ErrNotStored, err)
	}
	if p.Metrics != nil {
		p.Metrics.observeBundle(n, true)
	}
	return nil
}

// msgSize is about what m adds to a bundle.
func msgSize(m *nats.Msg) int {
	n := len(m.Data) + 16
	for k, v := range m.Header {
		n += len(k) + 6
		for _, s := range v {
			n += len(s) + 3
		}
	}
	return n
}

func isRedelivery(msgs []*nats.Msg) bool {
	for _, m := range msgs {
		if events.HeaderValue(m.Header, events.HeaderRedelivery) == "true" {
			return true
		}
	}
	return false
}
