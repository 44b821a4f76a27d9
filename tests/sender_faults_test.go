package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// hangAfterAccept lets a send reach LINE, swallows the answer and then
// blocks: a sender frozen (or killed) between "LINE accepted" and "row
// updated".
type hangAfterAccept struct {
	next    http.RoundTripper
	once    sync.Once
	hung    chan struct{}
	release chan struct{}
}

func (h *hangAfterAccept) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(r.URL.Path, "/v2/bot/message/") {
		return h.next.RoundTrip(r)
	}
	res, err := h.next.RoundTrip(r)
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	h.once.Do(func() { close(h.hung) })
	<-h.release
	return nil, errors.New("sender process died")
}

// TestSenderKilledAfterAccept: LINE accepted a push but its sender never
// recorded it. Once the lease expires another replica resends with the
// same retry key, gets 409, and marks the row delivered with the accepted
// request id; the stale sender's late result cannot overwrite it.
func TestSenderKilledAfterAccept(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	id := b.insert(t, "push", pushBody(userID(1), "hello"))

	h := &hangAfterAccept{next: http.DefaultTransport, hung: make(chan struct{}), release: make(chan struct{})}
	stale := b.config("stale")
	stale.HTTPClient = &http.Client{Transport: h}
	staleSender, err := sender.New(stale, b.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	staleCtx, kill := context.WithCancel(context.Background())
	staleDone := make(chan error, 1)
	go func() { staleDone <- staleSender.Run(staleCtx) }()
	wake := sync.OnceFunc(func() { close(h.release) })
	defer wake() // on failure too, so the hung send returns
	select {
	case <-h.hung:
	case <-time.After(60 * time.Second):
		t.Fatal("the first send never reached LINE")
	}
	kill() // the process is gone: it claims nothing more
	accepted := b.line.Accepted()
	if len(accepted) != 1 {
		t.Fatalf("LINE accepted %d sends, want 1", len(accepted))
	}
	if r := b.row(t, id); r.Status != "in_flight" {
		t.Fatalf("row is %s while its sender hangs, want in_flight", r.Status)
	}

	// Time passes: the hung sender's lease runs out.
	if _, err := b.db.Pool.Exec(context.Background(),
		`UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("rescuer"))
	r := b.waitStatus(t, id, "delivered")
	if r.AcceptedRequestID == nil || *r.AcceptedRequestID != accepted[0].RequestID {
		t.Fatalf("accepted_request_id %v, want the first request %s", r.AcceptedRequestID, accepted[0].RequestID)
	}
	if len(r.SentMessageIDs) != 1 || r.SentMessageIDs[0] != accepted[0].SentMessages[0].ID {
		t.Fatalf("sent ids %v, want those of the accepted push %v", r.SentMessageIDs, accepted[0].SentMessages)
	}
	if !r.MaybeDelivered || r.Attempts != 2 {
		t.Fatalf("row %+v: want maybe_delivered after a lease takeover and 2 attempts", r)
	}
	if n := len(b.line.Accepted()); n != 1 || b.line.Stats().Count("push", 409) != 1 {
		t.Fatalf("LINE accepted %d sends and answered %d 409s, want 1 and 1", n, b.line.Stats().Count("push", 409))
	}

	// The stale sender wakes up with "no answer": fencing keeps its
	// result out of the row.
	wake()
	if err := <-staleDone; err != nil {
		t.Fatal(err)
	}
	after := b.row(t, id)
	if after.Status != "delivered" || *after.AcceptedRequestID != accepted[0].RequestID {
		t.Fatalf("stale sender overwrote the row: %+v", after)
	}
}

// allPlanner sends every candidate now, with no rate buckets: enough to
// drive store.ClaimOutbox directly.
type allPlanner struct{}

func (allPlanner) LaneKeys(string, string) ([]store.RateKey, bool)       { return nil, true }
func (allPlanner) Keys(time.Time, store.OutboxCandidate) []store.RateKey { return nil }
func (allPlanner) Plan(now time.Time, cs []store.OutboxCandidate, _ map[store.RateKey]time.Time) store.ClaimPlan {
	var p store.ClaimPlan
	for _, c := range cs {
		p.Send = append(p.Send, store.OutboxReserve{ID: c.ID, SendAt: now})
	}
	return p
}

// TestOutboxLeaseFencing: a live lease keeps a row from other claims; an
// expired one lets a new claim take it, and the old claim's completion is
// refused.
func TestOutboxLeaseFencing(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id := b.insert(t, "push", pushBody(userID(1), "hi"))
	params := store.ClaimParams{Limit: 10, Owner: "a", Lease: time.Minute, Horizon: time.Second}

	first, err := store.ClaimOutbox(ctx, b.db.Pool, params, allPlanner{})
	if err != nil || len(first.Claimed) != 1 {
		t.Fatalf("first claim: %v, %d rows", err, len(first.Claimed))
	}
	params.Owner = "b"
	again, err := store.ClaimOutbox(ctx, b.db.Pool, params, allPlanner{})
	if err != nil || len(again.Claimed) != 0 {
		t.Fatalf("a row under a live lease was claimed again: %v, %d rows", err, len(again.Claimed))
	}
	// The minute passes.
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	second, err := store.ClaimOutbox(ctx, b.db.Pool, params, allPlanner{})
	if err != nil || len(second.Claimed) != 1 {
		t.Fatalf("expired lease not taken over: %v, %d rows", err, len(second.Claimed))
	}
	if second.Claimed[0].ClaimID == first.Claimed[0].ClaimID {
		t.Fatal("the takeover reused the old claim id")
	}
	// A late sender re-slots only under its own claim.
	key := store.RateKey{ChannelID: b.channel, Bucket: "push"}
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox_rate (channel_id, bucket, tat) VALUES ($1, 'push', now() + interval '1 hour')`, b.channel); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.ReslotOutbox(ctx, b.db.Pool, store.Reslot{ID: id, ClaimID: first.Claimed[0].ClaimID, Key: key, Interval: time.Second, Lease: time.Minute, Horizon: 2 * time.Hour}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale re-slot: %v, want ErrLeaseLost", err)
	}
	slot, slotLocal, err := store.ReslotOutbox(ctx, b.db.Pool, store.Reslot{ID: id, ClaimID: second.Claimed[0].ClaimID, Key: key, Interval: time.Second, Lease: time.Minute, Horizon: 2 * time.Hour})
	if err != nil || time.Until(slotLocal) < 59*time.Minute {
		t.Fatalf("re-slot: %v, slot in %s, want the bucket's next slot an hour out", err, time.Until(slotLocal))
	}
	var tat, lease time.Time
	if err := b.db.Pool.QueryRow(ctx, `SELECT (SELECT tat FROM outbox_rate WHERE channel_id = $1 AND bucket = 'push'),
		lease_until FROM outbox WHERE id = $2`, b.channel, id).Scan(&tat, &lease); err != nil {
		t.Fatal(err)
	}
	if !tat.Equal(slot.Add(time.Second)) || !lease.Equal(slot.Add(time.Minute)) {
		t.Fatalf("re-slot left tat %s and lease %s for slot %s", tat, lease, slot)
	}

	stale := store.OutboxCompletion{ID: id, ClaimID: first.Claimed[0].ClaimID, Status: store.OutboxFailed, StatusCode: 400}
	if err := store.CompleteOutbox(ctx, b.db.Pool, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale completion: %v, want ErrLeaseLost", err)
	}
	fresh := store.OutboxCompletion{ID: id, ClaimID: second.Claimed[0].ClaimID, Status: store.OutboxDelivered, StatusCode: 200}
	if err := store.CompleteOutbox(ctx, b.db.Pool, fresh); err != nil {
		t.Fatal(err)
	}
	if err := store.CompleteOutbox(ctx, b.db.Pool, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale completion after delivery: %v, want ErrLeaseLost", err)
	}
	if r := b.row(t, id); r.Status != "delivered" || !r.MaybeDelivered {
		t.Fatalf("row %+v, want delivered and maybe_delivered after a takeover", r)
	}
}

// TestOutboxScrubDuringAttempt: an unsend scrubs a row while it is in
// flight; a retryable outcome then ends it cancelled, never retrying.
func TestOutboxScrubDuringAttempt(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id, err := store.EnqueueOutbox(ctx, b.db.Pool, store.OutboxInsert{ChannelID: b.channel, Endpoint: "push",
		Body: []byte(pushBody(userID(3), "secret text")), SourceMessageID: "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 1, Owner: "a",
		Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(c.Claimed) != 1 {
		t.Fatalf("claim: %v %d", err, len(c.Claimed))
	}
	// The worker's own unsend statements, as it runs them for an unsend
	// event of m-1.
	unsend := func(messageID string) {
		t.Helper()
		batch := &pgx.Batch{}
		store.QueueUnsend(batch, store.MessageKey{ChannelID: b.channel, MessageID: messageID}, time.Now(), "unsend-"+messageID)
		if err := b.db.Pool.SendBatch(ctx, batch).Close(); err != nil {
			t.Fatal(err)
		}
	}
	unsend("m-1")
	if r := b.row(t, id); r.Status != "in_flight" {
		t.Fatalf("an unsend changed an in-flight row to %s; its sender owns it until it completes", r.Status)
	}
	done := store.OutboxCompletion{ID: id, ClaimID: c.Claimed[0].ClaimID, Status: store.OutboxRetrying,
		StatusCode: 500, Ambiguous: true}
	if err := store.CompleteOutbox(ctx, b.db.Pool, done); err != nil {
		t.Fatal(err)
	}
	var status, body string
	if err := b.db.Pool.QueryRow(ctx, `SELECT status, body::text FROM outbox WHERE id = $1`, id).Scan(&status, &body); err != nil {
		t.Fatal(err)
	}
	if status != "cancelled" || body != "{}" {
		t.Fatalf("scrubbed row is %s with body %s, want cancelled and {}", status, body)
	}
	// A pending row derived from the same message is cancelled by the
	// scrub and never sent.
	id2, _ := store.EnqueueOutbox(ctx, b.db.Pool, store.OutboxInsert{ChannelID: b.channel, Endpoint: "push",
		Body: []byte(pushBody(userID(3), "secret again")), SourceMessageID: "m-2"})
	unsend("m-2")
	var finished bool
	if err := b.db.Pool.QueryRow(ctx, `SELECT status = 'cancelled' AND finished_at IS NOT NULL AND body::text = '{}'
		FROM outbox WHERE id = $1`, id2).Scan(&finished); err != nil || !finished {
		t.Fatalf("a pending row derived from an unsent message is not cancelled, finished and scrubbed (%v)", err)
	}
	b.start(t, b.config("s"))
	marker := b.insert(t, "push", pushBody(userID(4), "after"))
	b.waitStatus(t, marker, "delivered")
	if r := b.row(t, id2); r.Status != "cancelled" || r.Attempts != 0 {
		t.Fatalf("cancelled row %+v was touched", r)
	}
	if n := len(b.line.Accepted()); n != 1 {
		t.Fatalf("LINE accepted %d sends, want only the marker", n)
	}
}

// TestOutboxConcurrentClaimsDisjoint: claimers racing over the same due
// rows never take the same row, and together take every row.
func TestOutboxConcurrentClaimsDisjoint(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	const rows = 200
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', '{}' FROM generate_series(1, $2)`, b.channel, rows); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	claimConcurrently(t, b.db.Pool, 4, store.ClaimParams{Limit: 7, Lease: time.Minute, Horizon: time.Second}, allPlanner{},
		func(res store.ClaimResult) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range res.Claimed {
				seen[c.ID]++
			}
		})
	if len(seen) != rows {
		t.Fatalf("claimed %d distinct rows, want %d", len(seen), rows)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("row %d claimed %d times", id, n)
		}
	}
}

// claimConcurrently runs claimers that each claim with p (as owner "w<n>",
// turn n) until a claim finds nothing, and hands every result to took.
func claimConcurrently(t *testing.T, pool *pgxpool.Pool, claimers int, p store.ClaimParams, pl store.Planner, took func(store.ClaimResult)) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < claimers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := p
			p.Owner, p.Turn = fmt.Sprint("w", w), w
			for {
				res, err := store.ClaimOutbox(context.Background(), pool, p, pl)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Seen == 0 {
					return
				}
				took(res)
			}
		}()
	}
	wg.Wait()
}
