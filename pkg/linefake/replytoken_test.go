package linefake

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func reply(tok string, msgs ...any) map[string]any {
	return map[string]any{"replyToken": tok, "messages": msgs}
}

func TestReplyTokenSingleUse(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tok := b.srv.IssueReplyToken(testChannel)
	r := b.send(PathReply, reply(tok, text("a"), text("b")), "")
	wantStatus(t, r, http.StatusOK)
	if sent := r.sent(t); len(sent) != 2 || sent[0].QuoteToken == "" {
		t.Fatalf("sentMessages %+v, want two with quote tokens", sent)
	}
	again := b.send(PathReply, reply(tok, text("a")), "")
	wantStatus(t, again, http.StatusBadRequest)
	if msg := again.errorBody(t).Message; msg != "Invalid reply token" {
		t.Fatalf("message %q, want Invalid reply token", msg)
	}
	ds := b.srv.Accepted()
	if len(ds) != 1 || ds[0].ReplyToken != tok || ds[0].Endpoint != "reply" {
		t.Fatalf("deliveries %+v, want the first reply only", ds)
	}
}

func TestReplyTokenExpiresAfterOneMinute(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	early := b.srv.IssueReplyToken(testChannel)
	late := b.srv.IssueReplyToken(testChannel)
	b.clock.Advance(time.Minute - time.Millisecond)
	wantStatus(t, b.send(PathReply, reply(early, text("in time")), ""), http.StatusOK)
	b.clock.Advance(time.Millisecond)
	r := b.send(PathReply, reply(late, text("too late")), "")
	wantStatus(t, r, http.StatusBadRequest)
	if r.errorBody(t).Message != msgInvalidReply {
		t.Fatalf("body %s", r.body)
	}
	if n := len(b.srv.Accepted()); n != 1 {
		t.Fatalf("accepted %d, want only the reply in time", n)
	}
}

func TestReplyTokenTTLConfigurableAndChannelBound(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.ReplyTokenTTL = 10 * time.Second
		c.Channels = append(c.Channels, Channel{ID: "other", Secret: "s", AccessTokens: []string{"other-token"}})
	})
	tok := b.srv.IssueReplyToken("other")
	// Another channel's token is as invalid as an unknown one.
	wantStatus(t, b.send(PathReply, reply(tok, text("x")), ""), http.StatusBadRequest)
	wantStatus(t, b.send(PathReply, reply("never-issued", text("x")), ""), http.StatusBadRequest)
	mine := b.srv.IssueReplyToken(testChannel)
	b.clock.Advance(10 * time.Second)
	wantStatus(t, b.send(PathReply, reply(mine, text("x")), ""), http.StatusBadRequest)
	r := b.must(http.MethodPost, PathReply, mustJSON(t, reply(tok, text("x"))), map[string]string{"Authorization": "Bearer other-token"})
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d: the other channel's token outlived the configured 10s TTL", r.status)
	}
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("accepted %d", n)
	}
}

// LINE: a redelivered event's token works for a minute after the
// redelivery, unless it was used or 20 minutes passed since the event.
func TestRedeliveredReplyToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(sink.Close)
	ctx := context.Background()

	unused := b.srv.TextEvent(testChannel, userA, "hello")
	used := b.srv.TextEvent(testChannel, userA, "hello again")
	wantStatus(t, b.send(PathReply, reply(used.ReplyToken, text("answer")), ""), http.StatusOK)
	old := b.srv.TextEvent(testChannel, userA, "old")

	b.clock.Advance(5 * time.Minute) // both originals long expired
	if _, err := b.srv.RedeliverWebhook(ctx, sink.URL, testChannel, unused, used); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(59 * time.Second)
	wantStatus(t, b.send(PathReply, reply(unused.ReplyToken, text("late answer")), ""), http.StatusOK)
	wantStatus(t, b.send(PathReply, reply(used.ReplyToken, text("twice")), ""), http.StatusBadRequest)

	b.clock.Advance(15 * time.Minute) // old's event is now 20m59s old
	if _, err := b.srv.RedeliverWebhook(ctx, sink.URL, testChannel, old); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b.send(PathReply, reply(old.ReplyToken, text("too old")), ""), http.StatusBadRequest)
	if n := len(b.srv.Accepted()); n != 2 {
		t.Fatalf("accepted %d replies, want 2", n)
	}
}

func TestAdminIssuesReplyTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.must(http.MethodPost, PathAdminReplyTokens, []byte(`{"channelId":"`+testChannel+`"}`), nil)
	wantStatus(t, r, http.StatusOK)
	var got struct {
		ReplyToken string `json:"replyToken"`
	}
	if err := jsonUnmarshal(r.body, &got); err != nil || got.ReplyToken == "" {
		t.Fatalf("admin reply token body %s: %v", r.body, err)
	}
	wantStatus(t, b.send(PathReply, reply(got.ReplyToken, text("x")), ""), http.StatusOK)
	wantStatus(t, b.must(http.MethodPost, PathAdminReplyTokens, []byte(`{"channelId":"nope"}`), nil), http.StatusNotFound)
}

// Tokens that can never work again are forgotten, so a long run does not
// grow without bound; a used token stays known while a redelivery could
// still name it.
func TestReplyTokensArePurged(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	old := b.srv.IssueReplyToken(testChannel)
	b.clock.Advance(2 * time.Minute)
	recent := b.srv.IssueReplyToken(testChannel)
	b.clock.Advance(19 * time.Minute) // old's event is 21m old, recent's 19m
	b.srv.IssueReplyToken(testChannel)
	b.srv.replies.mu.Lock()
	_, hasOld := b.srv.replies.tokens[old]
	_, hasRecent := b.srv.replies.tokens[recent]
	b.srv.replies.mu.Unlock()
	if hasOld || !hasRecent {
		t.Fatalf("after purge: old kept %v, recent kept %v; want only recent", hasOld, hasRecent)
	}
}
