package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
)

// headerLog sits in front of the emulator and keeps, for every request to
// one path, whether it carried a header and with which value: the
// emulator's ledger records only what it accepted, and a retry it refused
// matters here as much.
type headerLog struct {
	next   http.Handler
	path   string
	header string

	mu   sync.Mutex
	seen []string // value per request; "<absent>" when not sent at all
}

func (h *headerLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == h.path {
		v, ok := r.Header[http.CanonicalHeaderKey(h.header)]
		h.mu.Lock()
		if ok {
			h.seen = append(h.seen, fmt.Sprint(v))
		} else {
			h.seen = append(h.seen, "<absent>")
		}
		h.mu.Unlock()
	}
	h.next.ServeHTTP(w, r)
}

func (h *headerLog) values() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// TestSenderReplyRetriesCarryNoRetryKey: LINE's reply endpoint takes no
// X-Line-Retry-Key (a request with one is refused), so a reply whose first
// attempts got a 500 or no answer in time is retried without one, and the
// retry, with the token still unused, is delivered. A retry carrying a key
// would be refused and the row would end uncertain.
func TestSenderReplyRetriesCarryNoRetryKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		faults  linefake.Faults
		timeout time.Duration // the sender's per-call timeout
		// first reports whether the row has had the failed attempt the
		// case is about.
		first func(r outboxRow) bool
	}{
		{"after a 5xx", linefake.Faults{FailRate: 1}, 5 * time.Second, func(r outboxRow) bool {
			return r.Status == "retrying" && r.LastStatusCode != nil && *r.LastStatusCode == 500
		}},
		// The emulator's latency runs before the token is looked at, so a
		// request the client gave up on consumed nothing.
		{"after a timeout", linefake.Faults{Latency: 2 * time.Second}, 300 * time.Millisecond, func(r outboxRow) bool {
			return r.Status == "retrying" && r.LastStatusCode == nil && r.MaybeDelivered
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setupSender(t, linefake.Config{})
			hl := &headerLog{next: b.line, path: linefake.PathReply, header: linefake.RetryKeyHeader}
			api := httptest.NewServer(hl)
			t.Cleanup(api.Close)
			if err := b.line.SetFaults(c.faults); err != nil {
				t.Fatal(err)
			}
			cfg := b.config("s")
			cfg.BaseURL = api.URL
			cfg.RequestTimeout = c.timeout
			id := b.insert(t, "reply", fmt.Sprintf(`{"replyToken":%q,"messages":[{"type":"text","text":"hi"}]}`,
				b.line.IssueReplyToken(b.channel)))
			b.start(t, cfg)
			waitFor(t, "a failed first attempt", func() (bool, string) {
				r := b.row(t, id)
				return c.first(r), fmt.Sprintf("%+v", r)
			})
			if err := b.line.SetFaults(linefake.Faults{}); err != nil {
				t.Fatal(err)
			}
			r := b.waitFinished(t, id)
			seen := hl.values()
			if len(seen) < 2 {
				t.Fatalf("LINE saw %d reply requests, want a failed one and a retry", len(seen))
			}
			for i, v := range seen {
				if v != "<absent>" {
					t.Errorf("reply request %d of %d carried %s: %s", i+1, len(seen), linefake.RetryKeyHeader, v)
				}
			}
			if r.Status != "delivered" || r.Attempts != len(seen) {
				t.Fatalf("row %+v after %d requests, want delivered by the last", r, len(seen))
			}
			if acc := b.line.Accepted(); len(acc) != 1 || acc[0].Endpoint != "reply" {
				t.Fatalf("LINE accepted %+v, want one reply", acc)
			}
		})
	}
}

// waitFinished waits until the row leaves pending, retrying and in_flight.
func (b *senderBundle) waitFinished(t testing.TB, id int64) outboxRow {
	t.Helper()
	var r outboxRow
	waitFor(t, fmt.Sprintf("row %d to finish", id), func() (bool, string) {
		r = b.row(t, id)
		return r.Status != "pending" && r.Status != "retrying" && r.Status != "in_flight", fmt.Sprintf("%+v", r)
	})
	return r
}

// stallTokens holds the first access-token request for a while before
// passing it on: every row claimed meanwhile waits for the token and
// reaches the point of sending after its rate slot has passed.
type stallTokens struct {
	next  http.RoundTripper
	stall time.Duration
	once  sync.Once
}

func (s *stallTokens) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == linefake.PathToken {
		s.once.Do(func() {
			select {
			case <-time.After(s.stall):
			case <-r.Context().Done():
			}
		})
	}
	return s.next.RoundTrip(r)
}

// TestSenderLateSendsTakeFreshSlots: rows are claimed with rate slots, then
// held up before sending (the token request stalls for longer than the
// slots reach). Each late send takes a fresh slot from the shared bucket
// instead of going out at once, so LINE never sees more requests in one
// second than the rate allows and never has to answer 429, although a
// whole horizon of sends became due together.
func TestSenderLateSendsTakeFreshSlots(t *testing.T) {
	t.Parallel()
	const perSecond = 10
	b := setupSender(t, linefake.Config{RateLimits: linefake.RateLimits{
		Push: linefake.Limit{Requests: perSecond, Per: time.Second}}})
	const rows = 30
	for i := 0; i < rows; i++ {
		b.insert(t, "push", pushBody(userID(i), fmt.Sprint("late ", i)))
	}
	reg := prometheus.NewRegistry()
	cfg := b.config("late")
	cfg.Rates = map[string]sender.Rate{"push": {Limit: perSecond, Per: time.Second}}
	cfg.Concurrency, cfg.BatchSize = 32, 32
	cfg.Registerer = reg
	cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second,
		Transport: &stallTokens{next: http.DefaultTransport, stall: 1500 * time.Millisecond}}
	b.start(t, cfg)
	waitFor(t, "every push delivered", func() (bool, string) {
		c := b.statusCounts(t)
		return c["delivered"] == rows, fmt.Sprint(c)
	})
	st := b.line.Stats()
	w := st.Window(b.channel, "push")
	t.Logf("push peaked at %d requests in one second (limit %d)", w.MaxAttempts, perSecond)
	if w.MaxAttempts > perSecond {
		t.Errorf("push peaked at %d requests in one second, limit %d", w.MaxAttempts, perSecond)
	}
	if n := st.Count("push", 429); n > 0 {
		t.Errorf("LINE had to answer 429 %d times", n)
	}
	if missed := counterValue(t, reg, "linepipe_sender_slot_missed_total"); missed == 0 {
		t.Errorf("no send missed its slot: the stall did not make sends late, so nothing was tested")
	}
}

// TestSenderTokenFetchIsBoundedAsASend: a token request LINE leaves
// unanswered is cut off at SENDER_HTTP_TIMEOUT, as a send is, so a row's
// time in the sender stays within LongestSend (the lease and a stopping
// sender's grace are sized by it); the row is retried and delivered.
// Bounded by the lease instead, the first attempt waited out the stall.
func TestSenderTokenFetchIsBoundedAsASend(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	id := b.insert(t, "push", pushBody(userID(1), "after a stalled token"))
	cfg := b.config("token-stall")
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.HTTPClient = &http.Client{Transport: &stallTokens{next: http.DefaultTransport, stall: time.Minute}}
	b.start(t, cfg)
	waitWithin(t, 10*time.Second, "the row delivered after its token request was cut off", func() (bool, string) {
		r := b.row(t, id)
		return r.Status == "delivered", fmt.Sprintf("%+v", r)
	})
}

// counterValue reads a counter without labels from reg.
func counterValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
