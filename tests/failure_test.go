package tests

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// publishRaw puts a message on the stream as if ingest had, bypassing it.
func (p *pipeline) publishRaw(data []byte, headers map[string][]string) {
	p.t.Helper()
	m := nats.NewMsg(p.sc.EventSubject(p.channel))
	m.Data = data
	for k, v := range headers {
		m.Header[k] = v
	}
	if _, err := p.js.PublishMsg(context.Background(), m); err != nil {
		p.t.Fatal(err)
	}
}

// explodingBot is bot logic with a bug: it fails on every text
// containing "explode", the way a real poison message fails.
var explodingBot = worker.HandlerFunc(func(_ context.Context, _ pgx.Tx, s worker.Stored) error {
	if s.Event.Message != nil && strings.Contains(s.Event.Message.Text, "explode") {
		return errors.New("bot logic failed")
	}
	return nil
})

// Poison messages end in dead_letters with their bytes and the error,
// leave the stream, and do not hold back good events.
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{maxAttempts: 2, handlers: []worker.Handler{explodingBot}})
	meta := map[string][]string{}
	events.Meta{ChannelID: p.channel, ReceivedAt: time.Now()}.SetHeaders(meta)
	meta[events.HeaderKind] = []string{events.KindEvent}

	// No channel header: can never be stored, dead-lettered at once.
	p.publishRaw([]byte(`{"type":"message"}`), map[string][]string{events.HeaderKind: {events.KindEvent}})
	// Not JSON at all.
	p.publishRaw([]byte("\x00garbage"), meta)
	// Fails on every attempt: dead-lettered after MaxAttempts.
	bad := fixture.Text(fixture.User(fixture.UserID(20)), time.Now(), "please explode")
	p.mustPost(fixture.Body(fixture.Destination, bad))
	// Odd but storable: kept, not dead-lettered.
	odd := fixture.Text(fixture.User(fixture.UserID(21)), time.Now(), "nul \x00 inside")
	odd["timestamp"] = int64(9_000_000_000_000_000)
	good := fixture.Text(fixture.User(fixture.UserID(22)), time.Now(), "good")
	p.mustPost(fixture.Body(fixture.Destination, odd, good))

	p.waitCount(3, `SELECT count(*) FROM dead_letters`)
	p.waitStreamEmpty()
	// Each behaviour is a subtest, in order, on the one pipeline.
	t.Run("good and odd events are stored", func(t *testing.T) {
		if n := p.count(`SELECT count(*) FROM events WHERE webhook_event_id = ANY($1)`, []string{fixture.ID(good), fixture.ID(odd)}); n != 2 {
			t.Fatal("good or merely odd events were not stored")
		}
		if n := p.count(`SELECT count(*) FROM messages WHERE message_id = $1 AND text = 'nul  inside'`, fixture.MsgID(odd)); n != 1 {
			t.Fatal("a NUL in the text made the message unstorable")
		}
	})
	t.Run("failing event dead-lettered after MaxAttempts", func(t *testing.T) {
		var deliveries int
		var errText, data string
		err := p.db.Pool.QueryRow(context.Background(), `SELECT deliveries, error, convert_from(data, 'UTF8') FROM dead_letters
			WHERE webhook_event_id = $1`, fixture.ID(bad)).Scan(&deliveries, &errText, &data)
		if err != nil {
			t.Fatal(err)
		}
		if deliveries != 2 || !strings.Contains(errText, "bot logic failed") || !strings.Contains(data, "please explode") {
			t.Fatalf("dead letter: deliveries %d error %q data %q", deliveries, errText, data)
		}
		if n := p.count(`SELECT count(*) FROM events WHERE webhook_event_id = $1`, fixture.ID(bad)); n != 0 {
			t.Fatal("the failed event's row was committed without its handler")
		}
	})
	t.Run("message without channel dead-lettered at once", func(t *testing.T) {
		if n := p.count(`SELECT count(*) FROM dead_letters WHERE error LIKE '%no Linepipe-Channel header%' AND deliveries = 1`); n != 1 {
			t.Fatal("message without channel was not dead-lettered on its first delivery")
		}
	})
	t.Run("non-JSON message dead-lettered", func(t *testing.T) {
		if n := p.count(`SELECT count(*) FROM dead_letters WHERE error LIKE '%not JSON%'`); n != 1 {
			t.Fatal("non-JSON message not dead-lettered")
		}
	})
	t.Run("unsend scrubs the dead letter", func(t *testing.T) {
		p.mustPost(fixture.Body(fixture.Destination, fixture.Unsend(fixture.User(fixture.UserID(20)), time.Now(), fixture.MsgID(bad))))
		p.waitCount(1, `SELECT count(*) FROM dead_letters WHERE scrubbed_at IS NOT NULL`)
		p.assertNowhere("please explode")
	})
}

// With NATS down ingest answers 503 within its budget (LINE redelivers);
// once NATS is back the same webhook is accepted and stored once.
func TestIngestWithNATSDown(t *testing.T) {
	t.Parallel()
	srv := testenv.NewEmbeddedNATS(t)
	p := newPipeline(t, pipelineOpts{natsURL: srv.URL(), pubTimeout: 500 * time.Millisecond})
	e := fixture.Text(fixture.User(fixture.UserID(30)), time.Now(), "while down")
	body := fixture.Body(fixture.Destination, e)

	srv.Stop()
	start := time.Now()
	if code := p.post(body); code != http.StatusServiceUnavailable {
		t.Fatalf("with NATS down: %d, want 503", code)
	}
	if took := time.Since(start); took > 1900*time.Millisecond {
		t.Errorf("503 took %s: LINE gives up after 2s", took)
	}
	srv.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := p.post(fixture.Body(fixture.Destination, fixture.Redelivered(e)))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest still answers %d 30s after NATS returned", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitCount(1, `SELECT count(*) FROM events WHERE webhook_event_id = $1`, fixture.ID(e))
	p.waitStreamEmpty()
	if n := p.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Fatalf("%d messages after the outage, want 1", n)
	}
}
