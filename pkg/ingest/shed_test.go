package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
)

// stalled is JetStream not acknowledging: every Publish waits until
// release is closed, after telling entered.
type stalled struct {
	entered chan struct{}
	release chan struct{}
}

func (s stalled) Publish(ctx context.Context, msgs []*nats.Msg) (int, error) {
	s.entered <- struct{}{}
	<-s.release
	return 0, nil
}

// readSpy is a request body that records whether it was read.
type readSpy struct {
	r    *bytes.Reader
	read bool
}

func (b *readSpy) Read(p []byte) (int, error) {
	b.read = true
	return b.r.Read(p)
}

// TestWebhooksPastMaxInFlightAreShed checks the bound on webhooks handled
// at once: with MaxInFlight waiting for JetStream, one more is answered
// 503 without its body being read, counted and logged as every webhook
// is, and once the waiting ones are answered a webhook is taken again.
func TestWebhooksPastMaxInFlightAreShed(t *testing.T) {
	t.Parallel()
	pub := stalled{entered: make(chan struct{}, 8), release: make(chan struct{})}
	h := newTestHandler(pub)
	h.Config.MaxInFlight = 2
	core, logs := observer.New(zap.InfoLevel)
	h.Log = zap.New(core)
	body, sig := signedBody("01HZZZZZZZZZZZZZZZZZZZZZZZ")
	post := func(b *readSpy) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhook/123", b)
		req.SetPathValue("channelID", "123")
		req.Header.Set(events.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	spy := func() *readSpy { return &readSpy{r: bytes.NewReader(body)} }

	waiting := make(chan int, 2)
	for range 2 {
		go func() { waiting <- post(spy()).Code }()
	}
	<-pub.entered
	<-pub.entered
	if n := testutil.ToFloat64(h.Metrics.inFlight); n != 2 {
		t.Fatalf("in-flight gauge %v with two webhooks waiting for acks, want 2", n)
	}

	// Past the bound, the answer comes at once; a handler that let the
	// webhook in would wait for the stalled acks.
	b := spy()
	third := make(chan *httptest.ResponseRecorder, 1)
	go func() { third <- post(b) }()
	var w *httptest.ResponseRecorder
	select {
	case w = <-third:
	case <-time.After(5 * time.Second):
		close(pub.release)
		t.Fatal("a webhook past MaxInFlight waited with the others instead of being answered")
	}
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "too many webhooks in flight") {
		t.Fatalf("third webhook: %d %q, want 503 too many webhooks in flight", w.Code, w.Body.String())
	}
	if b.read {
		t.Fatal("a shed webhook's body was read")
	}
	if n := testutil.ToFloat64(h.Metrics.shed); n != 1 {
		t.Fatalf("shed counter %v, want 1", n)
	}
	shedLines := logs.FilterMessage("webhook").FilterField(zap.Int("status", http.StatusServiceUnavailable)).All()
	if len(shedLines) != 1 || shedLines[0].ContextMap()["reason"] != "too many webhooks in flight; retry later" {
		t.Fatalf("log lines for the shed webhook: %+v", shedLines)
	}

	close(pub.release)
	for range 2 {
		if code := <-waiting; code != http.StatusOK {
			t.Fatalf("a webhook that waited for its acks got %d, want 200", code)
		}
	}
	if n := testutil.ToFloat64(h.Metrics.inFlight); n != 0 {
		t.Fatalf("in-flight gauge %v once every webhook was answered, want 0", n)
	}
	if w := post(spy()); w.Code != http.StatusOK {
		t.Fatalf("webhook after the others were answered: %d %q, want 200", w.Code, w.Body.String())
	}
	<-pub.entered
}
