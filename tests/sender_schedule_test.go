package tests

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// queuePushes inserts n pushes to distinct users on channel in one
// statement, the way a campaign lands in the outbox.
func (b *senderBundle) queuePushes(t testing.TB, channel string, n int) {
	t.Helper()
	if _, err := b.db.Pool.Exec(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', json_build_object('to', 'U' || lpad(to_hex(i), 32, '0'),
		       'messages', json_build_array(json_build_object('type', 'text', 'text', 'campaign ' || i)))
		FROM generate_series(1, $2) AS i`, channel, n); err != nil {
		t.Fatal(err)
	}
}

func replyText(token, text string) string {
	return fmt.Sprintf(`{"replyToken":%q,"messages":[{"type":"text","text":%q}]}`, token, text)
}

// acceptedAfter is when LINE accepted the send of outbox row id, minus when
// the row was inserted.
func (b *senderBundle) acceptedAfter(t testing.TB, id int64) time.Duration {
	t.Helper()
	var created time.Time
	var reqID *string
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT created_at, request_id FROM outbox WHERE id = $1`, id).
		Scan(&created, &reqID); err != nil || reqID == nil {
		t.Fatalf("row %d: %v, request id %v", id, err, reqID)
	}
	for _, d := range b.line.Accepted() {
		if d.RequestID == *reqID {
			return d.At.Sub(created)
		}
	}
	t.Fatalf("LINE has no accepted send with request id %s", *reqID)
	return 0
}

// acceptedAhead counts the sends of other channels LINE accepted after
// the first since accepted deliveries and before row id's.
func (b *senderBundle) acceptedAhead(t testing.TB, id int64, channel string, since int) int {
	t.Helper()
	var reqID *string
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT request_id FROM outbox WHERE id = $1`, id).
		Scan(&reqID); err != nil || reqID == nil {
		t.Fatalf("row %d: %v, request id %v", id, err, reqID)
	}
	ahead := 0
	for _, d := range b.line.Accepted()[since:] {
		if d.RequestID == *reqID {
			return ahead
		}
		if d.Channel != channel {
			ahead++
		}
	}
	t.Fatalf("LINE has no accepted send with request id %s", *reqID)
	return 0
}

func (b *senderBundle) pendingCount(t testing.TB, channel string) int {
	t.Helper()
	var n int
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox
		WHERE channel_id = $1 AND status IN ('pending', 'retrying')`, channel).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboxRepliesAndPriorityFirst: a channel drains a push backlog at
// its rate limit. A reply inserted meanwhile, and a push an operator gave
// a higher priority, are sent within a claim or two, long before the
// backlog is gone: they never queue behind it.
func TestOutboxRepliesAndPriorityFirst(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	const backlog = 600
	b.queuePushes(t, b.channel, backlog)
	cfg := b.config("s")
	cfg.Rates = map[string]sender.Rate{"push": {Limit: 50, Per: time.Second}}
	b.start(t, cfg)
	waitFor(t, "the backlog to start draining", func() (bool, string) {
		n := len(b.line.Accepted())
		return n >= 20, fmt.Sprint(n, " accepted")
	})

	reply := b.insert(t, "reply", replyText(b.line.IssueReplyToken(b.channel), "reply"))
	var urgent int64
	if err := b.db.Pool.QueryRow(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body, priority)
		VALUES ($1, 'push', $2, 10) RETURNING id`, b.channel, pushBody(userID(backlog+7), "urgent")).Scan(&urgent); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, reply, "delivered")
	b.waitStatus(t, urgent, "delivered")
	left := b.pendingCount(t, b.channel)
	replyWait, urgentWait := b.acceptedAfter(t, reply), b.acceptedAfter(t, urgent)
	t.Logf("reply accepted %s after insert, priority push %s; %d campaign pushes still queued", replyWait, urgentWait, left)
	// At 50/s the backlog takes 12s; a row queued behind it would wait
	// for all of it.
	if left < backlog/2 {
		t.Fatalf("only %d of %d pushes left queued: the test did not run against a backlog", left, backlog)
	}
	if replyWait > 3*time.Second || urgentWait > 3*time.Second {
		t.Fatalf("reply waited %s and priority push %s behind a backlog", replyWait, urgentWait)
	}
}

// TestOutboxFairAcrossChannels: when the sender's own capacity is the
// bottleneck (few requests in flight, a slow API), channel A's backlog
// of thousands does not delay channel B's fresh rows: each claim shares
// its batch between the channels' lanes.
func TestOutboxFairAcrossChannels(t *testing.T) {
	t.Parallel()
	const chanB = "2234567890"
	b := setupSender(t, linefake.Config{
		Channels: []linefake.Channel{{ID: chanB, Secret: "s3cr3t-b"}},
		Faults:   linefake.Faults{Latency: 20 * time.Millisecond},
	})
	if err := store.UpsertChannel(context.Background(), b.db.Pool, store.Channel{ID: chanB, Secret: "s3cr3t-b"}); err != nil {
		t.Fatal(err)
	}
	const backlog = 3000
	b.queuePushes(t, b.channel, backlog)
	cfg := b.config("s")
	cfg.Concurrency, cfg.BatchSize = 4, 4 // about 200 sends a second
	b.start(t, cfg)
	waitFor(t, "channel A's backlog to start draining", func() (bool, string) {
		n := len(b.line.Accepted())
		return n >= 50, fmt.Sprint(n, " accepted")
	})

	// Fairness is measured in sends, not seconds, so a slow machine
	// cannot fail it: how many of channel A's rows LINE accepted after a
	// row of B was committed and before that row. Behind a FIFO backlog
	// that would be every one of A's ~2,900 rows still queued.
	var ids []int64
	var seen []int // deliveries LINE had accepted when each B row committed
	for i := range 10 {
		var id int64
		if err := b.db.Pool.QueryRow(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body)
			VALUES ($1, 'push', $2) RETURNING id`, chanB, pushBody(userID(i), "for B")).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids, seen = append(ids, id), append(seen, len(b.line.Accepted()))
		time.Sleep(50 * time.Millisecond)
	}
	var waits []time.Duration
	worstAhead := 0
	for i, id := range ids {
		b.waitStatus(t, id, "delivered")
		waits = append(waits, b.acceptedAfter(t, id))
		worstAhead = max(worstAhead, b.acceptedAhead(t, id, chanB, seen[i]))
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	left := b.pendingCount(t, b.channel)
	t.Logf("channel B's rows accepted after %v, at most %d of channel A's sends ahead of one; channel A still has %d queued",
		waits, worstAhead, left)
	if left < backlog/2 {
		t.Fatalf("only %d of channel A's %d pushes left: no backlog to be fair against", left, backlog)
	}
	if worstAhead > 20 {
		t.Fatalf("%d of channel A's sends went ahead of a row of channel B committed before them", worstAhead)
	}
}

// TestOutboxWokenByInsert: with a poll of a minute, rows committed by a
// plain INSERT from another connection, and a row an operator requeues,
// are sent at once: the insert's notification wakes the sender. (Every
// schema of the database shares the notification channel, so another
// test's insert can wake this sender too: TestOutboxNotifiesOnInsertAndRequeue
// checks the triggers themselves, per backend.)
func TestOutboxWokenByInsert(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{Faults: linefake.Faults{FailRate: 1}})
	cfg := b.config("s")
	cfg.PollInterval = time.Minute
	cfg.BackoffBase, cfg.BackoffMax = time.Hour, time.Hour
	b.start(t, cfg)
	time.Sleep(500 * time.Millisecond) // the first claims found nothing; the sender now waits

	// Each wait is bounded by the promise, far below the poll: a sender
	// that waits for its poll fails here within seconds, not after it.
	const promptly = 10 * time.Second
	failing := b.insert(t, "push", pushBody(userID(1), "first"))
	waitWithin(t, promptly, "the first attempt", func() (bool, string) {
		r := b.row(t, failing)
		return r.Attempts == 1 && r.Status == "retrying", fmt.Sprintf("%+v", r)
	})
	if err := b.line.SetFaults(linefake.Faults{}); err != nil {
		t.Fatal(err)
	}
	delivered := func(id int64) func() (bool, string) {
		return func() (bool, string) {
			r := b.row(t, id)
			return r.Status == "delivered", fmt.Sprintf("%+v", r)
		}
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	fresh := b.insert(t, "push", pushBody(userID(2), "woken"))
	waitWithin(t, promptly, "the inserted row to be delivered", delivered(fresh))
	woken := time.Since(start)

	// An operator's requeue of the retrying row (due in an hour) wakes it too.
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	if _, err := b.db.Pool.Exec(context.Background(), `UPDATE outbox SET status = 'pending', next_attempt_at = now()
		WHERE id = $1`, failing); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, promptly, "the requeued row to be delivered", delivered(failing))
	requeued := time.Since(start)
	t.Logf("insert sent after %s, requeue after %s, with a poll of %s", woken, requeued, cfg.PollInterval)
	if woken > 5*time.Second || requeued > 5*time.Second {
		t.Fatalf("insert took %s and requeue %s: the sender waited for its poll", woken, requeued)
	}
}

// TestOutboxGroupedCompletionFence: one grouped completion statement
// carrying a stale owner's completion and the new owner's: the stale one
// is refused with ErrLeaseLost and changes nothing, the new one lands,
// and both calls are in api_log.
func TestOutboxGroupedCompletionFence(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	taken := b.insert(t, "push", pushBody(userID(1), "taken over"))
	other := b.insert(t, "push", pushBody(userID(2), "other"))
	params := store.ClaimParams{Limit: 10, Owner: "a", Lease: time.Minute, Horizon: time.Second}
	first, err := store.ClaimOutbox(ctx, b.db.Pool, params, allPlanner{})
	if err != nil || len(first.Claimed) != 2 {
		t.Fatalf("first claim: %v, %d rows", err, len(first.Claimed))
	}
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1`, taken); err != nil {
		t.Fatal(err)
	}
	params.Owner = "b"
	second, err := store.ClaimOutbox(ctx, b.db.Pool, params, allPlanner{})
	if err != nil || len(second.Claimed) != 1 || second.Claimed[0].ID != taken {
		t.Fatalf("takeover: %v, %+v", err, second.Claimed)
	}
	claimOf := func(res store.ClaimResult, id int64) uuid.UUID {
		for _, c := range res.Claimed {
			if c.ID == id {
				return c.ClaimID
			}
		}
		t.Fatalf("row %d not in claim", id)
		return uuid.Nil
	}
	logged := func(id int64, status int) *store.APILogEntry {
		return &store.APILogEntry{CalledAt: time.Now(), Method: "POST", Endpoint: "/v2/bot/message/push",
			Status: status, ChannelID: b.channel, OutboxID: &id, RequestID: fmt.Sprint("req-", id, "-", status)}
	}
	errs, err := store.CompleteOutboxBatch(ctx, b.db.Pool, []store.OutboxCompletion{
		{ID: taken, ClaimID: claimOf(first, taken), Status: store.OutboxFailed, StatusCode: 400, Error: "stale \x00 owner", Log: logged(taken, 400)},
		{ID: other, ClaimID: claimOf(first, other), Status: store.OutboxDelivered, StatusCode: 200, Log: logged(other, 200),
			SentMessageIDs: []string{"m1", "m2"}},
		{ID: taken, ClaimID: claimOf(second, taken), Status: store.OutboxDelivered, StatusCode: 200, Log: logged(taken, 200)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], store.ErrLeaseLost) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("grouped completion results %v, want [lease lost, nil, nil]", errs)
	}
	for _, id := range []int64{taken, other} {
		if r := b.row(t, id); r.Status != "delivered" || r.LastStatusCode == nil || *r.LastStatusCode != 200 {
			t.Fatalf("row %d is %+v, want delivered by its current owner", id, r)
		}
	}
	if r := b.row(t, other); fmt.Sprint(r.SentMessageIDs) != "[m1 m2]" {
		t.Fatalf("sent message ids %v", r.SentMessageIDs)
	}
	var calls int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM api_log WHERE outbox_id = ANY($1)`,
		[]int64{taken, other}).Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Fatalf("api_log has %d calls, want all 3 (the stale one happened too)", calls)
	}
}

// TestSenderTakesTurnsOneRowAtATime: when every claim takes a single row
// (one request in flight), the channels' lanes still take turns, so a
// channel behind another's backlog is served every other send, not after
// it. Without the turn, the lane sorting first would win every tie.
func TestSenderTakesTurnsOneRowAtATime(t *testing.T) {
	t.Parallel()
	const chanB = "2234567891"
	b := setupSender(t, linefake.Config{Channels: []linefake.Channel{{ID: chanB, Secret: "s3cr3t-b"}}})
	if err := store.UpsertChannel(context.Background(), b.db.Pool, store.Channel{ID: chanB, Secret: "s3cr3t-b"}); err != nil {
		t.Fatal(err)
	}
	b.queuePushes(t, b.channel, 30)
	b.queuePushes(t, chanB, 30)
	cfg := b.config("s")
	cfg.Concurrency, cfg.BatchSize = 1, 1
	b.start(t, cfg)
	waitFor(t, "20 sends", func() (bool, string) {
		n := len(b.line.Accepted())
		return n >= 20, fmt.Sprint(n, " accepted")
	})
	ofB := 0
	for _, d := range b.line.Accepted()[:20] {
		if d.Channel == chanB {
			ofB++
		}
	}
	if ofB < 7 || ofB > 13 {
		t.Fatalf("%d of the first 20 sends were channel B's, want about half: the lanes did not take turns", ofB)
	}
}
