package worker

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// While Postgres refuses connections the worker retries whole batches
// later: it neither splits them into a connection per message nor counts
// the outage against any message. When Postgres is back, all is stored.
func TestPostgresOutageRetriesWholeBatches(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setup(t)
	const channel, n = "1650000003", 30
	var evs []fixture.E
	for i := 0; i < n; i++ {
		evs = append(evs, fixture.Text(fixture.User(fixture.UserID(70+i)), time.Now(), "outage"))
	}
	b.publish(t, channel, evs...)

	// Postgres "down": nothing listens on port 1.
	down, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/test?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := Config{AckWait: 2 * time.Second, MaxAttempts: 1, IdleWait: time.Second}
	sick := New(cfg, b.sc, b.js, down, NewMetrics(ops.NewRegistry()), zap.New(core))
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
	well := New(cfg, b.sc, b.js, b.db.Pool, NewMetrics(ops.NewRegistry()), zap.NewNop())
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); _ = well.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()
	b.waitStored(t, n)
}
