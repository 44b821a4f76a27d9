package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

type bundleEnv struct {
	sc stream.Config
	js jetstream.JetStream
	st jetstream.Stream
}

func newBundleEnv(t *testing.T) *bundleEnv {
	t.Helper()
	names := testenv.NewNames()
	e := &bundleEnv{sc: stream.Config{URL: testenv.NATSURL(t), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()}
	nc, js, err := stream.Connect(e.sc, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.st, err = stream.Ensure(ctx, js, e.sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = js.DeleteStream(context.Background(), e.sc.Stream)
		nc.Close()
	})
	return e
}

// start runs a bundle publisher over e's stream until the test ends.
func (e *bundleEnv) start(t *testing.T, p BundlePublisher) *BundlePublisher {
	t.Helper()
	bp, _ := e.run(t, p)
	return bp
}

// run is start that also returns what stops Run early. Bundles go to
// p.JS when set, e's stream otherwise; Single always publishes to e's.
func (e *bundleEnv) run(t *testing.T, p BundlePublisher) (*BundlePublisher, context.CancelFunc) {
	t.Helper()
	if p.JS == nil {
		p.JS = e.js
	}
	p.Single = JetStreamPublisher{JS: e.js}
	if p.Subject == "" {
		p.Subject = e.sc.BundleSubject()
	}
	bp := NewBundlePublisher(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bp.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return bp, cancel
}

// webhook is the messages ingest builds for n text events of channel.
func (e *bundleEnv) webhook(channel string, n int, redelivered bool) []*nats.Msg {
	var evs []events.WebhookEvent
	for i := 0; i < n; i++ {
		ev := fixture.Text(fixture.User(fixture.UserID(i)), time.Now(), fmt.Sprintf("text %d", i))
		if redelivered {
			ev = fixture.Redelivered(ev)
		}
		b, _ := json.Marshal(ev)
		evs = append(evs, events.WebhookEvent{Raw: b, WebhookEventID: ev["webhookEventId"].(string), Redelivery: redelivered})
	}
	msgs := eventMsgs(e.sc, events.Meta{ChannelID: channel, ReceivedAt: time.Now(), WebhookID: fixture.EventID()}, evs)
	return msgs
}

// storedMsg is one stream message: a bundle, or an event alone as its
// only record.
type storedMsg struct {
	kind string
	size int // bytes of its data
	recs []events.Record
}

// messages is what the stream holds, in stream order.
func (e *bundleEnv) messages(t *testing.T) []storedMsg {
	t.Helper()
	ctx := context.Background()
	info, err := e.st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		sm := storedMsg{kind: m.Header.Get(events.HeaderKind), size: len(m.Data), recs: []events.Record{{Header: m.Header, Data: m.Data}}}
		if sm.kind == events.KindBundle {
			if sm.recs, err = events.DecodeBundle(m.Data); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, sm)
	}
	return out
}

// stored is every message the stream holds, bundles split into their
// records, keyed by Nats-Msg-Id, with how many stream messages held them.
func (e *bundleEnv) stored(t *testing.T) (records map[string]events.Record, kinds map[string]int) {
	t.Helper()
	records, kinds = map[string]events.Record{}, map[string]int{}
	for _, m := range e.messages(t) {
		kinds[m.kind]++
		for _, r := range m.recs {
			id := events.HeaderValue(r.Header, jetstream.MsgIDHeader)
			if _, dup := records[id]; dup {
				t.Errorf("event %s stored twice", id)
			}
			records[id] = r
		}
	}
	return records, kinds
}

// Webhooks arriving together share bundles, and every event of every
// webhook whose Publish returned is on the stream exactly once, with the
// headers and bytes it would have had alone.
func TestBundlesGatherConcurrentWebhooks(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{Inflight: 1, Timeout: 5 * time.Second})
	const webhooks = 64
	sent := make([][]*nats.Msg, webhooks)
	for i := range sent {
		sent[i] = e.webhook("1650000041", 1+i%3, false)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, webhooks)
	for _, msgs := range sent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if dups, err := bp.Publish(ctx, msgs); err != nil || dups != 0 {
				errs <- fmt.Errorf("publish: %d duplicates, %v", dups, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	records, kinds := e.stored(t)
	if kinds[events.KindBundle] == 0 || kinds[events.KindBundle] >= webhooks || len(kinds) != 1 {
		t.Errorf("stream holds %v for %d concurrent webhooks; want fewer bundles than webhooks and nothing else", kinds, webhooks)
	}
	n := 0
	for _, msgs := range sent {
		for _, m := range msgs {
			n++
			id := m.Header.Get(jetstream.MsgIDHeader)
			r, ok := records[id]
			if !ok {
				t.Errorf("event %s acknowledged but not on the stream", id)
				continue
			}
			if string(r.Data) != string(m.Data) {
				t.Errorf("event %s stored as %q, sent %q", id, r.Data, m.Data)
			}
			for k, v := range m.Header {
				if got := events.HeaderValue(r.Header, k); got != v[0] {
					t.Errorf("event %s header %s = %q, want %q", id, k, got, v[0])
				}
			}
		}
	}
	if len(records) != n {
		t.Errorf("stream holds %d events, %d were published", len(records), n)
	}
}

// A bundle JetStream did not store fails every webhook in it: none may
// be answered 200.
func TestUnstoredBundleFailsItsWebhooks(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{Subject: "nostream.bundle", Timeout: 300 * time.Millisecond})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := bp.Publish(ctx, e.webhook("1650000042", 2, false)); !errors.Is(err, ErrNotStored) {
				t.Errorf("publish to no stream: %v, want ErrNotStored", err)
			}
		}()
	}
	wg.Wait()
}

// Redeliveries, and every webhook once the bundler has stopped, go one
// message per event, so JetStream still answers duplicates for them.
func TestRedeliveriesPublishAlone(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{})
	ctx := context.Background()
	redelivered := e.webhook("1650000043", 2, true)
	for round, want := range []int{0, 2} {
		dups, err := bp.Publish(ctx, redelivered)
		if err != nil || dups != want {
			t.Fatalf("redelivery round %d: %d duplicates, %v; want %d", round, dups, err, want)
		}
	}
	if _, kinds := e.stored(t); kinds[events.KindEvent] != 2 || kinds[events.KindBundle] != 0 {
		t.Errorf("stream holds %v; want the two redelivered events as messages of their own", kinds)
	}

	stopped := NewBundlePublisher(BundlePublisher{JS: e.js, Single: JetStreamPublisher{JS: e.js}, Subject: e.sc.BundleSubject()})
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	stopped.Run(rctx)
	if _, err := stopped.Publish(ctx, e.webhook("1650000043", 1, false)); err != nil {
		t.Fatal(err)
	}
	if _, kinds := e.stored(t); kinds[events.KindEvent] != 3 || kinds[events.KindBundle] != 0 {
		t.Errorf("after the bundler stopped the stream holds %v; want 3 events alone", kinds)
	}
}

// gatedJS stands in for the bundles' JetStream: when entered is set each
// bundle's publish reports there and waits for a token (or the close) of
// release, and the publish numbered fail (from 1) is refused.
type gatedJS struct {
	jetstream.JetStream
	entered chan struct{}
	release chan struct{}
	fail    int32
	calls   atomic.Int32
}

func (g *gatedJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if g.calls.Add(1) == g.fail {
		return nil, errors.New("refused by the test")
	}
	if g.entered != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.JetStream.PublishMsg(ctx, m, opts...)
}

func msgIDs(msgs []*nats.Msg) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Header.Get(jetstream.MsgIDHeader)
	}
	return ids
}

// recordIDs is the Nats-Msg-Id of every record of ms in stream order, and
// of those that came alone rather than in a bundle.
func recordIDs(ms []storedMsg) (all, alone []string) {
	for _, m := range ms {
		for _, r := range m.recs {
			id := events.HeaderValue(r.Header, jetstream.MsgIDHeader)
			all = append(all, id)
			if m.kind != events.KindBundle {
				alone = append(alone, id)
			}
		}
	}
	return all, alone
}

// A webhook of more events than a bundle holds goes as a few bundles, in
// order, not one message (and one fsync) per event: alone, 700 events
// outlasted the publish budget every time.
func TestLargeWebhookIsBundledInChunks(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{Timeout: 5 * time.Second})
	const n = 1200
	msgs := e.webhook("1650000044", n, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if dups, err := bp.Publish(ctx, msgs); err != nil || dups != 0 {
		t.Fatalf("publish: %d duplicates, %v", dups, err)
	}
	stored := e.messages(t)
	all, alone := recordIDs(stored)
	if want := (n + DefaultBundleMaxEvents - 1) / DefaultBundleMaxEvents; len(stored) != want || len(alone) != 0 {
		t.Errorf("a webhook of %d events is %d stream messages, %d of them events alone; want %d bundles", n, len(stored), len(alone), want)
	}
	for i, m := range stored {
		if len(m.recs) > DefaultBundleMaxEvents {
			t.Errorf("bundle %d holds %d events, over %d", i, len(m.recs), DefaultBundleMaxEvents)
		}
	}
	if !slices.Equal(all, msgIDs(msgs)) {
		t.Errorf("the stream holds %d events, not the webhook's %d in order", len(all), n)
	}
}

// A webhook over MaxBytes is cut by bytes: every bundle stays within it.
func TestLargeWebhookIsChunkedByBytes(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	const maxBytes = 16 << 10
	bp := e.start(t, BundlePublisher{MaxBytes: maxBytes, Timeout: 5 * time.Second})
	msgs := e.webhook("1650000045", 100, false)
	size := 0
	for _, m := range msgs {
		size += msgSize(m)
	}
	if size <= 2*maxBytes {
		t.Fatalf("the webhook is %d bytes; the test needs more than two bundles' worth", size)
	}
	if dups, err := bp.Publish(context.Background(), msgs); err != nil || dups != 0 {
		t.Fatalf("publish: %d duplicates, %v", dups, err)
	}
	stored := e.messages(t)
	all, alone := recordIDs(stored)
	if len(stored) < 3 || len(stored) > 10 || len(alone) != 0 {
		t.Errorf("a webhook of %d bytes is %d stream messages, %d of them events alone; want a few bundles of at most %d bytes", size, len(stored), len(alone), maxBytes)
	}
	for i, m := range stored {
		if m.size > maxBytes {
			t.Errorf("bundle %d is %d bytes, over %d", i, m.size, maxBytes)
		}
	}
	if !slices.Equal(all, msgIDs(msgs)) {
		t.Errorf("the stream holds %d events, not the webhook's %d in order", len(all), len(msgs))
	}
}

// An event too large for any bundle goes alone; the rest of its webhook
// is still bundled, in order.
func TestOversizeEventGoesAloneRestBundled(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	const maxBytes = 16 << 10
	bp := e.start(t, BundlePublisher{MaxBytes: maxBytes, Timeout: 5 * time.Second})
	msgs := e.webhook("1650000046", 30, false)
	big := msgs[7]
	big.Data = []byte(fmt.Sprintf(`{"type":"message","message":{"type":"text","text":%q}}`, strings.Repeat("x", maxBytes)))
	if dups, err := bp.Publish(context.Background(), msgs); err != nil || dups != 0 {
		t.Fatalf("publish: %d duplicates, %v", dups, err)
	}
	stored := e.messages(t)
	var bundled []string
	for _, m := range stored {
		if m.kind == events.KindBundle {
			b, _ := recordIDs([]storedMsg{m})
			bundled = append(bundled, b...)
		}
	}
	_, alone := recordIDs(stored)
	rest := msgIDs(slices.Delete(slices.Clone(msgs), 7, 8))
	if !slices.Equal(alone, msgIDs([]*nats.Msg{big})) || !slices.Equal(bundled, rest) {
		t.Errorf("stream holds %d events alone and %d bundled; want the oversize event alone and the other %d bundled in order",
			len(alone), len(bundled), len(rest))
	}
}

// A redelivery of more than DefaultSingleMaxEvents is bundled, since its
// fsyncs one by one would not fit the publish budget; a smaller one still
// goes one message per event, so JetStream answers its duplicates.
func TestLargeRedeliveryIsBundled(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{Timeout: 5 * time.Second})
	ctx := context.Background()
	small := e.webhook("1650000047", DefaultSingleMaxEvents, true)
	for round, want := range []int{0, len(small)} {
		if dups, err := bp.Publish(ctx, small); err != nil || dups != want {
			t.Fatalf("small redelivery round %d: %d duplicates, %v; want %d", round, dups, err, want)
		}
	}
	large := e.webhook("1650000047", DefaultSingleMaxEvents+1, true)
	if dups, err := bp.Publish(ctx, large); err != nil || dups != 0 {
		t.Fatalf("large redelivery: %d duplicates, %v", dups, err)
	}
	_, kinds := e.stored(t)
	if kinds[events.KindEvent] != len(small) || kinds[events.KindBundle] != 1 {
		t.Errorf("stream holds %v; want the small redelivery's %d events alone and the large one as a bundle", kinds, len(small))
	}
}

// A webhook is answered 200 only when every chunk is stored: one chunk
// refused fails the webhook.
func TestFailedChunkFailsItsWebhook(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	bp := e.start(t, BundlePublisher{JS: &gatedJS{JetStream: e.js, fail: 2}, Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bp.Publish(ctx, e.webhook("1650000048", 1200, false)); !errors.Is(err, ErrNotStored) {
		t.Errorf("publish with its second chunk refused: %v, want ErrNotStored", err)
	}
}

// Chunks Run has not taken when it stops go through Single, after the
// ones it bundled are stored.
func TestStoppedBundlerPublishesRestAlone(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	gate := &gatedJS{JetStream: e.js, entered: make(chan struct{}, 8), release: make(chan struct{})}
	bp, stop := e.run(t, BundlePublisher{JS: gate, Timeout: 10 * time.Second})
	msgs := e.webhook("1650000049", 1200, false)
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := bp.Publish(ctx, msgs)
		res <- err
	}()
	select {
	case <-gate.entered:
	case err := <-res:
		t.Fatalf("a webhook of 1,200 events was published without a bundle (%v)", err)
	}
	stop()
	<-bp.stopped
	close(gate.release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	stored := e.messages(t)
	all, alone := recordIDs(stored)
	if len(stored) != 1+len(msgs)-DefaultBundleMaxEvents || len(alone) != len(msgs)-DefaultBundleMaxEvents {
		t.Errorf("stream holds %d messages, %d events alone; want the first chunk bundled and the rest alone", len(stored), len(alone))
	}
	if !slices.Equal(all, msgIDs(msgs)) {
		t.Errorf("the stream holds %d events, not the webhook's %d in order", len(all), len(msgs))
	}
}

// A webhook Run held over for its next bundle when it stopped is not left
// waiting for that bundle: it goes through Single.
func TestStoppedBundlerAnswersHeldWebhook(t *testing.T) {
	t.Parallel()
	e := newBundleEnv(t)
	gate := &gatedJS{JetStream: e.js, entered: make(chan struct{}, 8), release: make(chan struct{})}
	bp, stop := e.run(t, BundlePublisher{JS: gate, MaxEvents: 4, Timeout: 10 * time.Second})
	var sent []*nats.Msg
	publish := func(n int) chan error {
		msgs := e.webhook("1650000050", n, false)
		sent = append(sent, msgs...)
		res := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := bp.Publish(ctx, msgs)
			res <- err
		}()
		return res
	}
	results := []chan error{publish(1)}
	<-gate.entered // its bundle waits; Run waits for the slot
	results = append(results, publish(3), publish(3))
	time.Sleep(100 * time.Millisecond) // both queue behind the first bundle
	gate.release <- struct{}{}
	// Run bundles one of the two and holds the other over: the two do
	// not fit one bundle.
	<-gate.entered
	stop()
	<-bp.stopped
	close(gate.release)
	for i, res := range results {
		if err := <-res; err != nil {
			t.Errorf("webhook %d: %v", i, err)
		}
	}
	records, _ := e.stored(t)
	for _, id := range msgIDs(sent) {
		if _, ok := records[id]; !ok {
			t.Errorf("event %s not on the stream", id)
		}
	}
}
