package stream

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A connection the service closes itself, with Close (the sender's
// content fetcher) or Drain (ingest and the worker), logs no "nats
// disconnected" warning at shutdown; a connection the server drops
// still does.
func TestConnectWarnsOnlyOnLostConnections(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()

	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	closed, _, err := Connect(Config{URL: srv.ClientURL()}, "test-close", log)
	if err != nil {
		t.Fatal(err)
	}
	drained, _, err := Connect(Config{URL: srv.ClientURL()}, "test-drain", log)
	if err != nil {
		t.Fatal(err)
	}
	lost, _, err := Connect(Config{URL: srv.ClientURL()}, "test-lost", log)
	if err != nil {
		t.Fatal(err)
	}
	defer lost.Close()

	closed.Close()
	if err := drained.Drain(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !drained.IsClosed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("drain never closed the connection")
		}
	}
	// The server goes away: the connection still open hears of it. By
	// its warning, any callback the two closed ones were to run has long
	// run: each is queued as its connection closes.
	srv.Shutdown()
	srv.WaitForShutdown()
	for deadline := time.Now().Add(10 * time.Second); logs.FilterMessage("nats disconnected").Len() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("losing the server logged no warning")
		}
	}
	if n := logs.FilterMessage("nats disconnected").Len(); n != 1 {
		t.Errorf("%d \"nats disconnected\" warnings, want 1 (the lost connection's): %v", n, logs.All())
	}
}
