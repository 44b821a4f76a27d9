package content

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// oneToken hands out the same token for every channel.
type oneToken struct{}

func (oneToken) Get(context.Context, string) (string, error) { return "tok", nil }
func (oneToken) Invalidate(string, string)                   {}

// TestCallsNeverSentAreNotLogged: a fetch that fails before its request
// leaves (its rate slot cannot be reserved, or its context ends while it
// waits for the slot) is retried with backoff as any failed call, but
// writes no "line api call" line and no api_log row: status 0 there
// means a request LINE did not answer. A request that did leave and got
// no answer still writes both.
func TestCallsNeverSentAreNotLogged(t *testing.T) {
	t.Parallel()
	claim := store.ContentClaim{MessageKey: store.MessageKey{ChannelID: "1650000001", MessageID: "m1"}, MessageType: "image"}

	cases := []struct {
		name     string
		cfg      Config
		prepare  func(t *testing.T, db *pgxpool.Pool)
		wait     time.Duration // the attempt's context ends after this
		wantSent int
	}{
		{name: "slot not reserved", prepare: func(t *testing.T, db *pgxpool.Pool) {
			if _, err := db.Exec(context.Background(), "DROP TABLE outbox_rate"); err != nil {
				t.Fatal(err)
			}
		}, wait: time.Minute},
		{name: "context ends waiting for the slot", cfg: Config{RateLimit: 1, RatePer: time.Hour},
			prepare: func(t *testing.T, db *pgxpool.Pool) {
				// The hour's one slot is taken: the attempt waits for the next.
				k := store.RateKey{ChannelID: claim.ChannelID, Bucket: bucketContent}
				if _, err := store.ReserveRateSlot(context.Background(), db, k, time.Hour); err != nil {
					t.Fatal(err)
				}
			}, wait: 500 * time.Millisecond},
		{name: "sent, no answer", prepare: func(*testing.T, *pgxpool.Pool) {}, wait: time.Minute, wantSent: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int32
			hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			}))
			t.Cleanup(hangUp.Close)
			db := testenv.NewDB(t)
			c.prepare(t, db.Pool)
			core, logs := observer.New(zap.InfoLevel)
			cfg := c.cfg
			cfg.BaseURL, cfg.Owner, cfg.Log = hangUp.URL, "test", zap.New(core)
			f, err := New(cfg, db.Pool, nil, oneToken{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.wait)
			defer cancel()
			var progress atomic.Int64
			a := &attempt{f: f, c: claim, token: "tok", progress: &progress}
			out := a.download(ctx, nil)

			if out.Status != store.ContentPending || out.RetryIn <= 0 || out.Error == "" {
				t.Fatalf("outcome %+v, want pending with a backoff and the reason", out)
			}
			if sent := requests.Load(); c.wantSent == 0 && sent != 0 {
				t.Fatalf("%d requests reached LINE, want none", sent)
			}
			if lines := logs.FilterMessage("line api call").Len(); lines != c.wantSent {
				t.Errorf("%d \"line api call\" lines for %d requests sent (outcome %q)", lines, c.wantSent, out.Error)
			}
			var rows int
			if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_log").Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != c.wantSent {
				t.Errorf("%d api_log rows for %d requests sent", rows, c.wantSent)
			}
			if c.wantSent == 0 && !strings.Contains(out.Error, "no request sent") {
				t.Errorf("outcome error %q does not say no request was sent", out.Error)
			}
		})
	}
}
