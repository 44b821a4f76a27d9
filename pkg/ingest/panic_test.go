package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
)

// panicking is a publisher whose first Publish panics with a value built
// from what it was given, as a bug deep in a publish could.
type panicking struct{ calls *int }

func (p panicking) Publish(_ context.Context, msgs []*nats.Msg) (int, error) {
	*p.calls++
	if *p.calls == 1 {
		panic("publishing " + string(msgs[0].Data))
	}
	return 0, nil
}

// TestPanicIsAnswered500AndLogged: a panic while a webhook is handled is
// answered 500, so LINE redelivers it, and still gets the webhook's log
// line and metrics, with neither the panic's value (built from the body
// here) nor the body in the log. The places it held are given back: the
// next webhook is taken.
func TestPanicIsAnswered500AndLogged(t *testing.T) {
	t.Parallel()
	calls := 0
	h := newTestHandler(panicking{calls: &calls})
	h.Config.MaxInFlight = 1
	core, logs := observer.New(zap.InfoLevel)
	h.Log = zap.New(core)
	body, sig := signedBody("01HZZZZZZZZZZZZZZZZZZZZZZZ")
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhook/123", strings.NewReader(string(body)))
		req.Header.Set(events.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}

	if w := post(); w.Code != http.StatusInternalServerError {
		t.Fatalf("webhook whose publish panicked: %d %q, want 500", w.Code, w.Body.String())
	}
	lines := logs.FilterMessage("webhook").FilterField(zap.Int("status", http.StatusInternalServerError)).All()
	if len(lines) != 1 || lines[0].ContextMap()["path"] != "/webhook/123" {
		t.Fatalf("log lines for the webhook answered 500: %+v", lines)
	}
	if n := testutil.ToFloat64(h.Metrics.webhooks.WithLabelValues("500")); n != 1 {
		t.Fatalf("requests counted with status 500: %v, want 1", n)
	}
	panics := logs.FilterMessage("webhook handler panicked").All()
	if len(panics) != 1 || panics[0].ContextMap()["panic_type"] != "string" {
		t.Fatalf("panic log lines: %+v", panics)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && k != "stack" && strings.Contains(s, `"text":"hi"`) {
				t.Fatalf("log line %q field %s holds the webhook's text: %q", e.Message, k, s)
			}
		}
	}
	if n := testutil.ToFloat64(h.Metrics.inFlight); n != 0 {
		t.Fatalf("in-flight gauge %v after the panic, want 0", n)
	}
	if w := post(); w.Code != http.StatusOK {
		t.Fatalf("webhook after the panic: %d %q, want 200", w.Code, w.Body.String())
	}
}
