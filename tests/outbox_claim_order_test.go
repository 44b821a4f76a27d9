package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// The order one claim takes rows in (docs/OUTBOX.md, Scheduling), checked
// on a single claim so that no timing is involved: what a batch holds is
// decided by store.ClaimOutbox itself. The end-to-end tests
// (TestOutboxRepliesAndPriorityFirst, TestOutboxFairAcrossChannels) show
// the same through a running sender.

type claimOrderRig struct {
	t  *testing.T
	db *testenv.DB
}

func newClaimOrderRig(t *testing.T) *claimOrderRig {
	return &claimOrderRig{t: t, db: testenv.NewDB(t)}
}

// row inserts one outbox row and returns a label for it: its channel,
// endpoint and text.
func (r *claimOrderRig) row(channel, endpoint string, priority int, notAfter *time.Duration, text string) string {
	r.t.Helper()
	body := pushBody(userID(1), text)
	if endpoint == store.EndpointReply {
		body = replyText("token-"+text, text)
	}
	var na *time.Time
	if notAfter != nil {
		at := time.Now().Add(*notAfter)
		na = &at
	}
	if _, err := r.db.Pool.Exec(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body, priority, not_after)
		VALUES ($1, $2, $3, $4, $5)`, channel, endpoint, body, priority, na); err != nil {
		r.t.Fatal(err)
	}
	return text
}

// claim takes one batch of limit rows and returns their texts in the
// order the claim ranked them.
func (r *claimOrderRig) claim(limit int) []string {
	r.t.Helper()
	res, err := store.ClaimOutbox(context.Background(), r.db.Pool,
		store.ClaimParams{Limit: limit, Owner: "t", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, c := range res.Claimed {
		var text string
		if err := r.db.Pool.QueryRow(context.Background(), `SELECT body->'messages'->0->>'text' FROM outbox WHERE id = $1`,
			c.ID).Scan(&text); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, text)
	}
	return out
}

// A reply and a push with a deadline, queued behind a push backlog in the
// same channel, are the first two rows of the next claim, earliest
// deadline first.
func TestOutboxClaimOrderDeadlinesFirst(t *testing.T) {
	t.Parallel()
	r := newClaimOrderRig(t)
	for i := range 20 {
		r.row("1650000201", "push", 0, nil, fmt.Sprint("backlog ", i))
	}
	hour := time.Hour
	r.row("1650000201", "push", 0, &hour, "push with a deadline")
	r.row("1650000201", "reply", 0, nil, "reply")
	if got, want := fmt.Sprint(r.claim(2)), "[reply push with a deadline]"; got != want {
		t.Fatalf("claim took %s, want %s", got, want)
	}
}

// A higher priority goes first across every lane, before the other
// lanes' first rows and before a reply of a lower priority; the priority
// row's lane is the last one listed, so lane order cannot be what puts it
// first.
func TestOutboxClaimOrderPriorityFirst(t *testing.T) {
	t.Parallel()
	r := newClaimOrderRig(t)
	for i := range 5 {
		r.row(fmt.Sprint("165000030", i), "push", 0, nil, fmt.Sprint("channel ", i))
	}
	r.row("1650000300", "reply", 0, nil, "reply")
	r.row("1650000309", "push", 10, nil, "priority")
	if got, want := fmt.Sprint(r.claim(3)), "[priority reply channel 0]"; got != want {
		t.Fatalf("claim took %s, want %s", got, want)
	}
}

// A channel's backlog shares the batch round-robin with the other
// channels' lanes: each lane's first row, then each lane's second.
func TestOutboxClaimOrderFairAcrossChannels(t *testing.T) {
	t.Parallel()
	r := newClaimOrderRig(t)
	for i := range 30 {
		r.row("1650000401", "push", 0, nil, fmt.Sprint("A", i))
	}
	r.row("1650000402", "push", 0, nil, "B0")
	r.row("1650000403", "push", 0, nil, "C0")
	if got, want := fmt.Sprint(r.claim(4)), "[A0 B0 C0 A1]"; got != want {
		t.Fatalf("claim took %s, want %s", got, want)
	}
}
