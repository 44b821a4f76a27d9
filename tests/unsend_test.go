package tests

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
)

// secretText is message text unique to one test, so finding it anywhere
// proves a copy survived.
func secretText() string { return "private words " + uuid.NewString() }

// Unsend after the message: the message row is deleted, its events are
// scrubbed, an echo reply derived from it is cancelled and scrubbed, and
// its text is readable nowhere: tables, stream or logs.
func TestUnsendAfterMessageLeavesNoTrace(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	src := fixture.Group(fixture.GroupID(7), fixture.UserID(7))
	text, edited := secretText(), secretText()
	msg := fixture.Text(src, time.Now().Add(-time.Minute), text)
	id := fixture.MsgID(msg)
	p.mustPost(fixture.Body(fixture.Destination, msg))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Edited(src, time.Now().Add(-30*time.Second), id, edited)))
	p.waitCount(1, `SELECT count(*) FROM messages WHERE message_id = $1 AND text = $2`, id, edited)
	p.waitCount(1, `SELECT count(*) FROM outbox WHERE source_message_id = $1`, id)

	unsend := fixture.Unsend(src, time.Now(), id)
	p.mustPost(fixture.Body(fixture.Destination, unsend))
	p.waitCount(1, `SELECT count(*) FROM unsent_messages WHERE message_id = $1`, id)
	p.waitStreamEmpty()

	if n := p.count(`SELECT count(*) FROM messages WHERE message_id = $1`, id); n != 0 {
		t.Fatalf("messages row survived the unsend")
	}
	if n := p.count(`SELECT count(*) FROM events WHERE message_id = $1 AND type IN ('message', 'messageEdited') AND scrubbed_at IS NOT NULL
		AND raw->'message'->>'id' = $1 AND raw->'message'->>'type' = 'text' AND raw->>'webhookEventId' IS NOT NULL`, id); n != 2 {
		t.Fatalf("%d scrubbed events keep id, type and envelope; want 2", n)
	}
	// No sender runs, so the echo reply was still pending: the unsend
	// cancels it, finished, with its body scrubbed.
	if n := p.count(`SELECT count(*) FROM outbox WHERE source_message_id = $1 AND body::text = '{}'
		AND status = 'cancelled' AND finished_at IS NOT NULL AND scrubbed_at IS NOT NULL`, id); n != 1 {
		t.Fatal("the echo reply of the unsent message was not cancelled, finished and scrubbed")
	}
	if n := p.count(`SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("%d outbox rows, want the one echo reply", n)
	}
	p.assertNowhere(text)
	p.assertNowhere(edited)
}

// Unsend before the message (reordering, redelivery): the tombstone makes
// the late copy, and any later edit, arrive already scrubbed.
func TestUnsendBeforeMessageLeavesNoTrace(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{handlers: []worker.Handler{worker.EchoBot{}}})
	src := fixture.User(fixture.UserID(8))
	text := secretText()
	msg := fixture.Text(src, time.Now().Add(-time.Minute), text)
	id := fixture.MsgID(msg)

	p.mustPost(fixture.Body(fixture.Destination, fixture.Unsend(src, time.Now(), id)))
	p.waitCount(1, `SELECT count(*) FROM unsent_messages WHERE message_id = $1`, id)
	p.mustPost(fixture.Body(fixture.Destination, msg))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Edited(src, time.Now(), id, text+" edited")))
	p.waitCount(2, `SELECT count(*) FROM events WHERE message_id = $1 AND type <> 'unsend'`, id)
	p.waitStreamEmpty()

	if n := p.count(`SELECT count(*) FROM events WHERE message_id = $1 AND type <> 'unsend' AND scrubbed_at IS NOT NULL`, id); n != 2 {
		t.Fatalf("late copies stored unscrubbed")
	}
	if n := p.count(`SELECT count(*) FROM messages WHERE message_id = $1`, id); n != 0 {
		t.Fatal("a late copy recreated the messages row")
	}
	if n := p.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Fatal("the echo bot replied to an unsent message")
	}
	p.assertNowhere(text)
}

// A message and its unsend in one webhook (so in one worker batch), in
// either order, end the same way.
func TestUnsendInSameBatchAsMessage(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	src := fixture.User(fixture.UserID(9))
	a, b := secretText(), secretText()
	ma, mb := fixture.Text(src, time.Now(), a), fixture.Text(src, time.Now(), b)
	p.mustPost(fixture.Body(fixture.Destination, ma, fixture.Unsend(src, time.Now(), fixture.MsgID(ma))))
	p.mustPost(fixture.Body(fixture.Destination, fixture.Unsend(src, time.Now(), fixture.MsgID(mb)), mb))
	p.waitCount(4, `SELECT count(*) FROM events`)
	p.waitStreamEmpty()
	if n := p.count(`SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d messages survived an unsend in the same batch", n)
	}
	p.assertNowhere(a)
	p.assertNowhere(b)
}

// Edits converge on the newest by event time, whatever the arrival order,
// and an edit may arrive before its original.
func TestMessageEditedLastWriterWins(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	src := fixture.Group(fixture.GroupID(10), fixture.UserID(10))
	t0 := time.Now().Add(-time.Hour)
	orig := fixture.Text(src, t0, "v0")
	id := fixture.MsgID(orig)
	p.mustPost(fixture.Body(fixture.Destination, fixture.Edited(src, t0.Add(2*time.Minute), id, "v2")))
	p.waitCount(1, `SELECT count(*) FROM messages WHERE message_id = $1 AND text = 'v2'`, id)
	p.mustPost(fixture.Body(fixture.Destination, fixture.Edited(src, t0.Add(time.Minute), id, "v1")))
	p.mustPost(fixture.Body(fixture.Destination, orig))
	p.waitCount(3, `SELECT count(*) FROM events WHERE message_id = $1`, id)
	p.waitStreamEmpty()
	var text string
	var sentAt time.Time
	var edited bool
	if err := p.db.Pool.QueryRow(context.Background(), `SELECT text, sent_at, edited FROM messages WHERE message_id = $1`, id).
		Scan(&text, &sentAt, &edited); err != nil {
		t.Fatal(err)
	}
	if text != "v2" || !edited || !sentAt.Equal(t0.Truncate(time.Millisecond)) {
		t.Fatalf("text %q edited %v sent_at %s (want v2, true, %s)", text, edited, sentAt, t0.Truncate(time.Millisecond))
	}
}

// Follow, chat and membership state is last-writer-wins by event time.
func TestChatStateLastWriterWins(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	user, other, group := fixture.UserID(11), fixture.UserID(12), fixture.GroupID(11)
	t0 := time.Now().Add(-time.Hour)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ev := func(typ string, src fixture.E, m int) fixture.E { return fixture.Event(typ, src, at(m)) }
	left := ev("memberLeft", fixture.Group(group, ""), 5)
	left["left"] = fixture.E{"members": []fixture.E{{"type": "user", "userId": other}}}
	joined := ev("memberJoined", fixture.Group(group, ""), 4)
	joined["joined"] = fixture.E{"members": []fixture.E{{"type": "user", "userId": other}}}
	// Newest first: each older event must lose.
	for _, e := range []fixture.E{
		ev("unfollow", fixture.User(user), 3), ev("follow", fixture.User(user), 1),
		ev("follow", fixture.User(other), 2),
		ev("leave", fixture.Group(group, ""), 9), ev("join", fixture.Group(group, ""), 8),
		left, joined,
	} {
		p.mustPost(fixture.Body(fixture.Destination, e))
		p.waitStreamEmpty() // one at a time, so arrival order is the order above
	}
	checks := map[string]int{
		`SELECT count(*) FROM followers WHERE user_id = '` + user + `' AND NOT following`:                                1,
		`SELECT count(*) FROM followers WHERE user_id = '` + other + `' AND following`:                                   1,
		`SELECT count(*) FROM chats WHERE chat_id = '` + group + `' AND NOT joined AND chat_type = 'group'`:              1,
		`SELECT count(*) FROM chat_members WHERE chat_id = '` + group + `' AND user_id = '` + other + `' AND NOT member`: 1,
	}
	for q, want := range checks {
		if got := p.count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	// A newer follow does win.
	p.mustPost(fixture.Body(fixture.Destination, ev("follow", fixture.User(user), 30)))
	p.waitCount(1, `SELECT count(*) FROM followers WHERE user_id = $1 AND following`, user)
}
