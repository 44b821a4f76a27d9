package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/loadgen"
)

// E2EResult is latency through the whole pipeline at a steady rate:
// LINE's webhook to the stored events row, and to the echo bot's reply
// arriving at LINE.
type E2EResult struct {
	Rate         float64                `json:"rate"`
	AchievedRate float64                `json:"achievedRate"`
	Workers      int                    `json:"workers"`
	WorkerLoops  int                    `json:"workerLoops,omitempty"` // each one's; 0: the worker's default
	Senders      int                    `json:"senders"`
	Webhooks     int                    `json:"webhooks"`
	Failed       int                    `json:"webhooksFailed"`
	Failures     WebhookFailures        `json:"webhookFailures"`
	ToRow        loadgen.LatencySummary `json:"toRow"`
	ToReply      loadgen.LatencySummary `json:"toReply"`
	Missing      int                    `json:"missingReplies"`
	PollMS       float64                `json:"rowPollMs"`
	// The warm-up's webhooks, sent at the same rate just before the
	// timed ones and not counted in ToRow or ToReply (see Config.Warmup).
	WarmupSeconds  float64                `json:"warmupSeconds"`
	WarmupWebhooks int                    `json:"warmupWebhooks"`
	WarmupToReply  loadgen.LatencySummary `json:"warmupToReply"`
	// Path is where the timed replies' time went once their rows existed.
	Path ReplyPath `json:"path"`
	// CPU is the load's, warm-up included, per webhook, from the first
	// webhook sent to the last reply accepted.
	CPU CPUShare `json:"cpu"`
}

// ReplyPath is the p50 and p99 of each step of a reply after its row was
// written, from the outbox's own columns (see replyPath), in ms.
type ReplyPath struct {
	ClaimedP50    float64 `json:"rowToClaimedMsP50"`
	ClaimedP99    float64 `json:"rowToClaimedMsP99"`
	SlotP50       float64 `json:"claimedToSlotMsP50"`
	SlotP99       float64 `json:"claimedToSlotMsP99"`
	CompletionP50 float64 `json:"slotToCompletionMsP50"`
	CompletionP99 float64 `json:"slotToCompletionMsP99"`
}

// rowPoll is how often stored rows are looked for; it bounds the
// resolution of the webhook-to-row latency.
const rowPoll = 5 * time.Millisecond

// e2eSpec is one end-to-end run: its rate, length and replicas.
type e2eSpec struct {
	name             string
	rate             float64
	duration, warmup time.Duration
	workers, senders int
	// workerLoops is each worker's WORKER_CONCURRENCY; 0 leaves the
	// worker's default.
	workerLoops int
}

// pipelineTables is every table the pipeline writes, emptied before an
// end-to-end stage so that it times its own webhooks alone. Emptying
// only the inbound and outbox tables once left the worker stage's queued
// media content behind, which the stage's senders then fetched (from an
// emulator that has none of it) while their replies were being timed.
var pipelineTables = append(slices.Clone(workerTables), "outbox", "outbox_rate", "api_log")

// runE2E has the emulator send text webhooks (with reply tokens it will
// honour) to ingest at a steady rate while workers with the echo bot and
// senders run, and times each event to its row and to its reply.
func (b *Bench) runE2E(ctx context.Context, ing *Proc, js jetstream.JetStream, sp e2eSpec) (E2EResult, error) {
	res := E2EResult{Rate: sp.rate, Workers: sp.workers, WorkerLoops: sp.workerLoops, Senders: sp.senders, PollMS: float64(rowPoll) / float64(time.Millisecond)}
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	// A webhook client that keeps its connections, as LINE's does, so the
	// load is webhooks and not TCP handshakes.
	client := &http.Client{Timeout: linefake.DefaultWebhookTimeout,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}}
	emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, Seed: 3, WebhookClient: client})
	if err != nil {
		return res, err
	}
	defer emu.Close()
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE "+strings.Join(pipelineTables, ", ")); err != nil {
		return res, err
	}
	// Run without the worker stage before it (-stages ingest,reply), the
	// stage would find the ingest stage's events still on the stream, and
	// its workers would store that backlog first, timed as reply latency
	// (a minute of it, at 1,000 webhooks/s).
	st, err := js.Stream(ctx, b.stack.Stream)
	if err != nil {
		return res, err
	}
	if err := st.Purge(ctx); err != nil {
		return res, fmt.Errorf("purging stream: %w", err)
	}
	// Latency is measured from a written-out database and disk:
	// otherwise the checkpointer would still be working off the claim
	// stage's million rows, and the kernel writing back the hundreds of
	// megabytes the ingest stage left in NATS's store, while every fsync
	// on the reply's path (NATS, the worker's commit, the claim's commit)
	// is timed.
	if err := b.checkpoint(ctx); err != nil {
		return res, err
	}
	syscall.Sync()
	var procs []*Proc
	for i := 0; i < sp.workers; i++ {
		env := []string{"ECHO_BOT=true"}
		if sp.workerLoops > 0 {
			env = append(env, fmt.Sprintf("WORKER_CONCURRENCY=%d", sp.workerLoops))
		}
		w, err := b.stack.Worker(fmt.Sprintf("worker-%s-%d", sp.name, i+1), env...)
		if err != nil {
			return res, err
		}
		procs = append(procs, w)
	}
	for i := 0; i < sp.senders; i++ {
		s, err := b.stack.Sender(fmt.Sprintf("sender-%s-%d", sp.name, i+1))
		if err != nil {
			return res, err
		}
		s.Env = append(s.Env, "LINE_API_BASE_URL="+emu.URL)
		procs = append(procs, s)
	}
	for _, p := range procs {
		if err := b.start(p); err != nil {
			return res, err
		}
		defer func(p *Proc) { _ = p.Stop(10 * time.Second) }(p)
	}

	pctx, stopPoll := context.WithCancel(ctx)
	seen := make(chan map[string]time.Time, 1)
	go func() { seen <- b.pollRows(pctx) }()
	// One steady load: the warm-up's webhooks, then the timed ones.
	warm := int(sp.rate * sp.warmup.Seconds())
	n := int(sp.rate * sp.duration.Seconds())
	span := b.startSpan()
	before, beforeErr := ingestCounts(ctx, ing.AdminAddr)
	sent, byToken, achieved := b.sendSteady(ctx, emu, "http://"+ing.Addr+"/webhook/"+b.stack.ChannelID, warm, n, sp.rate, &res.Failures)
	after, afterErr := ingestCounts(ctx, ing.AdminAddr)
	res.Failures.since(before, after, errors.Join(beforeErr, afterErr))
	failed := res.Failures.Count
	res.Webhooks, res.Failed, res.AchievedRate = n, failed, achieved
	res.WarmupSeconds, res.WarmupWebhooks = sp.warmup.Seconds(), warm

	deadline := time.Now().Add(b.cfg.DrainTimeout)
	for len(replies(emu)) < warm+n-failed && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	res.CPU = b.share(span, float64(warm+n))
	stopPoll()
	rows := <-seen
	var toRow, toReply, warmToReply []time.Duration
	for id, at := range rows {
		if w, ok := sent[id]; ok && !w.warmup {
			toRow = append(toRow, at.Sub(w.at))
		}
	}
	for _, d := range replies(emu) {
		if w, ok := sent[byToken[d.ReplyToken]]; ok {
			if w.warmup {
				warmToReply = append(warmToReply, d.At.Sub(w.at))
			} else {
				toReply = append(toReply, d.At.Sub(w.at))
			}
		}
	}
	// Every webhook must get its reply, the warm-up's too.
	res.Missing = warm + n - len(toReply) - len(warmToReply)
	res.ToRow, res.ToReply = loadgen.Summarize(toRow), loadgen.Summarize(toReply)
	res.WarmupToReply = loadgen.Summarize(warmToReply)
	res.Path = b.replyPath(ctx, sp.name, timedFrom(sent))
	b.logf("e2e %s at %.0f/s (%.0f/s achieved), %d workers, %d senders: row p50 %s p99 %s; reply p50 %s p99 %s (warm-up's first %s: %s / %s); %d replies missing, %d webhooks failed; CPU per webhook %s, host %s",
		sp.name, res.Rate, achieved, sp.workers, sp.senders, res.ToRow.P50, res.ToRow.P99, res.ToReply.P50, res.ToReply.P99,
		sp.warmup, res.WarmupToReply.P50, res.WarmupToReply.P99, res.Missing, failed, res.CPU, res.CPU.busyText())
	if failed > 0 {
		b.logf("e2e %s: %s", sp.name, &res.Failures)
	}
	return res, nil
}

// sentWebhook is when a webhook was sent, and whether it was one of the
// warm-up's.
type sentWebhook struct {
	at     time.Time
	warmup bool
}

// timedFrom is when the first timed (not warm-up) webhook was sent.
func timedFrom(sent map[string]sentWebhook) time.Time {
	var first time.Time
	for _, w := range sent {
		if !w.warmup && (first.IsZero() || w.at.Before(first)) {
			first = w.at
		}
	}
	return first
}

// sendSteady has the emulator send warm+n one-event text webhooks to url
// at rate, each in its own goroutine so a slow answer does not delay the
// next; the first warm are the warm-up's. Webhook i is due at start +
// i/rate; one that falls behind (the machine was busy) goes at once, so
// the rate holds on average instead of silently dropping, as a ticker
// would. It returns when each webhook was sent (by event id), the event id
// of each reply token and the rate achieved, and records in failed each
// webhook that did not get 200.
func (b *Bench) sendSteady(ctx context.Context, emu *Emulator, url string, warm, n int, rate float64, failed *WebhookFailures) (map[string]sentWebhook, map[string]string, float64) {
	var mu sync.Mutex
	sent := make(map[string]sentWebhook, warm+n)
	byToken := make(map[string]string, warm+n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < warm+n && ctx.Err() == nil; i++ {
		due := time.Duration(float64(i) / rate * float64(time.Second))
		if d := time.Until(start.Add(due)); d > 0 {
			time.Sleep(d)
		}
		ev := emu.TextEvent(b.stack.ChannelID, fmt.Sprintf("U%032x", i%50+1), fmt.Sprintf("e2e %d", i))
		mu.Lock()
		sent[ev.WebhookEventID] = sentWebhook{at: time.Now(), warmup: i < warm}
		byToken[ev.ReplyToken] = ev.WebhookEventID
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := emu.SendWebhook(ctx, url, b.stack.ChannelID, ev)
			if err != nil || code != 200 {
				mu.Lock()
				failed.add(due, code, err)
				mu.Unlock()
			}
		}()
	}
	achieved := float64(warm+n) / max(time.Since(start).Seconds(), 1e-9)
	wg.Wait()
	return sent, byToken, achieved
}

func replies(emu *Emulator) []linefake.Delivery {
	var out []linefake.Delivery
	for _, d := range emu.Accepted() {
		if d.Endpoint == linefake.EndpointReply {
			out = append(out, d)
		}
	}
	return out
}

// pollRows notes when each events row first becomes visible, until ctx
// ends. It reads through the primary key on a connection of its own: the
// table was truncated and never analyzed, so Postgres' estimate for
// "id > $1" is a third of the table and it would scan the whole table
// 200 times a second, loading the database the stage measures.
//
// Identity values commit out of order across concurrent transactions, so
// an id below the highest seen may still appear: each poll reads the rows
// above the highest id and the gaps below it, ids skipped for at most
// rowGapWait (a conflicting insert burns ids that never appear). Polls
// start above the ids the identity sequence has handed out: a stage
// truncates the table, which keeps the sequence, and 30,000 ids below
// the first row would otherwise all be gaps. It used
// to re-read the last 500 ids every time: at 1,000 events/s that was
// 100,000 rows a second that Postgres and the bench spent CPU on while
// the stage timed both.
func (b *Bench) pollRows(ctx context.Context) map[string]time.Time {
	seen := map[string]time.Time{}
	conn, err := b.schema.Pool.Acquire(ctx)
	if err != nil {
		return seen
	}
	defer conn.Release()
	// With sequential scans priced out, any statement without an index
	// path (the sequence read below) costs enough for Postgres to compile
	// it with JIT: 0.5-0.8 s of a core as the stage's load began.
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off; SET jit = off"); err != nil {
		return seen
	}
	defer func() { _, _ = conn.Exec(context.Background(), "RESET enable_seqscan; RESET jit") }()
	// Ids already handed out (a truncated table keeps its identity
	// sequence) are no gaps: polls start above them.
	var w idWatch
	var seq string
	if err := conn.QueryRow(ctx, "SELECT pg_get_serial_sequence('events', 'id')").Scan(&seq); err == nil {
		_ = conn.QueryRow(ctx, "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM "+seq).Scan(&w.last)
	}
	for ctx.Err() == nil {
		rows, err := conn.Query(ctx, "SELECT id, webhook_event_id FROM events WHERE id > $1 OR id = ANY($2)", w.last, w.pending())
		if err == nil {
			now := time.Now()
			top := w.last
			for rows.Next() {
				var id int64
				var wid string
				if rows.Scan(&id, &wid) != nil {
					continue
				}
				if _, ok := seen[wid]; !ok {
					seen[wid] = now
				}
				top = w.saw(id, top, now)
			}
			rows.Close()
			w.polled(top, rows.Err() == nil, now)
		}
		time.Sleep(rowPoll)
	}
	return seen
}

// idWatch follows an identity column: the highest id seen and the ids
// below it not seen yet (gaps), each kept for at most rowGapWait.
type idWatch struct {
	last int64
	gaps map[int64]time.Time
}

// pending is the gaps to read again.
func (w *idWatch) pending() []int64 {
	ids := make([]int64, 0, len(w.gaps))
	for id := range w.gaps {
		ids = append(ids, id)
	}
	return ids
}

// saw notes id, read in a poll whose highest id so far is top, and
// returns the new highest; ids may come in any order.
func (w *idWatch) saw(id, top int64, now time.Time) int64 {
	if w.gaps == nil {
		w.gaps = map[int64]time.Time{}
	}
	delete(w.gaps, id)
	if id <= top {
		return top
	}
	if id-top <= maxGapSpan {
		for g := top + 1; g < id; g++ {
			w.gaps[g] = now
		}
	}
	return id
}

// maxGapSpan bounds the ids one jump may leave to read again: more than
// any batch of concurrent transactions takes at once.
const maxGapSpan = 10000

// polled ends a poll: its highest id stands if it was read to the end,
// and gaps older than rowGapWait are given up.
func (w *idWatch) polled(top int64, complete bool, now time.Time) {
	if complete {
		w.last = top
	}
	for id, since := range w.gaps {
		if now.Sub(since) > rowGapWait {
			delete(w.gaps, id)
		}
	}
}

// rowGapWait is how long pollRows waits for an id below the highest seen.
const rowGapWait = 30 * time.Second

// replyPath logs where a reply's time went once its row existed, from
// the outbox's own columns (database clock): created_at is the worker's
// transaction start, first_attempt_at the claim's, send_at the rate slot
// and finished_at the completion's. Rows created before from (the
// warm-up's) are left out. It returns the same quantiles, zero when they
// could not be read.
func (b *Bench) replyPath(ctx context.Context, name string, from time.Time) ReplyPath {
	var q [6]float64
	var moved, rows int64
	err := b.schema.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE send_at > first_attempt_at), count(*),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_attempt_at - created_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM first_attempt_at - created_at)),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM send_at - first_attempt_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM send_at - first_attempt_at)),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - send_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - send_at))
		FROM outbox WHERE endpoint = 'reply' AND status = 'delivered' AND created_at >= $1`, from).Scan(&moved, &rows, &q[0], &q[1], &q[2], &q[3], &q[4], &q[5])
	if err != nil {
		b.logf("e2e %s: reply path not read: %v", name, err)
		return ReplyPath{}
	}
	ms := func(f float64) string { return fmt.Sprintf("%.1f ms", f*1000) }
	b.logf("e2e %s reply path p50/p99: row → claimed %s/%s, claimed → slot %s/%s (%d of %d moved by a shift or a fresh slot), slot → completion %s/%s",
		name, ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), moved, rows, ms(q[4]), ms(q[5]))
	b.logCommitPath(ctx, name, from)
	return ReplyPath{ClaimedP50: q[0] * 1000, ClaimedP99: q[1] * 1000, SlotP50: q[2] * 1000, SlotP99: q[3] * 1000,
		CompletionP50: q[4] * 1000, CompletionP99: q[5] * 1000}
}

// logCommitPath splits row → claimed further where the server keeps
// commit timestamps (track_commit_timestamp = on; off by default, so
// this line is for a run set up to study the path): ingest's receipt →
// the worker's transaction start, that start → its commit (the events row
// shares the outbox row's transaction and keeps its xmin), and commit →
// the claim.
func (b *Bench) logCommitPath(ctx context.Context, name string, from time.Time) {
	var on string
	if b.schema.Pool.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp')").Scan(&on) != nil || on != "on" {
		return
	}
	var q [6]float64
	err := b.schema.Pool.QueryRow(ctx, `WITH p AS (
			SELECT o.created_at - e.received_at AS queued, pg_xact_commit_timestamp(e.xmin) - o.created_at AS tx,
				o.first_attempt_at - pg_xact_commit_timestamp(e.xmin) AS woken
			FROM outbox o JOIN events e ON e.channel_id = o.channel_id AND e.message_id = o.source_message_id
				AND e.type = 'message'
			WHERE o.endpoint = 'reply' AND o.status = 'delivered' AND o.created_at >= $1)
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM queued)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM queued)),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM tx)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM tx)),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM woken)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM woken))
		FROM p`, from).Scan(&q[0], &q[1], &q[2], &q[3], &q[4], &q[5])
	if err != nil {
		b.logf("e2e %s: commit path not read: %v", name, err)
		return
	}
	ms := func(f float64) string { return fmt.Sprintf("%.1f ms", f*1000) }
	b.logf("e2e %s commit path p50/p99: ingest → worker tx %s/%s, tx → commit %s/%s, commit → claimed %s/%s",
		name, ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ms(q[4]), ms(q[5]))
}
