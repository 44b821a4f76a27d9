package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
)

// Every event type and message type of the official schema is stored
// once, with its raw JSON exactly as sent, and message events land in
// messages.
func TestEveryEventAndMessageTypeIsStored(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	now := time.Now()
	user, group := fixture.UserID(1), fixture.GroupID(1)
	var evs []fixture.E
	for _, e := range fixture.AllEvents(user, group, now) {
		evs = append(evs, e)
	}
	msgs := fixture.MessageEvents(fixture.User(user), now)
	for _, e := range msgs {
		evs = append(evs, e)
	}
	body := fixture.Body(fixture.Destination, evs...)
	p.mustPost(body)
	p.waitCount(len(evs), `SELECT count(*) FROM events`)
	p.waitStreamEmpty()

	for _, e := range evs {
		want, _ := json.Marshal(e)
		var raw, typ, channel, dest string
		err := p.db.Pool.QueryRow(context.Background(),
			`SELECT raw::text, type, channel_id, destination FROM events WHERE webhook_event_id = $1`, fixture.ID(e)).
			Scan(&raw, &typ, &channel, &dest)
		if err != nil {
			t.Fatalf("event %s (%s): %v", fixture.ID(e), e["type"], err)
		}
		if raw != string(want) {
			t.Errorf("%s: raw changed:\n got %s\nwant %s", typ, raw, want)
		}
		if typ != e["type"] || channel != p.channel || dest != fixture.Destination {
			t.Errorf("event row %s/%s/%s", typ, channel, dest)
		}
	}
	for typ, e := range msgs {
		var gotType, gotUser string
		var text *string
		err := p.db.Pool.QueryRow(context.Background(),
			`SELECT type, user_id, text FROM messages WHERE channel_id = $1 AND message_id = $2`, p.channel, fixture.MsgID(e)).
			Scan(&gotType, &gotUser, &text)
		if err != nil {
			t.Fatalf("message %s: %v", typ, err)
		}
		if gotType != typ || gotUser != user || (typ == "text") != (text != nil) {
			t.Errorf("message %s stored as %s from %s (text %v)", typ, gotType, gotUser, text)
		}
	}
	var sticker string
	_ = p.db.Pool.QueryRow(context.Background(), `SELECT content->>'stickerId' FROM messages WHERE message_id = $1`,
		fixture.MsgID(msgs["sticker"])).Scan(&sticker)
	if sticker != "1" {
		t.Errorf("sticker content not kept: %q", sticker)
	}
	p.waitCount(1, `SELECT count(*) FROM webhook_log WHERE channel_id = $1 AND event_count = $2 AND status = 200
		AND method = 'POST' AND remote_ip = '127.0.0.1' AND path = $3`, p.channel, len(evs), "/webhook/"+p.channel)
}

// LINE may send the same event twice (redelivery, network): it is stored
// once, and the second copy changes nothing. JetStream's dedup drops a
// copy with the same Nats-Msg-Id inside its window; a copy that reaches
// the stream anyway (published under another id, as after the window)
// must be dropped by Postgres' unique key, so that is the copy tested.
func TestRedeliveredEventIsStoredOnce(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	user := fixture.User(fixture.UserID(2))
	e := fixture.Replyable(fixture.Text(user, time.Now(), "once only"))
	p.mustPost(fixture.Body(fixture.Destination, e))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Redelivered(e))) // JetStream drops this one
	p.waitCount(1, `SELECT count(*) FROM events`)
	p.waitStreamEmpty()

	// The same event on the stream again, under a Nats-Msg-Id JetStream
	// has never seen: only Postgres can recognise it.
	meta := map[string][]string{}
	events.Meta{ChannelID: p.channel, ReceivedAt: time.Now(), Redelivery: true}.SetHeaders(meta)
	meta[events.HeaderKind] = []string{events.KindEvent}
	meta["Nats-Msg-Id"] = []string{"again-" + fixture.ID(e)}
	raw, _ := json.Marshal(fixture.Redelivered(e))
	before := p.lastSeq()
	p.publishRaw(raw, meta)
	if after := p.lastSeq(); after != before+1 {
		t.Fatalf("the re-published copy did not reach the stream (last sequence %d, then %d)", before, after)
	}
	p.waitStreamEmpty()
	for q, want := range map[string]int{
		`SELECT count(*) FROM events`:       1,
		`SELECT count(*) FROM messages`:     1,
		`SELECT count(*) FROM outbox`:       1,
		`SELECT count(*) FROM dead_letters`: 0,
	} {
		if n := p.count(q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	p.waitCount(2, `SELECT count(*) FROM webhook_log`)
	p.waitCount(1, `SELECT count(*) FROM webhook_log WHERE redelivery`)
}

// One webhook may carry events from several users.
func TestWebhookWithEventsFromSeveralUsers(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	var evs []fixture.E
	for i := 0; i < 6; i++ {
		evs = append(evs, fixture.Text(fixture.User(fixture.UserID(100+i)), time.Now(), "from user"))
	}
	p.mustPost(fixture.Body(fixture.Destination, evs...))
	p.waitCount(6, `SELECT count(*) FROM messages`)
	for i, e := range evs {
		if n := p.count(`SELECT count(*) FROM messages WHERE message_id = $1 AND user_id = $2`, fixture.MsgID(e), fixture.UserID(100+i)); n != 1 {
			t.Errorf("message of user %d missing", i)
		}
	}
}

// An event type linepipe has never heard of, with odd fields and
// formatting, is stored byte for byte.
func TestUnknownEventTypeIsKeptAsSent(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	id := fixture.EventID()
	ev := `{"type":"quantumEntangle",  "mode":"active","timestamp":1462629479859,` +
		`"source":{"type":"space","spaceId":"S123"},"webhookEventId":"` + id + `",` +
		`"deliveryContext":{"isRedelivery":false},"quantumEntangle":{"pairs":[1,2,{"deep":null}],"ünïcode":"✓"}}`
	odd := `{"type":"message","mode":"active","timestamp":"not-a-number","webhookEventId":"` + fixture.EventID() +
		`","message":{"id":"77","type":"hologram"}}`
	body := []byte(`{"destination":"` + fixture.Destination + `","newTopLevel":{"x":1},"events":[` + ev + "," + odd + `]}`)
	p.mustPost(body)
	p.waitCount(2, `SELECT count(*) FROM events`)
	var raw, typ, src string
	if err := p.db.Pool.QueryRow(context.Background(), `SELECT raw::text, type, source_type FROM events WHERE webhook_event_id = $1`, id).
		Scan(&raw, &typ, &src); err != nil {
		t.Fatal(err)
	}
	if raw != ev || typ != "quantumEntangle" || src != "space" {
		t.Fatalf("stored %s %s %s", typ, src, raw)
	}
	if n := p.count(`SELECT count(*) FROM events WHERE raw::text = $1 AND type = 'message'`, odd); n != 1 {
		t.Fatal("an event with a malformed timestamp was not kept as sent")
	}
	p.waitStreamEmpty()
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Fatalf("%d dead letters for events that are merely unknown", n)
	}
}

// Bad input gets its status and publishes nothing.
func TestBadInputIsRefusedAndPublishesNothing(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{workers: -1})
	good := fixture.Body(fixture.Destination, fixture.Text(fixture.User(fixture.UserID(3)), time.Now(), "x"))
	sig := func(b []byte) string { return signWith(p.secret, b) }
	big := []byte(`{"destination":"x","events":[],"pad":"` + strings.Repeat("a", 1<<20) + `"}`)
	malformed := []byte(`{"destination":"x","events":[{"type":"message"},]}`)
	control := []byte("{\"destination\":\"x\",\"events\":[{\"type\":\"message\",\"text\":\"a\x01b\"}]}")
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"missing signature", "POST", "/webhook/" + p.channel, good, nil, http.StatusUnauthorized},
		{"bad signature", "POST", "/webhook/" + p.channel, good, map[string]string{"x-line-signature": sig([]byte("other"))}, http.StatusUnauthorized},
		{"signature of another secret", "POST", "/webhook/" + p.channel, good, map[string]string{"x-line-signature": signWith("wrong", good)}, http.StatusUnauthorized},
		{"unknown channel", "POST", "/webhook/9999999999", good, map[string]string{"x-line-signature": sig(good)}, http.StatusNotFound},
		{"channel id with subject wildcard", "POST", "/webhook/a.%3E", good, map[string]string{"x-line-signature": sig(good)}, http.StatusNotFound},
		{"body over 1 MiB", "POST", "/webhook/" + p.channel, big, map[string]string{"x-line-signature": sig(big)}, http.StatusRequestEntityTooLarge},
		{"malformed JSON, valid signature", "POST", "/webhook/" + p.channel, malformed, map[string]string{"x-line-signature": sig(malformed)}, http.StatusBadRequest},
		{"control byte in a string, valid signature", "POST", "/webhook/" + p.channel, control, map[string]string{"x-line-signature": sig(control)}, http.StatusBadRequest},
		{"GET", "GET", "/webhook/" + p.channel, nil, nil, http.StatusMethodNotAllowed},
		{"PUT", "PUT", "/webhook/" + p.channel, good, map[string]string{"x-line-signature": sig(good)}, http.StatusMethodNotAllowed},
	}
	// Subtests run in order on one pipeline: the stream counts below
	// depend on what the earlier ones published.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := p.send(c.method, c.path, c.body, c.hdr); got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
		})
	}
	t.Run("bad input publishes nothing", func(t *testing.T) {
		if n := p.streamMsgs(); n != 0 {
			t.Fatalf("bad input published %d messages", n)
		}
	})
	// Header names are case-insensitive: LINE may change their case.
	for _, name := range []string{"x-line-signature", "X-Line-Signature", "X-LINE-SIGNATURE"} {
		t.Run("header "+name, func(t *testing.T) {
			e := fixture.Text(fixture.User(fixture.UserID(4)), time.Now(), "case")
			b := fixture.Body(fixture.Destination, e)
			if got := p.send("POST", "/webhook/"+p.channel, b, map[string]string{name: sig(b)}); got != http.StatusOK {
				t.Errorf("status %d", got)
			}
		})
	}
	t.Run("verification request accepted", func(t *testing.T) {
		// LINE's URL verification: an empty events array is accepted.
		verify := []byte(`{"destination":"` + fixture.Destination + `","events":[]}`)
		if got := p.post(verify); got != http.StatusOK {
			t.Errorf("verification request: %d", got)
		}
		if n := p.streamMsgs(); n != 4 { // three events (each carrying its webhook's log record), and the verification's record
			t.Fatalf("stream holds %d messages, want 4", n)
		}
	})
	t.Run("secret never logged", func(t *testing.T) {
		for _, e := range p.logs.All() {
			for _, f := range e.Context {
				if strings.Contains(f.String, p.secret) {
					t.Fatalf("the channel secret was logged: %v", e)
				}
			}
		}
	})
}

// A verification webhook is logged in webhook_log with no events.
func TestVerificationWebhookIsLogged(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	p.mustPost([]byte(`{"destination":"` + fixture.Destination + `","events":[]}`))
	p.waitCount(1, `SELECT count(*) FROM webhook_log WHERE event_count = 0 AND status = 200`)
	if n := p.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d events for a verification request", n)
	}
	var id string
	_ = p.db.Pool.QueryRow(context.Background(), `SELECT webhook_id FROM webhook_log`).Scan(&id)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("webhook id %q: %v", id, err)
	}
}

// lastSeq is the stream's last sequence: it moves on with every message
// the stream accepted, acknowledged since or not.
func (p *pipeline) lastSeq() uint64 { return p.streamState().LastSeq }

// The largest body ingest accepts is one LINE can actually get stored: a
// single event filling INGEST_MAX_BODY_BYTES (here with a property
// linepipe does not know) still fits a NATS message with its headers
// under the server's default max_payload, so it is answered 200 and kept
// byte for byte, rather than refused 503 on every redelivery.
func TestLargestBodyIsStored(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	e := fixture.Text(fixture.User(fixture.UserID(5)), time.Now(), "large")
	e["futureProperty"] = ""
	limit := int(ingest.Config{}.WithDefaults().MaxBodyBytes)
	e["futureProperty"] = strings.Repeat("p", limit-len(fixture.Body(fixture.Destination, e)))
	body := fixture.Body(fixture.Destination, e)
	if len(body) != limit {
		t.Fatalf("body of %d bytes, want exactly the limit %d", len(body), limit)
	}
	if got := p.post(body); got != http.StatusOK {
		t.Fatalf("a one-event body at the limit: %d, want 200", got)
	}
	id := e["webhookEventId"].(string)
	p.waitCount(1, `SELECT count(*) FROM events WHERE webhook_event_id = $1 AND length(raw::text) > $2`, id, limit-200)
}
