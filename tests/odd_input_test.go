package tests

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/tests/fixture"
)

// TestOddSignedInputIsStored: what a signed webhook may carry that LINE
// does not send, but no reason to lose an event, is stored, never
// dead-lettered: a NUL escape in `destination` (stored in a text column,
// so without it), bytes that are not UTF-8 inside an event (kept in the
// raw event as U+FFFD, everything else as sent), and an event without a
// timestamp (its event_time is when ingest received it, not 1970).
func TestOddSignedInputIsStored(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{})
	start := time.Now()

	nulDest := fixture.Text(fixture.User(fixture.UserID(40)), time.Now(), "to an odd destination")
	p.mustPost(fixture.Body("U0\u0000odd", nulDest))

	notUTF8 := fixture.Text(fixture.User(fixture.UserID(41)), time.Now(), "bad byte MARK here")
	body := bytes.Replace(fixture.Body(fixture.Destination, notUTF8), []byte("MARK"), []byte("\xff"), 1)
	p.mustPost(body)

	untimed := fixture.Text(fixture.User(fixture.UserID(42)), time.Now(), "no timestamp")
	delete(untimed, "timestamp")
	p.mustPost(fixture.Body(fixture.Destination, untimed))

	ids := []string{fixture.ID(nulDest), fixture.ID(notUTF8), fixture.ID(untimed)}
	p.waitCount(3, `SELECT count(*) FROM events WHERE webhook_event_id = ANY($1)`, ids)
	p.waitStreamEmpty()
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Fatalf("%d dead letters for events that could be stored", n)
	}
	ctx := context.Background()
	var dest string
	if err := p.db.Pool.QueryRow(ctx, `SELECT destination FROM events WHERE webhook_event_id = $1`,
		fixture.ID(nulDest)).Scan(&dest); err != nil {
		t.Fatal(err)
	}
	if dest != "U0odd" {
		t.Errorf("destination stored as %q, want the NUL dropped: %q", dest, "U0odd")
	}
	var raw, text string
	if err := p.db.Pool.QueryRow(ctx, `SELECT e.raw::text, m.text FROM events e JOIN messages m USING (channel_id, message_id)
		WHERE e.webhook_event_id = $1`, fixture.ID(notUTF8)).Scan(&raw, &text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, "bad byte \uFFFD here") || text != "bad byte \uFFFD here" {
		t.Errorf("event with a byte that is not UTF-8: raw %s, text %q; want U+FFFD in its place", raw, text)
	}
	var at time.Time
	if err := p.db.Pool.QueryRow(ctx, `SELECT event_time FROM events WHERE webhook_event_id = $1`,
		fixture.ID(untimed)).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if at.Before(start.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("event without a timestamp has event_time %s, want about when it was received (%s)", at, start)
	}
}
