package worker

import (
	"context"
	"encoding/json"
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

// bundle is what a worker test needs: its own schema and its own stream.
type bundle struct {
	db     *testenv.DB
	sc     stream.Config
	js     jetstream.JetStream
	stream jetstream.Stream
}

func setup(t testing.TB) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &bundle{db: testenv.NewDB(t)}
	names := testenv.NewNames()
	b.sc = stream.Config{URL: testenv.NATSURL(t), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(b.sc, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b.js = js
	if b.stream, err = stream.Ensure(ctx, js, b.sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = js.DeleteStream(context.Background(), b.sc.Stream)
		nc.Close()
	})
	return b
}

// publish puts events on the stream as ingest does for channel.
func (b *bundle) publish(t *testing.T, channel string, evs ...fixture.E) {
	t.Helper()
	for _, e := range evs {
		m := nats.NewMsg(b.sc.EventSubject(channel))
		m.Data, _ = json.Marshal(e)
		events.Meta{ChannelID: channel, ReceivedAt: time.Now()}.SetHeaders(m.Header)
		m.Header[events.HeaderKind] = []string{events.KindEvent}
		if _, err := b.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(fixture.ID(e))); err != nil {
			t.Fatal(err)
		}
	}
}

// waitStored polls until the events table holds n rows and the stream is
// empty, failing after 30 s.
func (b *bundle) waitStored(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var stored int
		if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		info, err := b.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored == n && info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s %d of %d events stored, %d messages left on the stream", stored, n, info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
