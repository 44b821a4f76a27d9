package tests

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
)

// TestRedeliveryPastJetStreamNeverReachesHandlers: a redelivery that gets
// past JetStream's dedup (here republished without its Nats-Msg-Id, as one
// arriving after the duplicates window would) is stopped by Postgres'
// unique key, and bot logic never runs for it again: one event row and one
// echo reply, however often the event comes back.
func TestRedeliveryPastJetStreamNeverReachesHandlers(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	active := fixture.Text(fixture.User(fixture.UserID(60)), time.Now(), "echo me once")
	p.mustPost(fixture.Body(fixture.Destination, active))
	p.waitCount(1, `SELECT count(*) FROM events WHERE webhook_event_id = $1`, fixture.ID(active))
	p.waitStreamEmpty()

	h := map[string][]string{}
	events.Meta{ChannelID: p.channel, ReceivedAt: time.Now(), Redelivery: true}.SetHeaders(h)
	h[events.HeaderKind] = []string{events.KindEvent}
	raw, err := json.Marshal(fixture.Redelivered(active))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		p.publishRaw(raw, h)
	}
	p.waitStreamEmpty() // every copy was consumed and acknowledged

	if n := p.count(`SELECT count(*) FROM events WHERE webhook_event_id = $1`, fixture.ID(active)); n != 1 {
		t.Errorf("the event is stored %d times, want once", n)
	}
	if n := p.count(`SELECT count(*) FROM outbox WHERE source_message_id = $1`, fixture.MsgID(active)); n != 1 {
		t.Errorf("the echo bot enqueued %d replies, want 1: a handler saw a stored event again", n)
	}
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d redelivered copies were dead-lettered instead of being recognised as stored", n)
	}
}
