package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// /readyz is ready only once the stream exists and while JetStream
// answers: a load balancer then stops sending webhooks that would 503.
func TestReadinessFollowsJetStream(t *testing.T) {
	t.Parallel()
	srv := testenv.NewEmbeddedNATS(t)
	names := testenv.NewNames()
	sc := stream.Config{URL: srv.URL(), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(sc, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notYet := make(chan struct{})
	if readiness(nc, js, notYet, sc.Stream, NewSecrets(nil, nil, zap.NewNop(), nil))(ctx) == nil {
		t.Fatal("ready before the stream was ensured")
	}
	ready := readiness(nc, js, stream.EnsureInBackground(ctx, js, sc, zap.NewNop()), sc.Stream, NewSecrets(nil, nil, zap.NewNop(), nil))
	waitFor(t, func() bool { return ready(ctx) == nil }, "ready with the stream in place")
	srv.Stop()
	waitFor(t, func() bool { return ready(ctx) != nil }, "not ready with NATS down")
	srv.Start()
	waitFor(t, func() bool { return ready(ctx) == nil }, "ready again after NATS returned")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNotReadyUntilChannelsRead: with a database, ingest is ready only
// once it has read the channels table: before that every webhook would
// get 503, so a replica started during a Postgres outage stays out of
// rotation. Once read, an outage leaves it ready on its cached secrets.
func TestNotReadyUntilChannelsRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := testenv.NewNames()
	sc := stream.Config{URL: testenv.NATSURL(t), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(sc, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streamReady := stream.EnsureInBackground(sctx, js, sc, zap.NewNop())
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), sc.Stream) })

	db := testenv.NewDB(t)
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	secrets := NewSecrets(pool, map[string]string{"123": fuzzSecret}, zap.NewNop(), nil)
	ready := readiness(nc, js, streamReady, sc.Stream, secrets)
	var nr *ops.NotReadyError
	if err := ready(ctx); !errors.As(err, &nr) || nr.Component != "channels" {
		t.Fatalf("before the channels table was read: %v, want not ready: channels", err)
	}
	if err := secrets.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ready(ctx) == nil }, "ready once the table was read")
	pool.Close()
	if err := secrets.Refresh(ctx); err == nil {
		t.Fatal("refresh read a closed pool")
	}
	if err := ready(ctx); err != nil {
		t.Fatalf("with the table unreadable after it was read: %v, want ready on cached secrets", err)
	}
}
