package tests

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// A secret rotated with the README's UPDATE survives a restart of every
// service while LINE_CHANNEL_ID/LINE_CHANNEL_SECRET still hold the old
// one: the environment only seeds an absent row, and ingest verifies with
// the table's secret.
func TestRotatedSecretSurvivesRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	const channel, envSecret, rotated = "1650000077", "env-secret-0123456789abcdef", "rotated-secret-0123456789abcd"
	common := map[string]string{"LINE_CHANNEL_ID": channel, "LINE_CHANNEL_SECRET": envSecret,
		"NATS_URL": testenv.NATSURL(t), "NATS_STREAM": names.Stream, "NATS_SUBJECT_PREFIX": names.SubjectPrefix,
		"LINE_API_BASE_URL": "http://127.0.0.1:1", "SHUTDOWN_GRACE": "2s"}
	env := func(extra ...string) *config.Env {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return config.FromMap(m)
	}
	restartSender := func() {
		addr := freeAddr(t)
		st, err := sender.SettingsFromEnv(env("DATABASE_URL", db.RoleURL(t, store.RoleSender), "SENDER_ADDR", addr))
		if err != nil {
			t.Fatal(err)
		}
		runUntilReady(t, addr, func(ctx context.Context) error { return sender.RunService(ctx, st, zap.NewNop()) }, nil)
	}
	secretInTable := func() string {
		c, err := store.GetChannel(ctx, db.Pool, channel)
		if err != nil {
			t.Fatal(err)
		}
		return c.Secret
	}

	restartSender() // first start: seeds the absent row
	if got := secretInTable(); got != envSecret {
		t.Fatalf("first start did not seed the channel: %q", got)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE channels SET channel_secret = $1, updated_at = now() WHERE channel_id = $2`,
		rotated, channel); err != nil {
		t.Fatal(err)
	}
	restartSender()
	if got := secretInTable(); got != rotated {
		t.Fatalf("a sender restart reverted the rotated secret to the environment's")
	}

	waddr := freeAddr(t)
	ws, err := worker.SettingsFromEnv(env("DATABASE_URL", db.RoleURL(t, store.RoleWorker), "WORKER_ADDR", waddr))
	if err != nil {
		t.Fatal(err)
	}
	runUntilReady(t, waddr, func(ctx context.Context) error { return worker.Run(ctx, ws, zap.NewNop()) }, nil)

	iaddr, admin := freeAddr(t), freeAddr(t)
	is, err := ingest.SettingsFromEnv(env("DATABASE_URL", db.RoleURL(t, store.RoleIngest),
		"INGEST_ADDR", iaddr, "INGEST_ADMIN_ADDR", admin))
	if err != nil {
		t.Fatal(err)
	}
	runUntilReady(t, admin, func(ctx context.Context) error { return ingest.Run(ctx, is, zap.NewNop()) }, func() {
		body := fixture.Body("Udest", fixture.Text(fixture.User(fixture.UserID(77)), time.Now(), "rotation"))
		for secret, want := range map[string]int{rotated: http.StatusOK, envSecret: http.StatusUnauthorized} {
			if got := postUntilAnswered(t, "http://"+iaddr+"/webhook/"+channel, secret, body); got != want {
				t.Errorf("webhook signed with the %s secret: %d, want %d",
					map[bool]string{true: "rotated", false: "environment's"}[secret == rotated], got, want)
			}
		}
	})
	if got := secretInTable(); got != rotated {
		t.Fatalf("the rotated secret did not survive the restarts")
	}
}

// postUntilAnswered posts body signed with secret and returns the first
// answer that is not 503, retrying a 503 for up to 10s as LINE redelivers
// it: a freshly started ingest may not have read the channels table yet.
func postUntilAnswered(t *testing.T, url, secret string, body []byte) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("x-line-signature", events.Sign(secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return resp.StatusCode
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runUntilReady runs a service until its /readyz at addr answers 200,
// calls while (if any) with it running, then stops it and requires a
// clean return.
func runUntilReady(t *testing.T, addr string, run func(context.Context) error, while func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	waitReady(t, addr)
	if while != nil {
		while()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("service on %s: %v", addr, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("service on %s did not stop", addr)
	}
}
