package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestIngestStartsWhileNATSIsDown: ingest started before its NATS server
// (a host reboot, where compose restarts containers without waiting for
// their dependencies) stays up and unready, then takes webhooks once the
// server is there.
func TestIngestStartsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	srv := testenv.NewEmbeddedNATS(t)
	srv.Stop()
	names := testenv.NewNames()
	const channel, secret = "1650000078", "start-secret-0123456789abcdef"
	addr, admin := freeAddr(t), freeAddr(t)
	s, err := ingest.SettingsFromEnv(config.FromMap(map[string]string{
		"LINE_CHANNEL_ID": channel, "LINE_CHANNEL_SECRET": secret, "NATS_URL": srv.URL(),
		"NATS_STREAM": names.Stream, "NATS_SUBJECT_PREFIX": names.SubjectPrefix,
		"INGEST_ADDR": addr, "INGEST_ADMIN_ADDR": admin, "SHUTDOWN_GRACE": "2s"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ingest.Run(ctx, s, zap.NewNop()) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("ingest stopped while NATS was down: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("ingest ready with NATS down")
			}
			break // serving, and not ready
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest's admin port not serving 10s after start: %v", err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("ingest stopped while NATS was down: %v", err)
	case <-time.After(time.Second):
	}

	srv.Start()
	waitReady(t, admin)
	body := fixture.Body("Udest", fixture.Text(fixture.User(fixture.UserID(78)), time.Now(), "after the outage"))
	if got := postUntilAnswered(t, "http://"+addr+"/webhook/"+channel, secret, body); got != http.StatusOK {
		t.Fatalf("webhook once NATS is up: %d, want 200", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ingest stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop")
	}
}
