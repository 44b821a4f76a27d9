package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
)

const fuzzSecret = "8c570fa6dd201bb328f1c1eac23a96d8"

func newTestHandler(p Publisher) *Handler {
	return &Handler{Config: Config{MaxBodyBytes: 64 << 10}.WithDefaults(), Stream: stream.Config{}.WithDefaults(),
		Secrets: NewSecrets(nil, map[string]string{"123": fuzzSecret}, zap.NewNop(), nil), Publisher: p,
		Metrics: NewMetrics(ops.NewRegistry()), Log: zap.NewNop(), Now: time.Now}
}

// fakeStream stands in for JetStream in the fuzz test, with the two
// behaviours ingest's answer depends on: it drops a message whose
// Nats-Msg-Id it already holds (counting a duplicate, as JetStream's
// dedup window does), and its failCall-th Publish stores the first half
// of its messages and then fails, as an ack timeout after a partial
// store would.
type fakeStream struct {
	ids      map[string]bool
	stored   []*nats.Msg
	calls    int
	failCall int
	failed   bool // the failing call has happened
}

func (f *fakeStream) Publish(_ context.Context, msgs []*nats.Msg) (int, error) {
	f.calls++
	dups := 0
	for i, m := range msgs {
		if f.calls == f.failCall && i >= len(msgs)/2 {
			f.failed = true
			return dups, fmt.Errorf("%w: injected", ErrNotStored)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if f.ids[id] {
			dups++
			continue
		}
		f.ids[id] = true
		f.stored = append(f.stored, m)
	}
	return dups, nil
}

// FuzzWebhookHandler: whatever the body and signature, the handler never
// panics, never answers 2xx unless the signature is valid for the exact
// bytes, and on 2xx has every event of the webhook stored, each new one
// carrying the log record, and the record alone when no event was new (no
// events, or every event a duplicate). A publish that fails is a 503.
// posts sends the same webhook again, as LINE's redelivery does, so its
// events are duplicates; failCall makes the nth publish fail.
func FuzzWebhookHandler(f *testing.F) {
	seeds := []string{
		`{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}`,
		`{"destination":"U1","events":[{"type":"message","webhookEventId":"01FZ","message":{"id":"1","type":"text","text":"hi"}}]}`,
		`{"events":[{"type":"unsend","unsend":{"messageId":"1"}},{"type":"futureThing","x":[1,{"y":null}]}]}`,
		`{"events":[1]}`, `[]`, `{`, ``, `{"events":null}`, `{"events":[{}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), true, "", uint8(0), uint8(0))
		f.Add([]byte(s), false, "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=", uint8(0), uint8(0))
		f.Add([]byte(s), false, "", uint8(0), uint8(0))
		f.Add([]byte(s), true, "", uint8(0), uint8(1)) // redelivered: every event a duplicate
		f.Add([]byte(s), true, "", uint8(1), uint8(1)) // first publish fails, the redelivery stores
		f.Add([]byte(s), true, "", uint8(2), uint8(1)) // the redelivery's (log record) publish fails
	}
	f.Fuzz(func(t *testing.T, body []byte, sign bool, sig string, failCall, posts uint8) {
		js := &fakeStream{ids: map[string]bool{}, failCall: int(failCall)}
		h := newTestHandler(js)
		if sign {
			sig = events.Sign(fuzzSecret, body)
		}
		for n := 0; n <= int(posts%2); n++ {
			checkPost(t, h, js, body, sig)
		}
	})
}

// checkPost posts body once and checks the answer against what the fake
// stream holds before and after.
func checkPost(t *testing.T, h *Handler, js *fakeStream, body []byte, sig string) {
	t.Helper()
	wh, parseErr := events.ParseWebhook(body)
	var ids []string
	allDup := parseErr == nil && len(wh.Events) > 0
	if parseErr == nil {
		for _, ev := range wh.Events {
			id := events.DedupID("123", ev.WebhookEventID, ev.Raw)
			ids = append(ids, id)
			allDup = allDup && js.ids[id]
		}
	}
	failedBefore, storedBefore := js.failed, len(js.stored)

	req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(body))
	req.SetPathValue("channelID", "123")
	req.Header.Set(events.SignatureHeader, sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	fresh := js.stored[storedBefore:]

	valid := events.VerifySignature(fuzzSecret, sig, body) == nil
	if js.failed && !failedBefore {
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("a publish failed but the webhook was answered %d, want 503 so LINE redelivers", w.Code)
		}
		return
	}
	if w.Code < 200 || w.Code >= 300 {
		if len(fresh) != 0 {
			t.Fatalf("answered %d but published %d messages", w.Code, len(fresh))
		}
		if !valid && len(body) <= 64<<10 && w.Code != http.StatusUnauthorized {
			t.Fatalf("invalid signature answered %d, want 401", w.Code)
		}
		return
	}
	if !valid {
		t.Fatalf("answered %d for a body whose signature is invalid", w.Code)
	}
	if parseErr != nil {
		t.Fatalf("answered %d for an unparseable body: %v", w.Code, parseErr)
	}
	if len(wh.Events) == 0 || allDup {
		if len(fresh) != 1 || fresh[0].Header.Get(events.HeaderKind) != events.KindWebhookLog {
			t.Fatalf("a webhook with no new event (%d events, all duplicates: %v) published %d messages, want its log record alone",
				len(wh.Events), allDup, len(fresh))
		}
		return
	}
	for i, id := range ids {
		if !js.ids[id] {
			t.Fatalf("answered %d but event %d is not stored", w.Code, i)
		}
	}
	for _, m := range fresh {
		if m.Header.Get(events.HeaderKind) != events.KindEvent {
			t.Fatalf("a webhook with new events also published a %q message", m.Header.Get(events.HeaderKind))
		}
		if m.Header.Get(events.HeaderWebhookLog) == "" {
			t.Fatal("an event does not carry the webhook's log record")
		}
		found := false
		for i, ev := range wh.Events {
			if ids[i] == m.Header.Get(jetstream.MsgIDHeader) {
				found = found || bytes.Equal(m.Data, ev.Raw)
			}
		}
		if !found {
			t.Fatal("a published event is not one of the webhook's events, byte for byte")
		}
	}
}
