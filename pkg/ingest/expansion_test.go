package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/linepipe/linepipe/pkg/events"
)

// countingPub stands in for JetStream, counting what reached it.
type countingPub struct{ msgs int }

func (p *countingPub) Publish(_ context.Context, msgs []*nats.Msg) (int, error) {
	p.msgs += len(msgs)
	return 0, nil
}

// webhookOf is a webhook body of n events, each its own small object.
func webhookOf(destination string, n int, event func(i int) string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"destination":"` + destination + `","events":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(event(i))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func postTo(h *Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, events.Sign(fuzzSecret, body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestWebhookExpansionIsBounded checks that a signed body within the byte
// limit cannot make ingest hold many times its size: each event costs
// EventOverhead (about 1.2 KiB measured) plus the destination copied into
// its headers, so a body of tiny events, or of a long destination
// repeated into every event, is refused with 413 and nothing published,
// while a webhook of LINE-sized events the same size is stored whole.
func TestWebhookExpansionIsBounded(t *testing.T) {
	t.Parallel()
	const dest = "U0123456789abcdef0123456789abcdef"
	tiny := func(i int) string { return `{"a":` + strconv.Itoa(i) + `}` }
	line := func(i int) string {
		return `{"type":"follow","mode":"active","timestamp":1700000000000,"source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},` +
			`"webhookEventId":"01HEXPANSION` + strconv.Itoa(100000+i) + `ZZZZZZZZ","deliveryContext":{"isRedelivery":false},"replyToken":"r` + strconv.Itoa(i) + `"}`
	}
	for name, c := range map[string]struct {
		body []byte
		want int
	}{
		// 200,000 events in 1.5 MiB would hold about 290 MiB.
		"tiny events":      {webhookOf(dest, 200000, tiny), http.StatusRequestEntityTooLarge},
		"long destination": {webhookOf(strings.Repeat("U", 500<<10), 200, tiny), http.StatusRequestEntityTooLarge},
		"LINE's events":    {webhookOf(dest, 8000, line), http.StatusOK},
	} {
		pub := &countingPub{}
		h := newTestHandler(pub)
		h.Config.MaxBodyBytes = 2 << 20
		w := postTo(h, c.body)
		if w.Code != c.want {
			t.Errorf("%s (%d bytes): %d %q, want %d", name, len(c.body), w.Code, w.Body.String(), c.want)
			continue
		}
		if c.want != http.StatusOK && pub.msgs != 0 {
			t.Errorf("%s: %d messages published for a refused webhook", name, pub.msgs)
		}
		if c.want == http.StatusOK && pub.msgs != 8000 {
			t.Errorf("%s: %d messages published, want 8000", name, pub.msgs)
		}
		if got := h.Metrics.buffered.Load(); got != 0 {
			t.Errorf("%s: %d bytes still charged after the answer", name, got)
		}
	}
}

// TestExpansionSharesTheBodyBudget checks that the events' charge counts
// against MaxBufferedBytes with the bodies of other webhooks: while one
// webhook's events wait for JetStream, a second whose charge would pass the
// budget gets 503 (LINE redelivers it), and once the first is answered the
// same webhook is taken.
func TestExpansionSharesTheBodyBudget(t *testing.T) {
	t.Parallel()
	pub := stalled{entered: make(chan struct{}, 3), release: make(chan struct{})}
	h := newTestHandler(pub)
	h.Config.MaxBufferedBytes = 3000 * EventOverhead
	tiny := func(i int) string { return `{"a":` + strconv.Itoa(i) + `}` }
	first, second := webhookOf("U1", 2000, tiny), webhookOf("U2", 1500, tiny)
	done := make(chan int)
	go func() { done <- postTo(h, first).Code }()
	<-pub.entered
	answer := make(chan *httptest.ResponseRecorder, 1)
	go func() { answer <- postTo(h, second) }()
	select {
	case w := <-answer:
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), eventsFull) {
			t.Errorf("webhook past the shared budget: %d %q, want 503 %q", w.Code, w.Body.String(), eventsFull)
		}
	case <-pub.entered:
		t.Error("webhook past the shared budget was published, want 503")
	}
	close(pub.release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("first webhook: %d, want 200", code)
	}
	if t.Failed() {
		return
	}
	if w := postTo(h, second); w.Code != http.StatusOK {
		t.Fatalf("the same webhook once the budget is free: %d %q, want 200", w.Code, w.Body.String())
	}
}
