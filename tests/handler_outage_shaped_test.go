package tests

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/fixture"
)

// crmBot fails, every time, the events whose text names a failure of the
// kind a bot's own call to another service (a CRM over HTTP) has: a
// timeout, or a connection refused.
var crmBot = worker.HandlerFunc(func(_ context.Context, _ pgx.Tx, s worker.Stored) error {
	switch {
	case s.Event.Message == nil:
	case strings.Contains(s.Event.Message.Text, "crm timeout"):
		return fmt.Errorf("calling the CRM: %w", context.DeadlineExceeded)
	case strings.Contains(s.Event.Message.Text, "crm refused"):
		return fmt.Errorf("calling the CRM: %w", &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connection refused")})
	}
	return nil
})

// TestHandlerTimeoutsAreTheEventsOwnFailures: a bot handler's error that
// has an outage's shape (a deadline, a network error) while Postgres
// answers is the event's own failure. It is counted, the event reaches
// dead_letters at MaxAttempts with its error, and the events that came
// with it in one webhook are stored at once; taken for a Postgres outage,
// the whole batch was retried for ever and none of them was stored.
func TestHandlerTimeoutsAreTheEventsOwnFailures(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOpts{maxAttempts: 2, handlers: []worker.Handler{crmBot}})
	timeout := fixture.Text(fixture.User(fixture.UserID(30)), time.Now(), "crm timeout")
	refused := fixture.Text(fixture.User(fixture.UserID(31)), time.Now(), "crm refused")
	good := fixture.Text(fixture.User(fixture.UserID(32)), time.Now(), "fine")
	p.mustPost(fixture.Body(fixture.Destination, timeout, refused, good))

	p.waitCount(1, `SELECT count(*) FROM events WHERE webhook_event_id = $1`, fixture.ID(good))
	p.waitCount(2, `SELECT count(*) FROM dead_letters`)
	p.waitStreamEmpty()
	for _, c := range []struct {
		ev   map[string]any
		want string
	}{{timeout, "deadline exceeded"}, {refused, "connection refused"}} {
		var deliveries int
		var errText string
		if err := p.db.Pool.QueryRow(context.Background(), `SELECT deliveries, error FROM dead_letters
			WHERE webhook_event_id = $1`, fixture.ID(c.ev)).Scan(&deliveries, &errText); err != nil {
			t.Fatal(err)
		}
		if deliveries != 2 || !strings.Contains(errText, c.want) {
			t.Errorf("dead letter: deliveries %d, error %q; want 2 deliveries and %q", deliveries, errText, c.want)
		}
	}
	if n := p.count(`SELECT count(*) FROM events WHERE webhook_event_id = ANY($1)`,
		[]string{fixture.ID(timeout), fixture.ID(refused)}); n != 0 {
		t.Fatalf("%d failed events committed without their handler", n)
	}
}
