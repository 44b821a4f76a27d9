package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/linepipe/linepipe/pkg/events"
)

// deadlineSpy is JetStream never acknowledging: Publish records its
// context's deadline and waits for it.
type deadlineSpy struct{ deadline chan time.Time }

func (s deadlineSpy) Publish(ctx context.Context, msgs []*nats.Msg) (int, error) {
	dl, _ := ctx.Deadline()
	s.deadline <- dl
	<-ctx.Done()
	return 0, ctx.Err()
}

// slowBody is a body whose bytes come only after a pause, as from a slow
// client.
type slowBody struct {
	pause time.Duration
	r     *bytes.Reader
	slept bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if !b.slept {
		b.slept = true
		time.Sleep(b.pause)
	}
	return b.r.Read(p)
}

// TestPublishBudgetCountsFromArrival checks that a webhook's events must
// be acknowledged within PublishTimeout of its arrival, not of its body's
// end: LINE's 2 s count from when it sent the request, so a body that
// took its time leaves that much less for JetStream, and the 503 still
// comes while LINE waits.
func TestPublishBudgetCountsFromArrival(t *testing.T) {
	t.Parallel()
	spy := deadlineSpy{deadline: make(chan time.Time, 1)}
	h := newTestHandler(spy)
	h.Config.PublishTimeout = 1500 * time.Millisecond
	const pause = time.Second
	body, sig := signedBody("01HBUDGETBUDGETBUDGETBUDGE")
	req := httptest.NewRequest(http.MethodPost, "/webhook/123", &slowBody{pause: pause, r: bytes.NewReader(body)})
	req.Header.Set(events.SignatureHeader, sig)
	w := httptest.NewRecorder()
	arrived := time.Now()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("webhook whose acks never came: %d %q, want 503", w.Code, w.Body.String())
	}
	dl := <-spy.deadline
	// Counted from the body's end, the deadline would lie at least pause
	// later than this.
	if latest := arrived.Add(h.Config.PublishTimeout + pause/2); dl.After(latest) {
		t.Fatalf("publish deadline %s after the webhook arrived, want at most %s: the budget must count from arrival",
			dl.Sub(arrived), h.Config.PublishTimeout)
	}
}
