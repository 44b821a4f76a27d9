package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Audit is what the end-of-run checks found. Every count but the
// informational ones must be zero.
type Audit struct {
	EventsAccepted   int `json:"eventsAccepted"`
	EventsLost       int `json:"eventsLost"`       // acknowledged with 200, not in events
	EventsDuplicated int `json:"eventsDuplicated"` // an event stored more than once
	DeadLetters      int `json:"deadLetters"`      // informational: messages the worker gave up on
	// StreamLeft are messages still on the stream once the consumer has
	// nothing pending and the drain timed out waiting for the worker to
	// remove them: stored data kept where an unsend cannot reach it.
	// StreamUnstored counts those whose event is not in Postgres, which
	// nothing would ever deliver again.
	StreamLeft     uint64 `json:"streamLeft"`
	StreamUnstored int    `json:"streamUnstored"`
	ConsumerOpen   uint64 `json:"consumerOpen"` // pending plus ack-pending at the end

	OutboxRows        int            `json:"outboxRows"`
	OutboxByStatus    map[string]int `json:"outboxByStatus"`
	OutboxOpen        int            `json:"outboxOpen"`        // not terminal
	OutboxPushesLost  int            `json:"outboxPushesLost"`  // committed inserts missing from the table
	DeliveredMissing  int            `json:"deliveredMissing"`  // delivered rows LINE never accepted
	DeliveredTwice    int            `json:"deliveredTwice"`    // retry keys LINE accepted more than once
	RepliesTwice      int            `json:"repliesTwice"`      // reply tokens used more than once
	UnknownDeliveries int            `json:"unknownDeliveries"` // accepted sends matching no outbox row
	// OutboxFailed are rows that ended failed. Every row a run writes is
	// valid and the emulator refuses none for good, so a failed row is
	// the sender giving up on a row with nothing wrong with it.
	OutboxFailed int `json:"outboxFailed"`
	// Misrecorded are rows LINE accepted that ended in a status other
	// than delivered (uncertain is allowed to): reported, not fatal.
	Misrecorded map[string]int `json:"misrecorded"`
	Accepted    int            `json:"emulatorAccepted"`
	// EmulatorAnswers counts the emulator's answers by endpoint (sends and content)
	// and status ("dropped" for accept-then-drop): proof the faults hit.
	EmulatorAnswers map[string]int64 `json:"emulatorAnswers"`

	Replies ReplyAudit `json:"replies"`

	UnsentChecked int      `json:"unsentChecked"`
	UnsentLeaks   []string `json:"unsentLeaks"` // where an unsent text was still readable
	// StreamUnsent are unsent texts in messages left on the stream after
	// their ack (see StreamLeft, which fails the run by itself).
	StreamUnsent int `json:"streamUnsent"`

	Content ContentAudit `json:"content"`
}

// OK reports an audit with no loss, duplicate or leak.
func (a Audit) OK() bool {
	return a.EventsLost == 0 && a.EventsDuplicated == 0 && a.StreamLeft == 0 && a.StreamUnstored == 0 &&
		a.ConsumerOpen == 0 && a.OutboxOpen == 0 &&
		a.OutboxPushesLost == 0 && a.OutboxFailed == 0 && a.DeliveredMissing == 0 && a.DeliveredTwice == 0 && a.RepliesTwice == 0 &&
		a.UnknownDeliveries == 0 && len(a.UnsentLeaks) == 0 &&
		a.Replies.Expected > 0 && a.Replies.Lost == 0 && a.Replies.Late == 0 && a.Content.OK()
}

// drainAndAudit waits for the pipeline to settle (stream empty, no open
// outbox row, every acknowledged event stored), timing it, then audits.
func (r *run) drainAndAudit(ctx context.Context, res *Result) error {
	conn, err := pgx.Connect(ctx, r.pg.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE accepted_events (id text PRIMARY KEY)"); err != nil {
		return err
	}
	ids := map[string]bool{}
	var rows [][]any
	for _, e := range res.Load.Record.Accepted {
		if !ids[e.WebhookEventID] {
			ids[e.WebhookEventID] = true
			rows = append(rows, []any{e.WebhookEventID})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"accepted_events"}, []string{"id"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	a := &res.Audit
	a.EventsAccepted = len(rows)

	nc, js, err := stream.Connect(r.adminNATS(), "linepipe-chaos-audit", zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()

	start := r.faultsStopped
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for {
		settled, err := r.settled(ctx, conn, js, a)
		if err == nil && settled {
			res.Drained = true
			break
		}
		if time.Now().After(deadline) {
			r.logf("not drained after %s (last check: %v, lost %d, open outbox %d, consumer open %d, stream %d)",
				r.cfg.DrainTimeout, err, a.EventsLost, a.OutboxOpen, a.ConsumerOpen, a.StreamLeft)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(start).Seconds()
	r.logf("pipeline settled %.1fs after the faults stopped", res.DrainSeconds)
	if err := r.auditEvents(ctx, conn, a); err != nil {
		return err
	}
	if a.StreamLeft > 0 {
		if err := r.auditStream(ctx, conn, js, a, res); err != nil {
			return err
		}
	}
	if err := r.auditOutbox(ctx, conn, a, res.OutboxInserted); err != nil {
		return err
	}
	if err := r.auditContent(ctx, conn, js, &a.Content); err != nil {
		return err
	}
	if err := r.auditReplies(ctx, conn, a, res.Load.Record); err != nil {
		return err
	}
	return r.auditUnsent(ctx, conn, a, res)
}

func (r *run) settled(ctx context.Context, conn *pgx.Conn, js jetstream.JetStream, a *Audit) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := js.Stream(sctx, r.stack.Stream)
	if err != nil {
		return false, err
	}
	info, err := st.Info(sctx)
	if err != nil {
		return false, err
	}
	a.StreamLeft = info.State.Msgs
	cons, err := st.Consumer(sctx, "worker")
	if err != nil {
		return false, err
	}
	ci, err := cons.Info(sctx)
	if err != nil {
		return false, err
	}
	a.ConsumerOpen = ci.NumPending + uint64(ci.NumAckPending)
	if err := conn.QueryRow(sctx, `SELECT count(*) FROM accepted_events a
		WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.webhook_event_id = a.id)`).Scan(&a.EventsLost); err != nil {
		return false, err
	}
	if err := conn.QueryRow(sctx, `SELECT count(*) FROM outbox WHERE status IN ('pending', 'retrying', 'in_flight')`).Scan(&a.OutboxOpen); err != nil {
		return false, err
	}
	return a.ConsumerOpen == 0 && a.StreamLeft == 0 && a.EventsLost == 0 && a.OutboxOpen == 0, nil
}

// auditStream reads the messages left on the stream: whether their event
// was stored, and (in auditUnsent) whether they still hold unsent text.
func (r *run) auditStream(ctx context.Context, conn *pgx.Conn, js jetstream.JetStream, a *Audit, res *Result) error {
	st, err := js.Stream(ctx, r.stack.Stream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // removed
		}
		r.streamLeft = append(r.streamLeft, string(m.Data))
		for _, id := range streamEventIDs(m, a) {
			var stored bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE webhook_event_id = $1)`, id).Scan(&stored); err != nil {
				return err
			}
			if !stored {
				a.StreamUnstored++
			}
		}
	}
	r.logf("%d messages left on the stream after the consumer finished; %d of them not stored", len(r.streamLeft), a.StreamUnstored)
	return nil
}

// streamEventIDs is the dedup ids of the events a stream message holds:
// its own, or those of a bundle's records. An unreadable bundle counts
// as unstored.
func streamEventIDs(m *jetstream.RawStreamMsg, a *Audit) []string {
	switch m.Header.Get(events.HeaderKind) {
	case events.KindEvent:
		return []string{m.Header.Get(jetstream.MsgIDHeader)}
	case events.KindBundle:
		recs, err := events.DecodeBundle(m.Data)
		if err != nil {
			a.StreamUnstored++
			return nil
		}
		var ids []string
		for _, rec := range recs {
			if events.HeaderValue(rec.Header, events.HeaderKind) == events.KindEvent {
				ids = append(ids, events.HeaderValue(rec.Header, jetstream.MsgIDHeader))
			}
		}
		return ids
	}
	return nil
}

func (r *run) auditEvents(ctx context.Context, conn *pgx.Conn, a *Audit) error {
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&a.DeadLetters); err != nil {
		return err
	}
	return conn.QueryRow(ctx, `SELECT count(*) - count(DISTINCT webhook_event_id) FROM events`).Scan(&a.EventsDuplicated)
}

// auditOutbox matches every outbox row with what the emulator accepted,
// by retry key for keyed sends and by reply token for replies.
func (r *run) auditOutbox(ctx context.Context, conn *pgx.Conn, a *Audit, inserted int) error {
	ds := r.emu.Accepted()
	a.Accepted = len(ds)
	a.EmulatorAnswers = map[string]int64{}
	for ep, byStatus := range r.emu.Stats().Requests {
		for status, n := range byStatus {
			a.EmulatorAnswers[ep+"/"+status] += int64(n)
		}
	}
	byKey := linefake.GroupBy(ds, linefake.ByRetryKey)
	for _, g := range byKey {
		if len(g) > 1 {
			a.DeliveredTwice++
		}
	}
	for _, g := range linefake.GroupBy(ds, func(d linefake.Delivery) (string, bool) {
		return d.ReplyToken, d.Endpoint == linefake.EndpointReply && d.ReplyToken != ""
	}) {
		if len(g) > 1 {
			a.RepliesTwice++
		}
	}
	rows, err := conn.Query(ctx, `SELECT endpoint, status, channel_id || '|' || lower(retry_key::text) FROM outbox`)
	if err != nil {
		return err
	}
	defer rows.Close()
	a.OutboxByStatus, a.Misrecorded = map[string]int{}, map[string]int{}
	seen := map[string]bool{}
	pushes := 0
	for rows.Next() {
		var endpoint, status, key string
		if err := rows.Scan(&endpoint, &status, &key); err != nil {
			return err
		}
		a.OutboxRows++
		a.OutboxByStatus[endpoint+"/"+status]++
		if status == "failed" {
			a.OutboxFailed++
		}
		if endpoint == "push" {
			pushes++
		}
		if endpoint == "reply" {
			continue // replies carry no retry key; their tokens are checked above
		}
		seen[key] = true
		n := len(byKey[key])
		switch {
		case status == "delivered" && n == 0:
			a.DeliveredMissing++
		case status != "delivered" && n > 0 && status != "uncertain":
			a.Misrecorded[status]++
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for key := range byKey {
		if !seen[key] {
			a.UnknownDeliveries++
		}
	}
	if pushes < inserted {
		a.OutboxPushesLost = inserted - pushes
	}
	if a.OutboxFailed > 0 {
		return r.logFailedRows(ctx, conn)
	}
	return nil
}

// logFailedRows prints why the first failed outbox rows failed.
func (r *run) logFailedRows(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT id, endpoint, attempts, maybe_delivered, scrubbed_at IS NOT NULL,
			coalesce(last_status_code, 0), coalesce(last_error, '')
		FROM outbox WHERE status = 'failed' ORDER BY id LIMIT 10`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var endpoint, lastError string
		var attempts, code int
		var maybe, scrubbed bool
		if err := rows.Scan(&id, &endpoint, &attempts, &maybe, &scrubbed, &code, &lastError); err != nil {
			return err
		}
		r.logf("  failed outbox row %d (%s): %d attempts, maybe delivered %v, scrubbed %v, last answer %d: %s",
			id, endpoint, attempts, maybe, scrubbed, code, lastError)
	}
	return rows.Err()
}

var unsentTokenRE = regexp.MustCompile(`lg-[0-9a-f]+`)

// auditUnsent looks for the text of every message whose unsend was
// acknowledged in every place it could linger: events.raw, messages,
// dead_letters, outbox bodies and every process's log file.
func (r *run) auditUnsent(ctx context.Context, conn *pgx.Conn, a *Audit, res *Result) error {
	unsent := map[string]bool{}
	for _, u := range res.Load.Record.Unsent {
		if tok := unsentTokenRE.FindString(u.Text); tok != "" {
			unsent[tok] = true
		}
	}
	a.UnsentChecked = len(unsent)
	leaks := map[string]int{}
	for place, sql := range map[string]string{
		"events.raw":        `SELECT raw::text FROM events`,
		"messages":          `SELECT coalesce(text, '') || content::text FROM messages`,
		"dead_letters.data": `SELECT encode(data, 'escape') FROM dead_letters`,
		"outbox.body":       `SELECT body::text FROM outbox`,
	} {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return fmt.Errorf("reading %s: %w", place, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			for _, tok := range unsentTokenRE.FindAllString(s, -1) {
				if unsent[tok] {
					leaks[place]++
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, data := range r.streamLeft {
		for _, tok := range unsentTokenRE.FindAllString(data, -1) {
			if unsent[tok] {
				a.StreamUnsent++
			}
		}
	}
	logs, _ := filepath.Glob(filepath.Join(r.dir, "*.log"))
	for _, path := range logs {
		n, err := countTokens(path, unsent)
		if err != nil {
			return err
		}
		if n > 0 {
			leaks[filepath.Base(path)] += n
		}
	}
	for place, n := range leaks {
		a.UnsentLeaks = append(a.UnsentLeaks, fmt.Sprintf("%s: %d", place, n))
	}
	sort.Strings(a.UnsentLeaks)
	return nil
}

func countTokens(path string, tokens map[string]bool) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		for _, tok := range unsentTokenRE.FindAllString(sc.Text(), -1) {
			if tokens[tok] {
				n++
			}
		}
	}
	return n, sc.Err()
}
