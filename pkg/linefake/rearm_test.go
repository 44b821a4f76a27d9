package linefake

import (
	"net/http"
	"testing"
	"time"
)

// A generator that redelivers on its own rearms the token like LINE's
// redelivery: a fresh minute, not for a used token or a 20-minute-old event.
func TestRearmReplyToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tok := b.srv.IssueReplyToken(testChannel)
	used := b.srv.IssueReplyToken(testChannel)
	wantStatus(t, b.send(PathReply, reply(used, text("answer")), ""), http.StatusOK)
	b.clock.Advance(2 * time.Minute)
	if !b.srv.RearmReplyToken(tok) {
		t.Fatal("an unused token of a 2-minute-old event was not rearmed")
	}
	if b.srv.RearmReplyToken(used) || b.srv.RearmReplyToken("never-issued") {
		t.Fatal("a used or unknown token was rearmed")
	}
	b.clock.Advance(time.Minute)
	wantStatus(t, b.send(PathReply, reply(tok, text("late")), ""), http.StatusBadRequest)

	again := b.srv.IssueReplyToken(testChannel)
	b.clock.Advance(30 * time.Second)
	if !b.srv.RearmReplyToken(again) {
		t.Fatal("rearm refused")
	}
	b.clock.Advance(59 * time.Second) // 89s after issue, 59s after the rearm
	wantStatus(t, b.send(PathReply, reply(again, text("in time")), ""), http.StatusOK)
	b.clock.Advance(21 * time.Minute)
	if b.srv.RearmReplyToken(again) {
		t.Fatal("a used token was rearmed")
	}
}
