package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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
	p.JS, p.Single = e.js, JetStreamPublisher{JS: e.js}
	if p.Subject == "" {
		p.Subject = e.sc.BundleSubject()
	}
	bp := NewBundlePublisher(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bp.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return bp
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
	msgs, _ := eventMsgs(e.sc, events.Meta{ChannelID: channel, ReceivedAt: time.Now(), WebhookID: fixture.EventID()}, evs)
	return msgs
}

// stored is every message the stream holds, bundles split into their
// records, keyed by Nats-Msg-Id, with how many stream messages held them.
func (e *bundleEnv) stored(t *testing.T) (records map[string]events.Record, kinds map[string]int) {
	t.Helper()
	ctx := context.Background()
	info, err := e.st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	records, kinds = map[string]events.Record{}, map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		kind := m.Header.Get(events.HeaderKind)
		kinds[kind]++
		recs := []events.Record{{Header: m.Header, Data: m.Data}}
		if kind == events.KindBundle {
			if recs, err = events.DecodeBundle(m.Data); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range recs {
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
