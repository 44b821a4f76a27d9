package ingest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

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
	if readiness(nc, js, notYet, sc.Stream)(ctx) == nil {
		t.Fatal("ready before the stream was ensured")
	}
	ready := readiness(nc, js, stream.EnsureInBackground(ctx, js, sc, zap.NewNop()), sc.Stream)
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
