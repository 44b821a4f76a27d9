package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
)

// recorder stands in for JetStream in handler unit tests: it keeps what
// would have been published. Integration tests use real JetStream.
type recorder struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (r *recorder) Publish(_ context.Context, msgs []*nats.Msg) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	return 0, nil
}

const fuzzSecret = "8c570fa6dd201bb328f1c1eac23a96d8"

func newTestHandler(p Publisher) *Handler {
	return &Handler{Config: Config{MaxBodyBytes: 64 << 10}.WithDefaults(), Stream: stream.Config{}.WithDefaults(),
		Secrets: NewSecrets(nil, map[string]string{"123": fuzzSecret}, zap.NewNop(), nil), Publisher: p,
		Metrics: NewMetrics(ops.NewRegistry()), Log: zap.NewNop(), Now: time.Now}
}

// FuzzWebhookHandler: whatever the body and signature, the handler never
// panics, never answers 2xx unless the signature is valid for the exact
// bytes, and on 2xx publishes exactly the webhook's events, each carrying
// the log record (or, with no events, the record alone).
func FuzzWebhookHandler(f *testing.F) {
	seeds := []string{
		`{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}`,
		`{"destination":"U1","events":[{"type":"message","webhookEventId":"01FZ","message":{"id":"1","type":"text","text":"hi"}}]}`,
		`{"events":[{"type":"unsend","unsend":{"messageId":"1"}},{"type":"futureThing","x":[1,{"y":null}]}]}`,
		`{"events":[1]}`, `[]`, `{`, ``, `{"events":null}`, `{"events":[{}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), true, "")
		f.Add([]byte(s), false, "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=")
		f.Add([]byte(s), false, "")
	}
	f.Fuzz(func(t *testing.T, body []byte, sign bool, sig string) {
		rec := &recorder{}
		h := newTestHandler(rec)
		if sign {
			sig = events.Sign(fuzzSecret, body)
		}
		req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(body))
		req.SetPathValue("channelID", "123")
		req.Header.Set(events.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		valid := events.VerifySignature(fuzzSecret, sig, body) == nil
		if w.Code >= 200 && w.Code < 300 {
			if !valid {
				t.Fatalf("answered %d for a body whose signature is invalid", w.Code)
			}
			wh, err := events.ParseWebhook(body)
			if err != nil {
				t.Fatalf("answered %d for an unparseable body: %v", w.Code, err)
			}
			if len(wh.Events) == 0 {
				if len(rec.msgs) != 1 || rec.msgs[0].Header.Get(events.HeaderKind) != events.KindWebhookLog {
					t.Fatalf("a webhook without events published %d messages, want its log record alone", len(rec.msgs))
				}
				return
			}
			if len(rec.msgs) != len(wh.Events) {
				t.Fatalf("published %d messages for %d events", len(rec.msgs), len(wh.Events))
			}
			for i, ev := range wh.Events {
				if !bytes.Equal(rec.msgs[i].Data, ev) {
					t.Fatalf("event %d published altered", i)
				}
				if rec.msgs[i].Header.Get(events.HeaderWebhookLog) == "" {
					t.Fatalf("event %d does not carry the webhook's log record", i)
				}
			}
			return
		}
		if len(rec.msgs) != 0 {
			t.Fatalf("answered %d but published %d messages", w.Code, len(rec.msgs))
		}
		if !valid && len(body) <= 64<<10 && w.Code != http.StatusUnauthorized {
			t.Fatalf("invalid signature answered %d, want 401", w.Code)
		}
	})
}
