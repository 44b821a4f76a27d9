package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
)

// TestSenderInvalidRowsFailWithoutCalls: rows LINE would refuse fail at
// once with a readable reason, and LINE never sees them.
func TestSenderInvalidRowsFailWithoutCalls(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	text := func(s string) string { return fmt.Sprintf(`{"type":"text","text":%q}`, s) }
	six := strings.TrimSuffix(strings.Repeat(text("x")+",", 6), ",")
	var many []string
	for i := 0; i < 501; i++ {
		many = append(many, fmt.Sprintf("%q", userID(i)))
	}
	cases := []struct{ endpoint, body, want string }{
		{"push", `{"to":"` + userID(1) + `","messages":[` + six + `]}`, "6 messages"},
		// 2,501 emoji are 5,002 UTF-16 code units though only 2,501 runes.
		{"push", `{"to":"` + userID(1) + `","messages":[` + text(strings.Repeat("😀", 2501)) + `]}`, "5002 UTF-16"},
		{"multicast", `{"to":[` + strings.Join(many, ",") + `],"messages":[` + text("x") + `]}`, "501 user ids"},
		{"multicast", `{"to":["C0123456789abcdef0123456789abcdef"],"messages":[` + text("x") + `]}`, "not a user id"},
		{"push", `{"to":"someone","messages":[` + text("x") + `]}`, "U, C or R + 32 hex"},
		{"reply", `{"messages":[` + text("x") + `]}`, "no replyToken"},
		{"pigeon", `{"messages":[` + text("x") + `]}`, "unknown endpoint"},
		{"broadcast", `{"messages":[]}`, "no messages"},
		{"push", `[1,2]`, "not a JSON object"},
		{"push", `{"to":"` + userID(1) + `","messages":[` + text(strings.Repeat("a", 2<<20)) + `]}`, "2MB"},
	}
	ids := make([]int64, len(cases))
	for i, c := range cases {
		ids[i] = b.insert(t, c.endpoint, c.body)
	}
	b.start(t, b.config("s"))
	for i, c := range cases {
		r := b.waitStatus(t, ids[i], "failed")
		if r.LastError == nil || !strings.Contains(*r.LastError, c.want) || r.Attempts != 0 {
			t.Errorf("%s row %d: error %v after %d attempts, want %q and no attempt", c.endpoint, i, r.LastError, r.Attempts, c.want)
		}
	}
	if st := b.line.Stats(); len(st.Requests) != 0 {
		t.Fatalf("LINE saw requests for invalid rows: %v", st.Requests)
	}
}

// TestSenderUnknownChannelFails: a row for a channel linepipe has no
// credentials for (an operator's typo) ends failed, saying so, at once and
// without a request to LINE: no retry could ever send it.
func TestSenderUnknownChannelFails(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	var id int64
	if err := b.db.Pool.QueryRow(context.Background(), `INSERT INTO outbox (channel_id, endpoint, body)
		VALUES ('1999999999', 'push', $1) RETURNING id`, pushBody(userID(1), "to nowhere")).Scan(&id); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("s"))
	r := b.waitStatus(t, id, "failed")
	if r.LastError == nil || !strings.Contains(*r.LastError, "not configured") {
		t.Fatalf("row for an unknown channel: error %v, want it named not configured", r.LastError)
	}
	if st := b.line.Stats(); len(st.Requests) != 0 {
		t.Fatalf("LINE saw requests for a channel linepipe has no credentials for: %v", st.Requests)
	}
}

// TestSenderCancelsRowScrubbedInFlight: an unsend scrubs a row while its
// sender holds it, and that sender dies. The replica that takes the row
// over when the lease ends does not send it and does not call it failed:
// the unsend wins, the row ends cancelled, and maybe_delivered says that
// the dead sender's attempt may have reached LINE.
func TestSenderCancelsRowScrubbedInFlight(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id := b.insert(t, "push", pushBody(userID(2), "take it back"))
	// What a sender that died mid-request leaves, then the worker's unsend
	// scrub of an in-flight row (store.QueueUnsends keeps its status).
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET status = 'in_flight', claim_id = gen_random_uuid(),
			claimed_by = 'dead-sender', send_at = now() - interval '1 minute',
			lease_until = now() - interval '1 second', attempts = 1, first_attempt_at = now() - interval '1 minute'
		WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET body = '{}', scrubbed_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("s"))
	r := b.waitStatus(t, id, "cancelled")
	if r.LastError == nil || !strings.Contains(*r.LastError, "unsent") || r.Attempts != 1 || !r.MaybeDelivered {
		t.Errorf("row ended with error %v after %d attempts, maybe delivered %v; want the unsend named, no new attempt, maybe delivered",
			r.LastError, r.Attempts, r.MaybeDelivered)
	}
	if st := b.line.Stats(); len(st.Requests) != 0 {
		t.Fatalf("LINE saw a request for a scrubbed row: %v", st.Requests)
	}
}

// TestSenderSkipsUnfollowedRecipients: a push to a user the followers
// table shows as not following is skipped; a follower and an unknown user
// are sent to. SENDER_SKIP_UNFOLLOWED=false sends to everyone.
func TestSenderSkipsUnfollowedRecipients(t *testing.T) {
	t.Parallel()
	for _, skip := range []bool{true, false} {
		t.Run(fmt.Sprint("skip=", skip), func(t *testing.T) {
			t.Parallel()
			b := setupSender(t, linefake.Config{})
			ctx := context.Background()
			_, err := b.db.Pool.Exec(ctx, `INSERT INTO followers (channel_id, user_id, following, state_at)
				VALUES ($1, $2, false, now()), ($1, $3, true, now())`, b.channel, userID(1), userID(2))
			if err != nil {
				t.Fatal(err)
			}
			gone := b.insert(t, "push", pushBody(userID(1), "a"))
			friend := b.insert(t, "push", pushBody(userID(2), "b"))
			stranger := b.insert(t, "push", pushBody(userID(3), "c"))
			cfg := b.config("s")
			cfg.SendToUnfollowed = !skip
			b.start(t, cfg)
			b.waitStatus(t, friend, "delivered")
			b.waitStatus(t, stranger, "delivered")
			if !skip {
				b.waitStatus(t, gone, "delivered")
				return
			}
			r := b.waitStatus(t, gone, "skipped")
			if r.Attempts != 0 || !strings.Contains(*r.LastError, "does not follow") {
				t.Fatalf("skipped row %+v", r)
			}
			if n := len(linefake.GroupBy(b.line.Accepted(), linefake.BodyField("to"))); n != 2 {
				t.Fatalf("LINE delivered to %d recipients, want 2", n)
			}
		})
	}
}

// TestSenderReply covers the keyless endpoint: a valid token delivers
// (no retry key sent), a row past the token's validity expires without a
// call, and a retry after an attempt that got no answer, refused with
// "Invalid reply token", ends uncertain: it may have been delivered.
func TestSenderReply(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	replyBody := func(tok string) string {
		return fmt.Sprintf(`{"replyToken":%q,"messages":[{"type":"text","text":"echo"}]}`, tok)
	}
	ok := b.insert(t, "reply", replyBody(b.line.IssueReplyToken(b.channel)))
	var stale int64
	if err := b.db.Pool.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body, created_at)
		VALUES ($1, 'reply', $2, now() - interval '2 minutes') RETURNING id`,
		b.channel, replyBody(b.line.IssueReplyToken(b.channel))).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("s"))
	// In order, on one emulator: the last subtest turns faults on.
	t.Run("valid token delivered without a key", func(t *testing.T) {
		r := b.waitStatus(t, ok, "delivered")
		acc := b.line.Accepted()
		if len(acc) != 1 || acc[0].RetryKey != "" || len(r.SentMessageIDs) != 1 || r.SentMessageIDs[0] != acc[0].SentMessages[0].ID {
			t.Fatalf("reply: accepted %+v, row %+v", acc, r)
		}
	})
	t.Run("past the token's validity expires without a call", func(t *testing.T) {
		if r := b.waitStatus(t, stale, "expired"); r.Attempts != 0 {
			t.Fatalf("stale reply was attempted: %+v", r)
		}
	})
	t.Run("lost answer then refused retry ends uncertain", func(t *testing.T) {
		// Accept-then-drop: LINE used the token but the sender heard nothing.
		if err := b.line.SetFaults(linefake.Faults{DropRate: 1}); err != nil {
			t.Fatal(err)
		}
		// The retry finds the token used: 400 "Invalid reply token".
		lost := b.insert(t, "reply", replyBody(b.line.IssueReplyToken(b.channel)))
		r := b.waitStatus(t, lost, "uncertain")
		if !r.MaybeDelivered || r.Attempts != 2 || r.LastStatusCode == nil || *r.LastStatusCode != 400 || !strings.Contains(*r.LastError, "may have been delivered") {
			t.Fatalf("uncertain reply %+v", r)
		}
		if n := len(b.line.Accepted()); n != 2 {
			t.Fatalf("LINE accepted %d replies, want 2 (the dropped one counts)", n)
		}
	})
	t.Run("500 after LINE accepted, then refused retry ends uncertain", func(t *testing.T) {
		// LINE's 5xx may have delivered: here it did, and used the token.
		if err := b.line.SetFaults(linefake.Faults{AcceptedFailRate: 1}); err != nil {
			t.Fatal(err)
		}
		answered500 := b.insert(t, "reply", replyBody(b.line.IssueReplyToken(b.channel)))
		r := b.waitStatus(t, answered500, "uncertain")
		if !r.MaybeDelivered || r.Attempts != 2 || r.LastStatusCode == nil || *r.LastStatusCode != 400 || !strings.Contains(*r.LastError, "may have been delivered") {
			t.Fatalf("uncertain reply after a 500 %+v", r)
		}
		if n := len(b.line.Accepted()); n != 3 {
			t.Fatalf("LINE accepted %d replies, want 3 (the one answered 500 counts)", n)
		}
	})
}

// TestSenderPushAnswered500AfterAccept: LINE accepted a push but answered
// 500. The sender retries with the same key, LINE answers 409 naming the
// accepted request, and the row is delivered once, with that request's
// id and sent messages.
func TestSenderPushAnswered500AfterAccept(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{Faults: linefake.Faults{AcceptedFailRate: 1}})
	id := b.insert(t, "push", pushBody(userID(4), "once"))
	b.start(t, b.config("s"))
	r := b.waitStatus(t, id, "delivered")
	acc := b.line.Accepted()
	if len(acc) != 1 || acc[0].RetryKey != r.RetryKey {
		t.Fatalf("LINE accepted %+v, want the push once under the row's key %s", acc, r.RetryKey)
	}
	if r.Attempts != 2 || r.LastStatusCode == nil || *r.LastStatusCode != 409 ||
		r.AcceptedRequestID == nil || *r.AcceptedRequestID != acc[0].RequestID ||
		len(r.SentMessageIDs) != 1 || r.SentMessageIDs[0] != acc[0].SentMessages[0].ID {
		t.Fatalf("row %+v, want delivered on the 409 with the accepted request %s and its message id", r, acc[0].RequestID)
	}
}

// TestSenderRateLimitsAcrossReplicas: three replicas share one channel's
// buckets. LINE's counter of requests in any one second never exceeds the
// configured push rate and LINE never had to answer 429; a broadcast
// bucket of 2 an hour spaces broadcasts 30 minutes apart, so one goes
// out and the others wait, postponed, without a call.
func TestSenderRateLimitsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const perSecond = 25
	b := setupSender(t, linefake.Config{RateLimits: linefake.RateLimits{
		Push: linefake.Limit{Requests: perSecond, Per: time.Second}}})
	const rows = 75
	for i := 0; i < rows; i++ {
		b.insert(t, "push", pushBody(userID(i), fmt.Sprint(i)))
	}
	casts := []int64{
		b.insert(t, "broadcast", `{"messages":[{"type":"text","text":"1"}]}`),
		b.insert(t, "broadcast", `{"messages":[{"type":"text","text":"2"}]}`),
		b.insert(t, "broadcast", `{"messages":[{"type":"text","text":"3"}]}`),
	}
	for i := 0; i < 3; i++ {
		cfg := b.config(fmt.Sprint("replica-", i))
		cfg.Rates = map[string]sender.Rate{"push": {Limit: perSecond, Per: time.Second}, "broadcast": {Limit: 2, Per: time.Hour}}
		b.start(t, cfg)
	}
	waitFor(t, "all pushes and one broadcast delivered", func() (bool, string) {
		c := b.statusCounts(t)
		return c["delivered"] == rows+1, fmt.Sprint(c)
	})
	st := b.line.Stats()
	for _, w := range st.RateWindows {
		t.Logf("%s peaked at %d requests in one second", w.Endpoint, w.MaxAttempts)
		if w.Endpoint == "push" && w.MaxAttempts > perSecond {
			t.Fatalf("push peaked at %d requests in one second, limit %d", w.MaxAttempts, perSecond)
		}
	}
	if n := st.Count("push", 429) + st.Count("broadcast", 429); n > 0 {
		t.Fatalf("LINE had to answer 429 %d times", n)
	}
	var pending int
	var next time.Time
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*),
		(SELECT tat FROM outbox_rate WHERE channel_id = $2 AND bucket = 'broadcast')
		FROM outbox WHERE id = ANY($1) AND status = 'pending' AND attempts = 0`, casts, b.channel).Scan(&pending, &next); err != nil {
		t.Fatal(err)
	}
	if pending != 2 || time.Until(next) < 20*time.Minute || st.Count("broadcast", 200) != 1 {
		t.Fatalf("broadcast: %d pending until %s, %d sent; want 2 pending, the bucket booked 30 min out, 1 sent", pending, next, st.Count("broadcast", 200))
	}
}
