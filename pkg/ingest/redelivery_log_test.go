package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
)

// refusing is JetStream acknowledging nothing.
type refusing struct{}

func (refusing) Publish(context.Context, []*nats.Msg) (int, error) { return 0, errors.New("no ack") }

// webhookBody is a webhook for destination with one event per flag, each
// flag its deliveryContext.isRedelivery.
func webhookBody(destination string, redelivered ...bool) []byte {
	evs := make([]string, len(redelivered))
	for i, r := range redelivered {
		evs[i] = fmt.Sprintf(`{"type":"message","mode":"active","timestamp":1700000000000,`+
			`"webhookEventId":"01HZZZZZZZZZZZZZZZZZZZZR%02d","source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},`+
			`"deliveryContext":{"isRedelivery":%t},"replyToken":"abc","message":{"id":"%d","type":"text","text":"hi"}}`, i, r, i+1)
	}
	return []byte(`{"destination":"` + destination + `","events":[` + strings.Join(evs, ",") + `]}`)
}

// TestWebhookLogLineSaysRedelivery: once a webhook's body is parsed, its
// log line says whether LINE marked any event a redelivery, whatever the
// answer: a 503 or 413 after the parse leaves no webhook_log row, so the
// line is the only record of it. A webhook refused before its body was
// parsed says nothing either way.
func TestWebhookLogLineSaysRedelivery(t *testing.T) {
	t.Parallel()
	// Two events of a 40-byte destination cost 2 × (EventOverhead + 40):
	// more than this buffer, though each event alone fits.
	const buffer = 2*EventOverhead + 40
	dest := strings.Repeat("U", 40)
	cases := []struct {
		name     string
		pub      Publisher
		buffered int64
		body     []byte
		unsigned bool
		status   int
		want     any // the redelivery field; nil: absent
	}{
		{"stored", accepting{}, 0, webhookBody("U1", false, false), false, http.StatusOK, false},
		{"stored redelivery", accepting{}, 0, webhookBody("U1", false, true), false, http.StatusOK, true},
		{"not stored", refusing{}, 0, webhookBody("U1", true), false, http.StatusServiceUnavailable, true},
		{"not stored, new", refusing{}, 0, webhookBody("U1", false), false, http.StatusServiceUnavailable, false},
		{"too many events", accepting{}, buffer, webhookBody(dest, true, false), false, http.StatusRequestEntityTooLarge, true},
		{"bad signature", accepting{}, 0, webhookBody("U1", true), true, http.StatusUnauthorized, nil},
		{"not a webhook", accepting{}, 0, []byte(`{"events":`), false, http.StatusBadRequest, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newTestHandler(c.pub)
			if c.buffered > 0 {
				h.Config.MaxBufferedBytes = c.buffered
			}
			core, logs := observer.New(zap.InfoLevel)
			h.Log = zap.New(core)
			sig := events.Sign(fuzzSecret, c.body)
			if c.unsigned {
				sig = events.Sign("another secret", c.body)
			}
			req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(c.body))
			req.Header.Set(events.SignatureHeader, sig)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("answered %d %q, want %d", w.Code, w.Body.String(), c.status)
			}
			lines := logs.FilterMessage("webhook").All()
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1", len(lines))
			}
			got, ok := lines[0].ContextMap()["redelivery"]
			if c.want == nil && ok || c.want != nil && got != c.want {
				t.Fatalf("log line's redelivery: %v (present: %v), want %v", got, ok, c.want)
			}
		})
	}
}
