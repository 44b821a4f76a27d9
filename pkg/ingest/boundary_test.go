package ingest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
)

// accepting is JetStream acknowledging every message at once.
type accepting struct{}

func (accepting) Publish(context.Context, []*nats.Msg) (int, error) { return 0, nil }

// signedBody is a one-event webhook for channel 123, signed.
func signedBody(id string) ([]byte, string) {
	body := []byte(`{"destination":"U1","events":[{"type":"message","mode":"active","timestamp":1700000000000,` +
		`"webhookEventId":"` + id + `","source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},` +
		`"deliveryContext":{"isRedelivery":false},"replyToken":"abc","message":{"id":"1","type":"text","text":"hi"}}]}`)
	return body, events.Sign(fuzzSecret, body)
}

func postSigned(t *testing.T, url, id string) (int, string) {
	t.Helper()
	body, sig := signedBody(id)
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook/123", bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// stallBody opens a connection that posts to channel 123 a body of
// declared bytes but sends only sent of them, and leaves it waiting.
func stallBody(t *testing.T, addr string, declared, sent int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := "POST /webhook/123 HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(declared) + "\r\n\r\n"
	if _, err := c.Write([]byte(head + strings.Repeat("{", sent))); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitBuffered waits until the handler holds want bytes of bodies.
func waitBuffered(t *testing.T, h *Handler, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.Metrics.buffered.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("bodies held: %d bytes, want %d", h.Metrics.buffered.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUnsignedSlowBodiesCannotKeepLINEOut: requests that never finish
// their bodies, from anyone who knows a channel id but not its secret,
// take none of MaxInFlight's places, so LINE's signed webhook is still
// answered 200; and each such read ends BodyReadTimeout after it began,
// giving back the bytes it held.
func TestUnsignedSlowBodiesCannotKeepLINEOut(t *testing.T) {
	t.Parallel()
	h := newTestHandler(accepting{})
	h.Config.MaxInFlight = 2
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	began := time.Now()
	var slow []net.Conn
	for range 4 {
		slow = append(slow, stallBody(t, addr, 100, 1))
	}
	waitBuffered(t, h, 4)
	if code, body := postSigned(t, srv.URL, "01HZZZZZZZZZZZZZZZZZZZZZZA"); code != http.StatusOK {
		t.Fatalf("LINE's webhook behind four stalled bodies: %d %q, want 200", code, body)
	}

	for i, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(BodyReadTimeout + 3*time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled body %d: no answer within %s of BodyReadTimeout: %v", i, 3*time.Second, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("stalled body %d: answered %d, want 400", i, resp.StatusCode)
		}
	}
	if took := time.Since(began); took < BodyReadTimeout {
		t.Fatalf("stalled bodies answered after %s, before BodyReadTimeout %s", took, BodyReadTimeout)
	}
	waitBuffered(t, h, 0)
	if n := testutil.ToFloat64(h.Metrics.shed); n != 0 {
		t.Fatalf("shed counter %v, want 0: no signed webhook was turned away", n)
	}
}

// TestBodyBytesAreBounded: bodies are charged against MaxBufferedBytes as
// their bytes arrive, signed or not; a read that would pass it is
// answered 503, counted as shed, and once the held bodies are gone
// webhooks are taken again.
func TestBodyBytesAreBounded(t *testing.T) {
	t.Parallel()
	h := newTestHandler(accepting{})
	h.Config.MaxBodyBytes, h.Config.MaxBufferedBytes = 1024, 2048
	core, logs := observer.New(zap.InfoLevel)
	h.Log = zap.New(core)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	a, b := stallBody(t, addr, 1024, 1000), stallBody(t, addr, 1024, 1000)
	waitBuffered(t, h, 2000)
	code, body := postSigned(t, srv.URL, "01HZZZZZZZZZZZZZZZZZZZZZZB")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "too many webhook bodies being read") {
		t.Fatalf("webhook past the body buffer: %d %q, want 503 too many webhook bodies being read", code, body)
	}
	if n := testutil.ToFloat64(h.Metrics.shed); n != 1 {
		t.Fatalf("shed counter %v, want 1", n)
	}
	if n := len(logs.FilterMessage("webhook").FilterField(zap.Int("status", http.StatusServiceUnavailable)).All()); n != 1 {
		t.Fatalf("%d log lines for the refused webhook, want 1", n)
	}

	a.Close()
	b.Close()
	waitBuffered(t, h, 0)
	if code, body := postSigned(t, srv.URL, "01HZZZZZZZZZZZZZZZZZZZZZZC"); code != http.StatusOK {
		t.Fatalf("webhook once the held bodies were gone: %d %q, want 200", code, body)
	}
	waitBuffered(t, h, 0)
}

// TestEveryPathIsLoggedAndCounted: a request to a path that is not
// /webhook/{channelID} (a webhook URL mistyped in the console) is
// answered 404 with a log line and a count like any webhook, never by a
// router's silent 404 or redirect.
func TestEveryPathIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	h := newTestHandler(accepting{})
	core, logs := observer.New(zap.InfoLevel)
	h.Log = zap.New(core)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	paths := []string{"/", "/webhook", "/webhook/", "/webhook/123/", "/webhook//123", "/webhooks/123", "/webhook/123/x"}
	for _, p := range paths {
		body, sig := signedBody("01HZZZZZZZZZZZZZZZZZZZZZZD")
		req, _ := http.NewRequest(http.MethodPost, srv.URL+p, bytes.NewReader(body))
		req.Header.Set(events.SignatureHeader, sig)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, resp.StatusCode)
		}
		lines := logs.FilterMessage("webhook").FilterField(zap.String("path", p)).All()
		if len(lines) != 1 || lines[0].ContextMap()["status"] != int64(http.StatusNotFound) {
			t.Errorf("POST %s: log lines %+v, want one with status 404", p, lines)
		}
	}
	if n := testutil.ToFloat64(h.Metrics.webhooks.WithLabelValues("404")); n != float64(len(paths)) {
		t.Fatalf("404s counted: %v, want %d", n, len(paths))
	}
	if code, body := postSigned(t, srv.URL, "01HZZZZZZZZZZZZZZZZZZZZZZE"); code != http.StatusOK {
		t.Fatalf("the webhook path itself: %d %q", code, body)
	}
}

// TestBodyLimitFitsNATSPayload: the default body limit leaves room for an
// event's headers in NATS's default max_payload, and a limit that does
// not is refused with the largest that fits.
func TestBodyLimitFitsNATSPayload(t *testing.T) {
	t.Parallel()
	const natsDefault = 1 << 20
	if err := (Config{}).WithDefaults().FitsPayload(natsDefault); err != nil {
		t.Fatalf("defaults against NATS's default max_payload: %v", err)
	}
	err := Config{MaxBodyBytes: natsDefault}.WithDefaults().FitsPayload(natsDefault)
	if err == nil || !strings.Contains(err.Error(), "at most "+strconv.Itoa(natsDefault-HeaderRoom)) {
		t.Fatalf("a 1 MiB body limit against a 1 MiB max_payload: %v, want a refusal naming %d", err, natsDefault-HeaderRoom)
	}
	if err := (Config{MaxBodyBytes: 4 << 20}).WithDefaults().FitsPayload(8 << 20); err != nil {
		t.Fatalf("a 4 MiB limit with an 8 MiB max_payload: %v", err)
	}
}
