package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
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
	// Were one to come with a token, standby still means another channel
	// answers: the mode alone keeps the bot quiet.
	standbyWithToken := fixture.Text(user, time.Now(), "nor this")
	standbyWithToken["mode"] = "standby"
	sticker := fixture.MessageEvents(user, time.Now())["sticker"]
	p.mustPost(fixture.Body(fixture.Destination, active, standby, standbyWithToken, sticker))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Redelivered(active)))
	p.waitCount(4, `SELECT count(*) FROM events`)
	p.waitStreamEmpty()
	if n := p.count(`SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("%d outbox rows; want the one reply to the active message", n)
	}

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

// echoPipeline is a pipeline with the echo bot, an emulator and a sender
// polling every poll, running until the test ends (its context).
func echoPipeline(t *testing.T, poll time.Duration) (*pipeline, *linefake.Server, context.Context) {
	t.Helper()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	line := linefake.New(linefake.Config{Channels: []linefake.Channel{{ID: p.channel, Secret: p.secret}}})
	api := httptest.NewServer(line)
	t.Cleanup(api.Close)
	s, err := sender.New(sender.Config{BaseURL: api.URL, PollInterval: poll}, p.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, line, ctx
}

// The echo bot end to end: a signed webhook from the emulator's webhook
// side reaches ingest, the worker stores it and enqueues the reply in the
// same transaction, and the sender delivers exactly one reply, even when
// LINE redelivers the webhook.
func TestEchoBotEndToEnd(t *testing.T) {
	t.Parallel()
	p, line, ctx := echoPipeline(t, 20*time.Millisecond)

	ev := line.TextEvent(p.channel, fixture.UserID(60), "echo end to end")
	url := p.url + "/webhook/" + p.channel
	if code, err := line.SendWebhook(ctx, url, p.channel, ev); err != nil || code != http.StatusOK {
		t.Fatalf("webhook: %d %v", code, err)
	}
	if code, err := line.RedeliverWebhook(ctx, url, p.channel, ev); err != nil || code != http.StatusOK {
		t.Fatalf("redelivered webhook: %d %v", code, err)
	}
	p.waitCount(1, `SELECT count(*) FROM outbox WHERE status = 'delivered' AND sent_message_ids IS NOT NULL`)
	replies := 0
	for _, d := range line.Accepted() {
		if d.Endpoint == "reply" && d.ReplyToken == ev.ReplyToken && strings.Contains(string(d.Body), `"echo end to end"`) {
			replies++
		}
	}
	if replies != 1 || len(line.Accepted()) != 1 {
		t.Fatalf("%d echo replies among %d accepted sends, want exactly one", replies, len(line.Accepted()))
	}
}

// An echo reply the worker's handler enqueued wakes the sender when the
// worker's transaction commits (the outbox trigger's notification): a
// sender whose poll is a minute away still sends it within seconds.
func TestEchoReplyWakesTheSender(t *testing.T) {
	t.Parallel()
	p, line, ctx := echoPipeline(t, time.Minute)
	time.Sleep(300 * time.Millisecond) // past the sender's first claim: only a notification wakes it now

	ev := line.TextEvent(p.channel, fixture.UserID(61), "woken by the commit")
	start := time.Now()
	if code, err := line.SendWebhook(ctx, p.url+"/webhook/"+p.channel, p.channel, ev); err != nil || code != http.StatusOK {
		t.Fatalf("webhook: %d %v", code, err)
	}
	for time.Since(start) < 15*time.Second {
		for _, d := range line.Accepted() {
			if d.Endpoint == "reply" && d.ReplyToken == ev.ReplyToken {
				t.Logf("reply accepted %s after the webhook, with a poll of a minute", time.Since(start))
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no reply within 15 s: the sender was not woken (%d outbox rows)", p.count(`SELECT count(*) FROM outbox`))
}
