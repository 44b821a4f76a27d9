package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/loadgen"
	"github.com/linepipe/linepipe/pkg/store"
)

// FairnessResult is how long fresh rows wait while another channel's
// backlog drains: channel B's pushes, and replies on the busy channel A.
type FairnessResult struct {
	Backlog  int     `json:"backlogRows"`
	Senders  int     `json:"senders"`
	Rate     float64 `json:"trickleRatePerKind"`
	Seconds  float64 `json:"trickleSeconds"`
	PushesB  int     `json:"pushesB"`
	RepliesA int     `json:"repliesA"`
	// BacklogLeft is how many of A's queued pushes were still open when
	// the trickle ended: above zero means every trickled row was
	// measured against a draining backlog.
	BacklogLeft int                    `json:"backlogLeftAtEnd"`
	PushB       loadgen.LatencySummary `json:"pushB"`
	ReplyA      loadgen.LatencySummary `json:"replyA"`
	All         loadgen.LatencySummary `json:"all"`
	Missing     int                    `json:"missing"`
}

// OK is the target: p99 from insert to accepted under TargetFairP99 for
// every trickled row, none missing, measured while the backlog drained.
func (f FairnessResult) OK() bool {
	return f.Missing == 0 && f.All.Count > 0 && f.All.P99 < TargetFairP99 && f.BacklogLeft > 0
}

// fairChannelB is the second channel of the fairness stage.
const fairChannelB = "2000000002"

// runFairness queues a backlog of pushes on channel A, starts the
// senders, and once A is draining inserts channel B pushes and channel A
// replies (with reply tokens the emulator issued) one by one at a steady
// rate, timing each from just before its INSERT to its acceptance.
func (b *Bench) runFairness(ctx context.Context) (FairnessResult, error) {
	res := FairnessResult{Backlog: b.cfg.FairBacklog, Senders: 2, Rate: b.cfg.FairRate, Seconds: b.cfg.FairDuration.Seconds()}
	chA := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	chB := linefake.Channel{ID: fairChannelB, Secret: uuid.NewString(), AccessTokens: []string{"bench-b-" + uuid.NewString()}}
	emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{chA, chB}, Seed: 4})
	if err != nil {
		return res, err
	}
	defer emu.Close()
	pool := b.schema.Pool
	if err := store.UpsertChannel(ctx, pool, store.Channel{ID: chB.ID, Secret: chB.Secret, AccessToken: chB.AccessTokens[0]}); err != nil {
		return res, err
	}
	if _, err := pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return res, err
	}
	if err := b.insertPushesFor(ctx, chA.ID, res.Backlog, "fair-backlog"); err != nil {
		return res, err
	}
	for i := 0; i < res.Senders; i++ {
		p, err := b.stack.Sender(fmt.Sprintf("sender-fair-%d", i+1), "SENDER_RECIPIENT_CAP=off")
		if err != nil {
			return res, err
		}
		p.Env = append(p.Env, "LINE_API_BASE_URL="+emu.URL)
		if err := b.start(p); err != nil {
			return res, err
		}
		defer func() { _ = p.Stop(10 * time.Second) }()
	}
	// Measure only once the backlog is being sent.
	for deadline := time.Now().Add(30 * time.Second); len(emu.Accepted()) == 0; {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("no push of the backlog accepted within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	insertedAt, err := b.trickle(ctx, emu, chA.ID, chB.ID, &res)
	if err != nil {
		return res, err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE channel_id = $1 AND endpoint = 'push'
		AND status IN ('pending', 'retrying', 'in_flight')`, chA.ID).Scan(&res.BacklogLeft); err != nil {
		return res, err
	}
	var pushB, replyA, all []time.Duration
	deadline := time.Now().Add(b.cfg.DrainTimeout)
	for {
		pushB, replyA = pushB[:0], replyA[:0]
		for _, d := range emu.Accepted() {
			if t0, ok := insertedAt[trickleKey(d)]; ok {
				if d.Endpoint == linefake.EndpointReply {
					replyA = append(replyA, d.At.Sub(t0))
				} else {
					pushB = append(pushB, d.At.Sub(t0))
				}
			}
		}
		if len(pushB)+len(replyA) >= len(insertedAt) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	all = append(append(all, pushB...), replyA...)
	res.Missing = len(insertedAt) - len(all)
	res.PushB, res.ReplyA, res.All = loadgen.Summarize(pushB), loadgen.Summarize(replyA), loadgen.Summarize(all)
	b.logf("fairness: %d backlog pushes on A, %d still open when the trickle ended; B pushes p50 %s p99 %s; A replies p50 %s p99 %s; %d missing",
		res.Backlog, res.BacklogLeft, res.PushB.P50, res.PushB.P99, res.ReplyA.P50, res.ReplyA.P99, res.Missing)
	_, err = pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log")
	return res, err
}

// trickleKey names a trickled row in the emulator's ledger: a reply by
// its token, a push by its recipient.
func trickleKey(d linefake.Delivery) string {
	if d.Endpoint == linefake.EndpointReply {
		return "reply:" + d.ReplyToken
	}
	if len(d.Recipients) == 1 {
		return d.Channel + ":" + d.Recipients[0]
	}
	return ""
}

// trickle inserts, for FairDuration, FairRate pushes on channel b and as
// many replies on channel a per second, each its own INSERT committed
// alone, as the worker or an application would. A reply's not_after is
// a minute after its token was issued, as the worker sets it.
func (b *Bench) trickle(ctx context.Context, emu *Emulator, a, bch string, res *FairnessResult) (map[string]time.Time, error) {
	insertedAt := map[string]time.Time{}
	n := int(b.cfg.FairRate * b.cfg.FairDuration.Seconds())
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(float64(i) / b.cfg.FairRate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		user := fmt.Sprintf("U%032x", 0xfa1200000+i)
		push, _ := json.Marshal(map[string]any{"to": user,
			"messages": []map[string]string{{"type": "text", "text": fmt.Sprintf("fair push %d", i)}}})
		t0 := time.Now()
		if _, err := store.EnqueueOutbox(ctx, b.schema.Pool, store.OutboxInsert{ChannelID: bch, Endpoint: "push", Body: push}); err != nil {
			return nil, fmt.Errorf("inserting push: %w", err)
		}
		insertedAt[bch+":"+user] = t0
		res.PushesB++

		tok := emu.IssueReplyToken(a)
		reply, _ := json.Marshal(map[string]any{"replyToken": tok,
			"messages": []map[string]string{{"type": "text", "text": fmt.Sprintf("fair reply %d", i)}}})
		notAfter := time.Now().Add(linefake.DefaultReplyTokenTTL)
		t0 = time.Now()
		if _, err := store.EnqueueOutbox(ctx, b.schema.Pool, store.OutboxInsert{ChannelID: a, Endpoint: "reply", Body: reply, NotAfter: &notAfter}); err != nil {
			return nil, fmt.Errorf("inserting reply: %w", err)
		}
		insertedAt["reply:"+tok] = t0
		res.RepliesA++
	}
	return insertedAt, nil
}
