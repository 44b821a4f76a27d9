package tests

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// senderBundle is what a sender test needs: its own schema, an emulated
// LINE Platform with one channel, and the channel registered in channels
// without a static token (so senders issue stateless tokens).
type senderBundle struct {
	db      *testenv.DB
	line    *linefake.Server
	api     *httptest.Server
	channel string
}

const testChannel = "1234567890"

func setupSender(t testing.TB, lc linefake.Config) *senderBundle {
	t.Helper()
	lc.Channels = append(lc.Channels, linefake.Channel{ID: testChannel, Secret: "s3cr3t-" + t.Name()})
	b := &senderBundle{db: testenv.NewDB(t), line: linefake.New(lc), channel: testChannel}
	b.api = httptest.NewServer(b.line)
	t.Cleanup(b.api.Close)
	ctx := context.Background()
	if err := store.UpsertChannel(ctx, b.db.Pool, store.Channel{ID: testChannel, Secret: "s3cr3t-" + t.Name()}); err != nil {
		t.Fatal(err)
	}
	return b
}

// config is a sender configuration fit for tests: fast polls and
// backoff, LINE's rates, the emulator as the API.
func (b *senderBundle) config(owner string) sender.Config {
	return sender.Config{
		BaseURL:        b.api.URL,
		Owner:          owner,
		PollInterval:   20 * time.Millisecond,
		BackoffBase:    10 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		Lease:          20 * time.Second,
		Concurrency:    8,
		BatchSize:      20,
	}
}

// start runs a sender until the test ends (or stop is called) and waits
// for it to return.
func (b *senderBundle) start(t testing.TB, cfg sender.Config) (stop func()) {
	t.Helper()
	s, err := sender.New(cfg, b.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sender %s: %v", cfg.Owner, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func userID(i int) string { return fmt.Sprintf("U%032x", i+1) }

func pushBody(to, text string) string {
	return fmt.Sprintf(`{"to":%q,"messages":[{"type":"text","text":%q}]}`, to, text)
}

// insert adds a row the way an operator does: one SQL statement.
func (b *senderBundle) insert(t testing.TB, endpoint, body string) int64 {
	t.Helper()
	var id int64
	err := b.db.Pool.QueryRow(context.Background(),
		`INSERT INTO outbox (channel_id, endpoint, body) VALUES ($1, $2, $3) RETURNING id`,
		b.channel, endpoint, body).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type outboxRow struct {
	ID                int64
	Status            string
	RetryKey          string
	Attempts          int
	LastStatusCode    *int
	LastError         *string
	RequestID         *string
	AcceptedRequestID *string
	SentMessageIDs    []string
	MaybeDelivered    bool
}

func (b *senderBundle) row(t testing.TB, id int64) outboxRow {
	t.Helper()
	var r outboxRow
	err := b.db.Pool.QueryRow(context.Background(), `SELECT id, status, retry_key::text, attempts, last_status_code,
		last_error, request_id, accepted_request_id, sent_message_ids, maybe_delivered FROM outbox WHERE id = $1`, id).
		Scan(&r.ID, &r.Status, &r.RetryKey, &r.Attempts, &r.LastStatusCode, &r.LastError, &r.RequestID,
			&r.AcceptedRequestID, &r.SentMessageIDs, &r.MaybeDelivered)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *senderBundle) statusCounts(t testing.TB) map[string]int {
	t.Helper()
	rows, err := b.db.Pool.Query(context.Background(), `SELECT status, count(*) FROM outbox GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// waitFor polls cond until it holds, failing after a generous deadline:
// a slow machine makes the test slower, never red.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	waitWithin(t, 60*time.Second, what, cond)
}

// waitWithin is waitFor for a promise of its own: cond must hold within d.
func waitWithin(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (b *senderBundle) waitStatus(t testing.TB, id int64, status string) outboxRow {
	t.Helper()
	var r outboxRow
	waitFor(t, fmt.Sprintf("row %d to be %s", id, status), func() (bool, string) {
		r = b.row(t, id)
		return r.Status == status, fmt.Sprintf("%+v", r)
	})
	return r
}

func (b *senderBundle) sends(endpoint string) int {
	n := 0
	for code, c := range b.line.Stats().Requests[endpoint] {
		if code != "" {
			n += c
		}
	}
	return n
}

// TestSenderExactlyOnceUnderFaults runs three replicas over 300 rows while
// the emulator fails, rate-limits, slows down and accepts-then-drops
// requests. Every row must end delivered and every retry key must have
// been accepted by LINE exactly once.
func TestSenderExactlyOnceUnderFaults(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{Seed: 7, Faults: linefake.Faults{
		FailRate: 0.15, TooManyRate: 0.1, DropRate: 0.15, LatencyJitter: 20 * time.Millisecond}})
	const rows = 300
	keys := map[string]int64{}
	for i := 0; i < rows; i++ {
		id := b.insert(t, "push", pushBody(userID(i%50), fmt.Sprintf("message %d", i)))
		keys[b.row(t, id).RetryKey] = id
	}
	for i := 0; i < 3; i++ {
		b.start(t, b.config(fmt.Sprintf("replica-%d", i)))
	}
	waitFor(t, "every row delivered", func() (bool, string) {
		c := b.statusCounts(t)
		return c["delivered"] == rows, fmt.Sprint(c)
	})

	accepted := b.line.Accepted()
	byKey := linefake.GroupBy(accepted, linefake.ByRetryKey)
	if len(accepted) != rows || len(byKey) != rows {
		t.Fatalf("LINE accepted %d sends under %d keys, want %d each", len(accepted), len(byKey), rows)
	}
	if d := linefake.Duplicates(accepted, linefake.ByRetryKey); len(d) > 0 {
		t.Fatalf("retry keys accepted more than once: %v", d)
	}
	conflicts := 0
	for _, d := range accepted {
		id, ok := keys[strings.ToLower(d.RetryKey)]
		if !ok {
			t.Fatalf("LINE accepted a key no row has: %s", d.RetryKey)
		}
		r := b.row(t, id)
		if len(r.SentMessageIDs) != 1 || r.SentMessageIDs[0] != d.SentMessages[0].ID {
			t.Fatalf("row %d records sent ids %v, LINE gave %v", id, r.SentMessageIDs, d.SentMessages)
		}
		if r.AcceptedRequestID != nil {
			conflicts++
			if *r.AcceptedRequestID != d.RequestID {
				t.Fatalf("row %d: accepted request id %s, LINE accepted %s", id, *r.AcceptedRequestID, d.RequestID)
			}
		}
	}
	if st := b.line.Stats(); conflicts == 0 || st.Dropped == 0 || st.Count("push", 500) == 0 || st.Count("push", 429) == 0 {
		t.Fatalf("faults did not bite: %d rows delivered via 409, stats %+v", conflicts, st.Requests)
	}
	var logged int
	if err := b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM api_log WHERE endpoint = '/v2/bot/message/push'`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if want := b.sends("push"); logged != want {
		t.Fatalf("api_log has %d push calls, LINE saw %d", logged, want)
	}
}
