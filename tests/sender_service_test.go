package tests

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestSenderGracefulShutdown: stopping a sender while requests are in
// flight lets them finish and records them; nothing is left in_flight and
// nothing LINE accepted is left unrecorded.
func TestSenderGracefulShutdown(t *testing.T) {
	t.Parallel()
	// 40 rows, 4 at a time, a second each: ten seconds of work, so the
	// stop lands while most rows still wait.
	b := setupSender(t, linefake.Config{Faults: linefake.Faults{Latency: time.Second}})
	for i := 0; i < 40; i++ {
		b.insert(t, "push", pushBody(userID(i), "slow"))
	}
	cfg := b.config("s")
	cfg.Concurrency, cfg.BatchSize = 4, 4
	stop := b.start(t, cfg)
	waitFor(t, "requests in flight", func() (bool, string) {
		c := b.statusCounts(t)
		return c["in_flight"] > 0, fmt.Sprint(c)
	})
	stop()
	c := b.statusCounts(t)
	if c["in_flight"] != 0 || c["delivered"] == 0 || c["delivered"] != len(b.line.Accepted()) || c["pending"] == 0 {
		t.Fatalf("after shutdown: %v, LINE accepted %d", c, len(b.line.Accepted()))
	}
}

// TestSenderService runs the service as cmd/sender does: configuration
// from the environment, the single channel upserted, ops endpoints up, a
// row delivered, and a clean return on cancellation.
func TestSenderService(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	st, addr := senderServiceSettings(t, b, map[string]string{"SENDER_RATE_BROADCAST": "30/1h"})
	if _, err := sender.SettingsFromEnv(config.FromMap(map[string]string{"SENDER_RATE_PUSH": "fast"})); err == nil {
		t.Fatal("bad settings accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sender.RunService(ctx, st, zap.NewNop()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service: %v", err)
		}
	}()

	// Created five seconds ago (an operator may set created_at): the
	// send delay the sender reports counts from there.
	var id int64
	if err := b.db.Pool.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body, created_at)
		VALUES ('2000000001', 'push', $1, now() - interval '5 seconds') RETURNING id`,
		pushBody(userID(1), "via env channel")).Scan(&id); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "delivered")
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	waitFor(t, "ops endpoints", func() (bool, string) {
		code, _ := get("/readyz")
		return code == 200, fmt.Sprint(code)
	})
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `linepipe_sender_rows_total{status="delivered"} 1`) {
		t.Fatalf("metrics %d: missing the delivery", code)
	}
	if !strings.Contains(body, `linepipe_sender_send_delay_seconds_count{endpoint="push"} 1`) {
		t.Fatalf("metrics: no send delay for the push")
	}
	if d := metricValue(t, body, `linepipe_sender_send_delay_seconds_sum{endpoint="push"}`); d < 5 || d > 60 {
		t.Fatalf("send delay %.3fs for a row created 5s before it was inserted", d)
	}
	// The poll (20 ms) claims dozens of times and finds nothing: only
	// the claim that took the row is timed.
	if n := metricValue(t, body, `linepipe_sender_claim_seconds_count`); n != 1 {
		t.Fatalf("metrics: %v claims timed, want 1, the one that took the row", n)
	}
}

// TestSenderStopsAtStartOnContentSettingsNATSRefuses: a content setting
// NATS cannot use (a client certificate that does not load) stops the
// sender at start, as it stops ingest and the worker, before anything is
// sent; it does not send on with no content fetched and say so only when
// it stops.
func TestSenderStopsAtStartOnContentSettingsNATSRefuses(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	missing := t.TempDir() + "/missing.pem"
	st, _ := senderServiceSettings(t, b, map[string]string{"CONTENT_FETCH": "true",
		"NATS_URL": testenv.NATSURL(t), "NATS_TLS_CERT": missing, "NATS_TLS_KEY": missing})
	id := b.insert(t, "push", pushBody(userID(1), "not yet"))
	done := make(chan error, 1)
	go func() { done <- sender.RunService(context.Background(), st, zap.NewNop()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "content fetcher") {
			t.Fatalf("service returned %v, want the content fetcher's setting refused", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sender ran on with a client certificate NATS cannot load")
	}
	if c := b.statusCounts(t); c["pending"] != 1 || len(b.line.Accepted()) != 0 {
		t.Fatalf("row %d after a refused start: %v, LINE accepted %d; want it pending, nothing sent", id, c, len(b.line.Accepted()))
	}
}

// metricValue is the value of the sample named (with its labels) name in
// a Prometheus text exposition.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}

// senderServiceSettings is what cmd/sender reads from an environment
// naming b's database and emulator and the single channel 2000000001
// (added to the emulator), with extra set on top; and the ops address.
func senderServiceSettings(t *testing.T, b *senderBundle, extra map[string]string) (sender.Settings, string) {
	t.Helper()
	if err := b.line.AddChannel(linefake.Channel{ID: "2000000001", Secret: "env-secret"}); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL": b.db.URL, "LINE_API_BASE_URL": b.api.URL, "SENDER_ADDR": addr,
		"LINE_CHANNEL_ID": "2000000001", "LINE_CHANNEL_SECRET": "env-secret",
		"SENDER_POLL_INTERVAL": "20ms", "CONTENT_FETCH": "false",
	}
	maps.Copy(env, extra)
	st, err := sender.SettingsFromEnv(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	return st, addr
}

// TestSenderStoppedMidClaimLeavesNothingInFlight: a sender stopped under a
// backlog, whenever the stop lands (in the middle of a claim's round trip
// too), sends every row it claimed before it returns; none is left
// in_flight to wait for its lease's end, which a reply's token would not
// outlive. The stop is repeated at varied moments, as the claim it must
// land in takes a few milliseconds of every cycle.
func TestSenderStoppedMidClaimLeavesNothingInFlight(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	if _, err := b.db.Pool.Exec(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', format('{"to":"U%s","messages":[{"type":"text","text":"backlog"}]}', lpad(to_hex(i), 32, '0'))::json
		FROM generate_series(1, 20000) i`, b.channel); err != nil {
		t.Fatal(err)
	}
	cfg := b.config("stopped")
	cfg.Concurrency, cfg.BatchSize = 64, 50
	for i := range 24 {
		stop := b.start(t, cfg)
		time.Sleep(time.Duration(100+13*i) * time.Millisecond)
		stop()
		c := b.statusCounts(t)
		if c["in_flight"] != 0 {
			t.Fatalf("stop %d: %d rows left in_flight (%v)", i+1, c["in_flight"], c)
		}
		if c["delivered"] != len(b.line.Accepted()) {
			t.Fatalf("stop %d: %d delivered, LINE accepted %d", i+1, c["delivered"], len(b.line.Accepted()))
		}
	}
}
