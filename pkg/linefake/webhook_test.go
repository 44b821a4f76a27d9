package linefake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

var ulidRE = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// receiver records what a webhook endpoint got.
type receiver struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int
	srv     *httptest.Server
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.headers = append(rc.headers, r.Header.Clone())
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) last(t *testing.T) ([]byte, http.Header) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bodies) == 0 {
		t.Fatal("the receiver got nothing")
	}
	return rc.bodies[len(rc.bodies)-1], rc.headers[len(rc.headers)-1]
}

// verify checks a received webhook the way ingest does: signature over
// the raw bytes, then the body splits into events.
func verify(t *testing.T, body []byte, h http.Header) []*events.Event {
	t.Helper()
	if err := events.VerifySignature(testSecret, h.Get("x-line-signature"), body); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if err := events.VerifySignature("wrong-secret", h.Get("x-line-signature"), body); err == nil {
		t.Fatal("signature verifies with the wrong secret")
	}
	if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	wh, err := events.ParseWebhook(body)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	if !userIDPattern.MatchString(wh.Destination) {
		t.Fatalf("destination %q is not a bot user id", wh.Destination)
	}
	out := make([]*events.Event, len(wh.Events))
	for i, ev := range wh.Events {
		if out[i], err = events.Decode(ev.Raw); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestSendWebhookTextEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	rc := newReceiver(t, http.StatusOK)
	ev := b.srv.TextEvent(testChannel, userA, "こんにちは")
	status, err := b.srv.SendWebhook(context.Background(), rc.srv.URL, testChannel, ev)
	if err != nil || status != http.StatusOK {
		t.Fatalf("status %d err %v", status, err)
	}
	body, h := rc.last(t)
	evs := verify(t, body, h)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	switch {
	case e.Type != "message" || e.Mode != "active":
		t.Fatalf("type %q mode %q", e.Type, e.Mode)
	case !ulidRE.MatchString(e.WebhookEventID):
		t.Fatalf("webhookEventId %q is not a ULID", e.WebhookEventID)
	case e.Timestamp != b.clock.Now().UnixMilli():
		t.Fatalf("timestamp %d, want the clock's %d ms", e.Timestamp, b.clock.Now().UnixMilli())
	case e.Source.Type != "user" || e.Source.UserID != userA:
		t.Fatalf("source %+v", e.Source)
	case e.DeliveryContext.IsRedelivery:
		t.Fatal("first delivery marked as redelivery")
	case e.Message == nil || e.Message.Type != "text" || e.Message.Text != "こんにちは" || e.Message.ID == "":
		t.Fatalf("message %+v", e.Message)
	case e.ReplyToken == "" || e.ReplyToken != ev.ReplyToken:
		t.Fatalf("reply token %q", e.ReplyToken)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(body, &raw)
	ch, _ := b.srv.Channel(testChannel)
	if string(raw["destination"]) != `"`+ch.BotUserID+`"` {
		t.Fatalf("destination %s, want the channel's bot %s", raw["destination"], ch.BotUserID)
	}
	// The token the webhook carried is registered: replying with it works once.
	wantStatus(t, b.send(PathReply, reply(e.ReplyToken, text("hi")), ""), http.StatusOK)
	wantStatus(t, b.send(PathReply, reply(e.ReplyToken, text("hi")), ""), http.StatusBadRequest)
}

func TestWebhookStatusAndRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	rc := newReceiver(t, http.StatusInternalServerError)
	ev := b.srv.TextEvent(testChannel, userA, "x")
	status, err := b.srv.SendWebhook(context.Background(), rc.srv.URL, testChannel, ev, b.srv.UnsendEvent(userA, ev.Message.ID))
	if err != nil || status != http.StatusInternalServerError {
		t.Fatalf("status %d err %v, want the receiver's 500", status, err)
	}
	first, _ := rc.last(t)
	b.clock.Advance(time.Minute)
	if _, err := b.srv.RedeliverWebhook(context.Background(), rc.srv.URL, testChannel, ev); err != nil {
		t.Fatal(err)
	}
	body, h := rc.last(t)
	evs := verify(t, body, h)
	orig := verify(t, first, h2(t, rc, 0))
	if len(orig) != 2 || orig[1].Type != "unsend" || orig[1].MessageID() != ev.Message.ID || orig[1].ReplyToken != "" {
		t.Fatalf("first webhook events %+v, want message then its unsend", orig)
	}
	e := evs[0]
	if !e.DeliveryContext.IsRedelivery || e.WebhookEventID != orig[0].WebhookEventID ||
		e.ReplyToken != orig[0].ReplyToken || e.Timestamp != orig[0].Timestamp {
		t.Fatalf("redelivery %+v, want the original %+v with isRedelivery", e, orig[0])
	}
}

func h2(t *testing.T, rc *receiver, i int) http.Header {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.headers[i]
}

// An empty events array is LINE's URL verification request.
func TestVerificationWebhookAndULIDOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	rc := newReceiver(t, http.StatusOK)
	if _, err := b.srv.SendWebhook(context.Background(), rc.srv.URL, testChannel); err != nil {
		t.Fatal(err)
	}
	body, h := rc.last(t)
	if evs := verify(t, body, h); len(evs) != 0 {
		t.Fatalf("%d events in a verification request", len(evs))
	}
	a := b.srv.UnfollowEvent(userA)
	b.clock.Advance(time.Millisecond)
	c := b.srv.FollowEvent(testChannel, userA)
	if !(a.WebhookEventID < c.WebhookEventID) || a.WebhookEventID[:10] == c.WebhookEventID[:10] {
		t.Fatalf("ULIDs %s, %s do not order by time", a.WebhookEventID, c.WebhookEventID)
	}
	if a.ReplyToken != "" || c.ReplyToken == "" {
		t.Fatal("unfollow must have no reply token, follow must have one")
	}
	if _, err := b.srv.SendWebhook(context.Background(), rc.srv.URL, "nope"); err == nil {
		t.Fatal("sent a webhook for an unknown channel")
	}
}

func TestULIDEncodesTime(t *testing.T) {
	t.Parallel()
	s := New(Config{Seed: 1})
	at := time.UnixMilli(1462629479859)
	id := s.newULID(at)
	if len(id) != 26 || !ulidRE.MatchString(id) {
		t.Fatalf("ULID %q", id)
	}
	if got, ok := events.ULIDTime(id); !ok || !got.Equal(at.UTC()) {
		t.Fatalf("ULID time %s, want %s", got, at)
	}
}

// TestWebhookGivesUpAfterTwoSeconds checks that the emulator, like LINE,
// counts a webhook not answered within 2 s as failed (request_timeout)
// rather than waiting as long as the receiver takes.
func TestWebhookGivesUpAfterTwoSeconds(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	start := time.Now()
	status, err := b.srv.SendWebhook(context.Background(), slow.URL, testChannel, b.srv.TextEvent(testChannel, userA, "x"))
	took := time.Since(start)
	if err == nil {
		t.Fatalf("a webhook unanswered for %s got status %d, want a timeout", took, status)
	}
	if took < 2*time.Second || took > 5*time.Second {
		t.Fatalf("gave up after %s, want LINE's 2 s", took)
	}
}

// A bot server that redirects fails the webhook, as at LINE, which counts
// any status outside 2xx as an error and posts nothing to the new location.
func TestWebhookRedirectIsTheAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	target := newReceiver(t, http.StatusOK)
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusPermanentRedirect))
	t.Cleanup(redirect.Close)
	status, err := b.srv.SendWebhook(context.Background(), redirect.URL, testChannel, b.srv.TextEvent(testChannel, userA, "x"))
	if err != nil || status != http.StatusPermanentRedirect {
		t.Fatalf("status %d, err %v; want the redirect's 308 as the answer", status, err)
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.bodies) != 0 {
		t.Fatalf("the redirect's target got %d webhooks; want none", len(target.bodies))
	}
}
