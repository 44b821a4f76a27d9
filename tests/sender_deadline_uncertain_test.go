package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// A reply whose earlier attempt got no answer (maybe_delivered), and
// whose token's validity ends while its retry waits for the rate slot,
// ends `uncertain` as it would at the claim: it may have reached the user,
// so it is never reported `expired`, which says no attempt was made
// (docs/OUTBOX.md, States).
func TestReplyPastDeadlineInSlotWaitAfterNoAnswerIsUncertain(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	b.start(t, b.config("s"))
	ctx := context.Background()
	tx, err := b.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The reply bucket is booked 800 ms ahead (other replies of the
	// channel), within the 1 s horizon, so the retry is claimed with a
	// slot 800 ms out.
	if _, err := tx.Exec(ctx, `INSERT INTO outbox_rate (channel_id, bucket, tat) VALUES ($1, 'reply', now() + interval '800 ms')
		ON CONFLICT (channel_id, bucket) DO UPDATE SET tat = excluded.tat`, b.channel); err != nil {
		t.Fatal(err)
	}
	// The state the sender itself leaves after a reply attempt that timed
	// out: retrying, one attempt, maybe_delivered, no status code. Its
	// token's validity ends in 300 ms.
	var id int64
	body := fmt.Sprintf(`{"replyToken":%q,"messages":[{"type":"text","text":"hi"}]}`, b.line.IssueReplyToken(b.channel))
	if err := tx.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body, status, attempts, maybe_delivered,
			first_attempt_at, last_attempt_at, not_after)
		VALUES ($1, 'reply', $2, 'retrying', 1, true, now() - interval '2 s', now() - interval '2 s', now() + interval '300 ms')
		RETURNING id`, b.channel, body).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := b.waitFinished(t, id)
	var lastErr string
	if r.LastError != nil {
		lastErr = *r.LastError
	}
	if r.Status != "uncertain" || !r.MaybeDelivered || !strings.Contains(lastErr, "may have been delivered") {
		t.Fatalf("reply with an unanswered earlier attempt ended %q (maybe_delivered=%v, %q), want uncertain",
			r.Status, r.MaybeDelivered, lastErr)
	}
	var calls int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM api_log WHERE outbox_id = $1`, id).Scan(&calls); err != nil || calls != 0 {
		t.Fatalf("%d calls for a reply past its deadline (%v), want none", calls, err)
	}
}
