package linefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/tests/testenv"
)

const (
	testChannel = "1234567890"
	testSecret  = "8c570fa6dd201bb328f1c1eac23a96d8"
	testToken   = "static-token-1"
	userA       = "U4af4980629aaaaaaaaaaaaaaaaaaaaaa"
	userB       = "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	groupC      = "Ca56f94637ccccccccccccccccccccccc"
	roomR       = "Rdddddddddddddddddddddddddddddddd"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// newFakeClock is the injected clock: it moves only when a test says so.
func newFakeClock() *testenv.Clock {
	return testenv.NewClock(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))
}

// bundle is what a test gets from setup: the emulator, a real HTTP server
// in front of it, and the clock that drives it.
type bundle struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	clock *testenv.Clock
}

func setup(t *testing.T, mod func(*Config)) *bundle {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{
		Channels: []Channel{{ID: testChannel, Secret: testSecret, AccessTokens: []string{testToken}}},
		Clock:    clock.Now,
		Seed:     42,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv := New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &bundle{t: t, srv: srv, ts: ts, clock: clock}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func (r response) sent(t *testing.T) []SentMessage {
	t.Helper()
	var b struct {
		SentMessages []SentMessage `json:"sentMessages"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("success body %q: %v", r.body, err)
	}
	return b.SentMessages
}

// do sends a request and checks what LINE guarantees of every response:
// a fresh x-line-request-id that is a UUID.
func (b *bundle) do(method, path string, body []byte, header map[string]string) (response, error) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.ts.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	if id := res.Header.Get("x-line-request-id"); !uuidRE.MatchString(id) {
		b.t.Errorf("%s %s -> %d: x-line-request-id %q is not a UUID", method, path, res.StatusCode, id)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// must is do that fails the test on a transport error.
func (b *bundle) must(method, path string, body []byte, header map[string]string) response {
	b.t.Helper()
	r, err := b.do(method, path, body, header)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send posts a send body with the static token and an optional retry key.
func (b *bundle) send(path string, body any, retryKey string) response {
	b.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + testToken}
	if retryKey != "" {
		h[RetryKeyHeader] = retryKey
	}
	return b.must(http.MethodPost, path, mustJSON(b.t, body), h)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	if raw, ok := v.([]byte); ok {
		return raw
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func texts(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = text(fmt.Sprintf("message %d", i))
	}
	return out
}

func push(to string, msgs ...any) map[string]any {
	return map[string]any{"to": to, "messages": msgs}
}

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, strings.TrimSpace(string(r.body)))
	}
}

// waitFor polls cond until it holds; the deadline is generous so a slow
// machine never fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
