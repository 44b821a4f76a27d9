package ingest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
)

// TestMalformedWebhookSaysWhy: a signed body that is not a webhook is
// answered 400 with what is wrong with it, in the answer and the log
// line, and nothing of the body quoted; nothing is published.
func TestMalformedWebhookSaysWhy(t *testing.T) {
	t.Parallel()
	js := &fakeStream{ids: map[string]bool{}}
	h := newTestHandler(js)
	core, logs := observer.New(zap.InfoLevel)
	h.Log = zap.New(core)
	for body, why := range map[string]string{
		`{"destination":"U1","evnts":[{"text":"secret"}]}`: "no events array",
		`{"events":[{"type":"message"},"secret"]}`:         "events[1] is not an object",
		`{"events":[{"text":"secret"}]}secret`:             "not valid JSON at byte 31",
	} {
		req := httptest.NewRequest(http.MethodPost, "/webhook/123", strings.NewReader(body))
		req.Header.Set(events.SignatureHeader, events.Sign(fuzzSecret, []byte(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		want := "malformed webhook body: " + why
		if w.Code != http.StatusBadRequest || strings.TrimSpace(w.Body.String()) != want {
			t.Errorf("%s: %d %q, want 400 %q", body, w.Code, w.Body.String(), want)
		}
	}
	for _, e := range logs.All() {
		if r, _ := e.ContextMap()["reason"].(string); !strings.HasPrefix(r, "malformed webhook body: ") || strings.Contains(r, "secret") {
			t.Errorf("log line reason %q, want the reason without the body", r)
		}
	}
	if len(logs.All()) != 3 || len(js.stored) != 0 {
		t.Fatalf("%d log lines and %d messages published for 3 malformed webhooks, want 3 and 0", len(logs.All()), len(js.stored))
	}
}
