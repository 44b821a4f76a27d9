package tests

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
)

// The echo bot replies to an active text message through the outbox, in
// the same transaction as the event, and never in standby mode.
func TestEchoBotEnqueuesOneReply(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	user := fixture.User(fixture.UserID(50))
	active := fixture.Text(user, time.Now(), "echo this")
	standby := fixture.Text(user, time.Now(), "not this")
	standby["mode"] = "standby"
	delete(standby, "replyToken") // LINE sends no reply token in standby
	sticker := fixture.MessageEvents(user, time.Now())["sticker"]
	p.mustPost(fixture.Body(fixture.Destination, active, standby, sticker))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Redelivered(active)))
	p.waitCount(3, `SELECT count(*) FROM events`)
	p.waitStreamEmpty()

	var body string
	var notAfter, received time.Time
	err := p.db.Pool.QueryRow(context.Background(), `SELECT o.body::text, o.not_after, e.received_at FROM outbox o
		JOIN events e ON e.message_id = o.source_message_id WHERE o.endpoint = 'reply' AND o.channel_id = $1`, p.channel).
		Scan(&body, &notAfter, &received)
	if err != nil {
		t.Fatalf("exactly one reply expected: %v (%d rows)", err, p.count(`SELECT count(*) FROM outbox`))
	}
	var reply struct {
		ReplyToken string `json:"replyToken"`
		Messages   []struct{ Type, Text string }
	}
	if err := json.Unmarshal([]byte(body), &reply); err != nil {
		t.Fatal(err)
	}
	if reply.ReplyToken != active["replyToken"] || len(reply.Messages) != 1 || reply.Messages[0].Text != "echo this" {
		t.Fatalf("reply body %s", body)
	}
	if !notAfter.Equal(received.Add(time.Minute)) {
		t.Fatalf("reply valid until %s, want a minute after receipt (%s)", notAfter, received)
	}
}
