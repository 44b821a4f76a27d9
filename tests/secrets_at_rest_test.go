package tests

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// With LINEPIPE_SECRET_KEY set, the channels table holds only sealed
// credentials, the services still verify webhooks with them, a service
// without the key cannot, and rows inserted as plaintext or sealed under a
// retired key are rewritten by seal-channels.
func TestSecretsAreEncryptedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	keyA := hex.EncodeToString([]byte("A123456789abcdef0123456789abcdef"))
	keyB := hex.EncodeToString([]byte("B123456789abcdef0123456789abcdef"))
	const channel, secret, token = "1650000088", "sealed-secret-0123456789abcdef", "sealed-static-token-xyz"
	env := func(kv ...string) *config.Env {
		m := map[string]string{"LINE_CHANNEL_ID": channel, "LINE_CHANNEL_SECRET": secret, "LINE_CHANNEL_ACCESS_TOKEN": token,
			"NATS_URL": testenv.NATSURL(t), "NATS_STREAM": names.Stream, "NATS_SUBJECT_PREFIX": names.SubjectPrefix,
			"LINE_API_BASE_URL": "http://127.0.0.1:1", "SHUTDOWN_GRACE": "2s"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return config.FromMap(m)
	}
	stored := func(id string) store.Channel {
		c, err := store.GetChannel(ctx, db.Pool, id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	saddr := freeAddr(t)
	st, err := sender.SettingsFromEnv(env("DATABASE_URL", db.RoleURL(t, store.RoleSender), "SENDER_ADDR", saddr,
		"LINEPIPE_SECRET_KEY", keyA))
	if err != nil {
		t.Fatal(err)
	}
	runUntilReady(t, saddr, func(ctx context.Context) error { return sender.RunService(ctx, st, zap.NewNop()) }, nil)
	row := stored(channel)
	for _, v := range []string{row.Secret, row.AccessToken} {
		if !secretbox.IsSealed(v) || strings.Contains(v, secret) || strings.Contains(v, token) {
			t.Fatalf("seeded credential stored as %q, want sealed", v)
		}
	}
	keys, _ := secretbox.ParseKeys(keyA)
	if opened, err := row.Opened(keys); err != nil || opened.Secret != secret || opened.AccessToken != token {
		t.Fatalf("sealed row does not open to what was seeded: %v", err)
	}

	// Ingest with the key verifies webhooks with the sealed secret; the
	// environment's copy is removed so only the table can answer.
	post := func(addr string) int {
		body := fixture.Body("Udest", fixture.Text(fixture.User(fixture.UserID(88)), time.Now(), "sealed"))
		return postUntilAnswered(t, "http://"+addr+"/webhook/"+channel, secret, body)
	}
	for _, c := range []struct {
		key  string
		want int
	}{{keyA, http.StatusOK}, {"", http.StatusServiceUnavailable}} {
		iaddr, admin := freeAddr(t), freeAddr(t)
		is, err := ingest.SettingsFromEnv(env("DATABASE_URL", db.RoleURL(t, store.RoleIngest), "INGEST_ADDR", iaddr,
			"INGEST_ADMIN_ADDR", admin, "LINEPIPE_SECRET_KEY", c.key, "LINE_CHANNEL_ID", "", "LINE_CHANNEL_SECRET", ""))
		if err != nil {
			t.Fatal(err)
		}
		runUntilReady(t, admin, func(ctx context.Context) error { return ingest.Run(ctx, is, zap.NewNop()) }, func() {
			if got := post(iaddr); got != c.want {
				t.Errorf("ingest with key %v: webhook answered %d, want %d", c.key != "", got, c.want)
			}
		})
	}

	// A plaintext row inserted by SQL, then a rotation from A to B.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO channels (channel_id, channel_secret) VALUES ('1650000089', 'plain-secret')`); err != nil {
		t.Fatal(err)
	}
	rotating, _ := secretbox.ParseKeys(keyB + "," + keyA)
	n, err := store.ResealChannels(ctx, db.Pool, rotating)
	if err != nil || n != 2 {
		t.Fatalf("reseal rewrote %d rows (%v), want 2", n, err)
	}
	onlyB, _ := secretbox.ParseKeys(keyB)
	for id, want := range map[string]string{channel: secret, "1650000089": "plain-secret"} {
		c := stored(id)
		if !strings.HasPrefix(c.Secret, secretbox.Prefix+onlyB.SealingKeyID()+":") {
			t.Errorf("channel %s not sealed under the new key: %q", id, c.Secret)
		}
		if opened, err := c.Opened(onlyB); err != nil || opened.Secret != want {
			t.Errorf("channel %s under the new key alone: %v", id, err)
		}
	}
	if n, err := store.ResealChannels(ctx, db.Pool, onlyB); err != nil || n != 0 {
		t.Errorf("a second reseal rewrote %d rows (%v), want 0", n, err)
	}
}
