package tests

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// withGatewayCredentials is base as an authenticating egress gateway's
// URL: a user and password in it. The services must accept it and never
// print the password.
func withGatewayCredentials(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("gw-user", "gw-pass")
	return u.String()
}

// logsShowing are the logged entries whose message or fields show s.
func logsShowing(logs *observer.ObservedLogs, s string) []string {
	var out []string
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestSenderLogsBaseURLRedacted: a sender whose LINE_API_BASE_URL carries
// credentials delivers through it, and its start line names the API
// with the password redacted.
func TestSenderLogsBaseURLRedacted(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	api := withGatewayCredentials(t, b.api.URL)
	st, _ := senderServiceSettings(t, b, map[string]string{"LINE_API_BASE_URL": api})
	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sender.RunService(ctx, st, zap.New(core)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service: %v", err)
		}
	}()
	var id int64
	if err := b.db.Pool.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body) VALUES ('2000000001', 'push', $1)
		RETURNING id`, pushBody(userID(1), "through the gateway")).Scan(&id); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, id, "delivered")

	started := logs.FilterMessage("sender started").All()
	want := strings.Replace(api, "gw-pass", "xxxxx", 1)
	if len(started) != 1 || started[0].ContextMap()["api"] != want {
		t.Fatalf("start lines %+v, want one with api %s", started, want)
	}
	if shown := logsShowing(logs, "gw-pass"); shown != nil {
		t.Fatalf("the base URL's password was logged: %v", shown)
	}
}

// TestContentFetcherLogsBaseURLRedacted: a content fetcher whose
// LINE_DATA_API_BASE_URL carries credentials fetches through it, and its
// start line names the API with the password redacted.
func TestContentFetcherLogsBaseURLRedacted(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	cfg := r.fetcherConfig()
	cfg.BaseURL = withGatewayCredentials(t, cfg.BaseURL)
	r.startFetcher(cfg)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 10<<10)
	r.webhook(img)
	r.waitStatus(img.Message.ID, store.ContentStored)

	// The fetcher logs its start before its first claim.
	started := r.logs.FilterMessage("content fetcher started").All()
	want := strings.Replace(cfg.BaseURL, "gw-pass", "xxxxx", 1)
	if len(started) != 1 || started[0].ContextMap()["api"] != want {
		t.Fatalf("start lines %+v, want one with api %s", started, want)
	}
	if shown := logsShowing(r.logs, "gw-pass"); shown != nil {
		t.Fatalf("the base URL's password was logged: %v", shown)
	}
}
