package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// While Postgres refuses connections the worker retries whole batches
// later: it neither splits them into a connection per message nor counts
// the outage against any message. When Postgres is back, all is stored.
func TestPostgresOutageRetriesWholeBatches(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	sc := stream.Config{URL: testenv.NATSURL(t), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(sc, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := stream.Ensure(ctx, js, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), sc.Stream) }()
	const channel, n = "1650000003", 30
	for i := 0; i < n; i++ {
		m := nats.NewMsg(sc.EventSubject(channel))
		e := fixture.Text(fixture.User(fixture.UserID(70+i)), time.Now(), "outage")
		m.Data, _ = json.Marshal(e)
		events.Meta{ChannelID: channel, ReceivedAt: time.Now()}.SetHeaders(m.Header)
		m.Header[events.HeaderKind] = []string{events.KindEvent}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	// Postgres "down": nothing listens on port 1.
	down, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/test?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := Config{AckWait: 2 * time.Second, MaxAttempts: 1, IdleWait: time.Second}
	sick := New(cfg, sc, js, down, NewMetrics(ops.NewRegistry()), zap.New(core))
	sctx, scancel := context.WithCancel(ctx)
	sdone := make(chan struct{})
	go func() { defer close(sdone); _ = sick.Run(sctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for logs.FilterMessage("batch failed transiently; retrying it later").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the worker never retried a batch during the outage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	scancel()
	<-sdone
	if n := logs.FilterMessage("batch failed; storing messages one by one").Len(); n != 0 {
		t.Fatalf("the batch was split %d times during an outage", n)
	}
	if n := logs.FilterMessage("message dead-lettered").Len(); n != 0 {
		t.Fatalf("%d messages dead-lettered for an outage", n)
	}

	// Postgres is back: a healthy worker stores every event.
	well := New(cfg, sc, js, db.Pool, NewMetrics(ops.NewRegistry()), zap.NewNop())
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); _ = well.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()
	for {
		var stored int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored == n && info.State.Msgs == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the outage %d of %d events stored, %d left on the stream", stored, n, info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
