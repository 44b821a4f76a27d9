package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/loadgen"
)

// ReplyAudit is what the audit found about the echo bot's replies: every
// text message the load generator had acknowledged carries a reply token
// the emulator issued, so its reply is a real one LINE would honour once,
// within the token's lifetime.
type ReplyAudit struct {
	// Expected are acknowledged text messages with a reply token whose
	// message was not unsent (an unsend may scrub the reply).
	Expected int `json:"expected"`
	Accepted int `json:"accepted"` // of Expected, accepted by the emulator
	// Uncertain were not accepted and ended `uncertain`: the sender could
	// not tell whether LINE took them and, with no retry key for replies,
	// could not ask again. Documented as possibly lost; printed, not fatal.
	Uncertain int `json:"uncertain"`
	// Lost were not accepted and did not end uncertain, by the row's
	// status ("no row" when the reply was never queued).
	Lost       int            `json:"lost"`
	LostStatus map[string]int `json:"lostStatus,omitempty"`
	// Late are reply calls (api_log) made after the token had expired.
	Late int `json:"late"`
	// Refused are the emulator's 400 answers to replies: with every token
	// real, each is a call made with an expired or spent token, such as a
	// retry after an attempt that got no answer (the row ends uncertain).
	Refused int `json:"refused"`
}

// replyTokens issues the load generator's reply tokens from the emulator
// and remembers until when each works, so the audit can tell a late call.
type replyTokens struct {
	emu   *linefake.Server
	ttl   time.Duration
	mu    sync.Mutex
	until map[string]time.Time
}

var _ loadgen.ReplyTokens = (*replyTokens)(nil)

func newReplyTokens(emu *linefake.Server, ttl time.Duration) *replyTokens {
	return &replyTokens{emu: emu, ttl: ttl, until: map[string]time.Time{}}
}

// Issue implements loadgen.ReplyTokens.
func (t *replyTokens) Issue(channelID string) string {
	tok := t.emu.IssueReplyToken(channelID)
	t.mu.Lock()
	t.until[tok] = time.Now().Add(t.ttl)
	t.mu.Unlock()
	return tok
}

// Redelivered implements loadgen.ReplyTokens: the emulator rearms the
// token as LINE's redelivery does.
func (t *replyTokens) Redelivered(token string) {
	if !t.emu.RearmReplyToken(token) {
		return
	}
	t.mu.Lock()
	t.until[token] = time.Now().Add(t.ttl)
	t.mu.Unlock()
}

// replyRow is what the audit reads of an outbox reply row.
type replyRow struct {
	id                                        int64
	status, lastError                         string
	attempts                                  int
	created, notAfter, firstAttempt, finished time.Time
}

// replyRows reads the reply rows by token; scrubbed rows (their message
// was unsent, the body and its token are gone) are left out.
func (r *run) replyRows(ctx context.Context, conn *pgx.Conn) (map[string]replyRow, error) {
	rows, err := conn.Query(ctx, `SELECT body->>'replyToken', id, status, coalesce(last_error, ''), attempts, created_at,
			coalesce(not_after, 'epoch'), coalesce(first_attempt_at, 'epoch'), coalesce(finished_at, 'epoch')
		FROM outbox WHERE endpoint = 'reply' AND scrubbed_at IS NULL AND body->>'replyToken' IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]replyRow{}
	for rows.Next() {
		var tok string
		var x replyRow
		if err := rows.Scan(&tok, &x.id, &x.status, &x.lastError, &x.attempts, &x.created, &x.notAfter, &x.firstAttempt, &x.finished); err != nil {
			return nil, err
		}
		out[tok] = x
	}
	return out, rows.Err()
}

// clock prints a time of day, or "-" for none.
func clock(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return "-"
	}
	return t.Local().Format("15:04:05.000")
}

func (t *replyTokens) expiry(token string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.until[token]
	return u, ok
}

// auditReplies matches every expected reply with the emulator's ledger
// and the outbox, and every reply call the sender logged with its token's
// lifetime. Replies LINE accepted twice are counted in RepliesTwice.
func (r *run) auditReplies(ctx context.Context, conn *pgx.Conn, a *Audit, rec *loadgen.Record) error {
	ra := ReplyAudit{LostStatus: map[string]int{}}
	unsent := map[string]bool{}
	for _, u := range append(append([]loadgen.UnsentMessage(nil), rec.Unsent...), rec.UnsendUnconfirmed...) {
		unsent[u.MessageEventID] = true
	}
	accepted := map[string]bool{}
	for _, d := range r.emu.Accepted() {
		if d.Endpoint == linefake.EndpointReply {
			accepted[d.ReplyToken] = true
		}
	}
	rows, err := r.replyRows(ctx, conn)
	if err != nil {
		return err
	}
	for tok, row := range rows {
		switch {
		case accepted[tok] && row.status != "delivered" && row.status != "uncertain":
			a.Misrecorded["reply/"+row.status]++
		case !accepted[tok] && row.status == "delivered":
			a.DeliveredMissing++ // recorded as delivered, never accepted
		}
	}
	var lost []string
	for _, e := range rec.Accepted {
		if e.Kind != loadgen.KindText || e.ReplyToken == "" || unsent[e.WebhookEventID] {
			continue
		}
		ra.Expected++
		row, queued := rows[e.ReplyToken]
		switch {
		case accepted[e.ReplyToken]:
			ra.Accepted++
		case queued && row.status == "uncertain":
			ra.Uncertain++
		case !queued:
			ra.Lost++
			ra.LostStatus["no row"]++
			lost = append(lost, fmt.Sprintf("event %s: no outbox row", e.WebhookEventID))
		default:
			ra.Lost++
			ra.LostStatus[row.status]++
			until, _ := r.tokens.expiry(e.ReplyToken)
			lost = append(lost, fmt.Sprintf("event %s: row %d %s, token valid until %s, row created %s, not_after %s, first attempt %s, %d attempts, finished %s: %s",
				e.WebhookEventID, row.id, row.status, clock(until), clock(row.created), clock(row.notAfter), clock(row.firstAttempt),
				row.attempts, clock(row.finished), row.lastError))
		}
	}
	for i, l := range lost {
		if i == 10 {
			r.logf("  ... %d more lost replies", len(lost)-i)
			break
		}
		r.logf("  lost reply: %s", l)
	}
	calls, err := conn.Query(ctx, `SELECT coalesce(o.body->>'replyToken', ''), l.called_at
		FROM api_log l JOIN outbox o ON o.id = l.outbox_id WHERE o.endpoint = 'reply'`)
	if err != nil {
		return err
	}
	for calls.Next() {
		var tok string
		var at time.Time
		if err := calls.Scan(&tok, &at); err != nil {
			calls.Close()
			return err
		}
		if until, ok := r.tokens.expiry(tok); ok && !at.Before(until) {
			ra.Late++
		}
	}
	calls.Close()
	if err := calls.Err(); err != nil {
		return err
	}
	ra.Refused = r.emu.Stats().Count(linefake.EndpointReply, 400)
	a.Replies = ra
	r.logf("replies: %d expected, %d accepted, %d uncertain, %d lost %v, %d calls after expiry, %d refused by LINE",
		ra.Expected, ra.Accepted, ra.Uncertain, ra.Lost, ra.LostStatus, ra.Late, ra.Refused)
	return nil
}
