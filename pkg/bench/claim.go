package bench

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// ClaimResult compares the sender's claim statements at a small and a
// large backlog of one channel's due pushes.
type ClaimResult struct {
	SmallRows  int     `json:"smallRows"`
	LargeRows  int     `json:"largeRows"`
	SmallMS    float64 `json:"smallMs"`    // median execution time, all claim statements
	LargeMS    float64 `json:"largeMs"`    // the same at LargeRows
	SmallPages int     `json:"smallPages"` // shared buffers hit plus read, all statements
	LargePages int     `json:"largePages"`
	Ratio      float64 `json:"ratio"` // LargeMS / SmallMS
}

// claimRepeats is how often each backlog's claim is explained; the
// median is kept, so one unlucky scheduling slice does not decide it.
const claimRepeats = 7

// explainClaim is the one place the benchmark reaches into the sender's
// claim: it returns the EXPLAIN (ANALYZE, BUFFERS) text of every
// statement a claim of a full batch runs (store.ExplainClaim: the lanes,
// then the rows of those lanes), as the sender would run it now.
func explainClaim(ctx context.Context, pool *pgxpool.Pool) ([][]string, error) {
	lanes, rows, err := store.ExplainClaim(ctx, pool, store.ClaimParams{Limit: sender.DefaultBatchSize,
		Owner: "bench-explain", Lease: sender.DefaultLease, Horizon: sender.DefaultRateHorizon})
	return [][]string{strings.Split(lanes, "\n"), strings.Split(rows, "\n")}, err
}

// runClaim queues SmallRows pushes on one channel and explains the claim,
// grows the backlog to LargeRows and explains it again.
func (b *Bench) runClaim(ctx context.Context) (ClaimResult, error) {
	res := ClaimResult{SmallRows: b.cfg.ClaimSmallRows, LargeRows: b.cfg.ClaimLargeRows}
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return res, err
	}
	if err := b.insertPushesFor(ctx, b.stack.ChannelID, res.SmallRows, "claim-small"); err != nil {
		return res, err
	}
	var err error
	if res.SmallMS, res.SmallPages, err = b.claimCost(ctx, res.SmallRows); err != nil {
		return res, err
	}
	start := time.Now()
	for done := res.SmallRows; done < res.LargeRows; {
		n := min(200000, res.LargeRows-done)
		if err := b.insertPushesFor(ctx, b.stack.ChannelID, n, fmt.Sprintf("claim-large-%d", done)); err != nil {
			return res, err
		}
		done += n
	}
	b.logf("claim: %d more rows queued in %.1fs", res.LargeRows-res.SmallRows, time.Since(start).Seconds())
	if res.LargeMS, res.LargePages, err = b.claimCost(ctx, res.LargeRows); err != nil {
		return res, err
	}
	res.Ratio = res.LargeMS / res.SmallMS
	b.logf("claim at %d rows: %.2f ms, %d pages; at %d rows: %.2f ms, %d pages; ratio %.2f",
		res.SmallRows, res.SmallMS, res.SmallPages, res.LargeRows, res.LargeMS, res.LargePages, res.Ratio)
	_, err = b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log")
	return res, err
}

var (
	execTimeRE = regexp.MustCompile(`^Execution Time: ([0-9.]+) ms`)
	buffersRE  = regexp.MustCompile(`^\s*Buffers: shared((?: \w+=\d+)+)`)
)

// claimCost analyzes the table (as autovacuum would after a bulk insert),
// writes out the dirty pages, explains the claim claimRepeats times and
// returns the median summed execution time and the top-level buffer
// count. The plans of the last repeat are logged. Without the checkpoint
// the large backlog's claim was timed while the checkpointer wrote out
// its million rows: the same plan over the same 1,025 pages took 1.68 ms
// against 0.67 at 1,000 rows, every node about twice as slow.
func (b *Bench) claimCost(ctx context.Context, rows int) (float64, int, error) {
	if _, err := b.schema.Pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		return 0, 0, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return 0, 0, err
	}
	var times []float64
	var pages int
	var last [][]string
	for i := 0; i < claimRepeats; i++ {
		plans, err := explainClaim(ctx, b.schema.Pool)
		if err != nil {
			return 0, 0, err
		}
		var ms float64
		pages = 0
		for _, plan := range plans {
			t, p := planCost(plan)
			ms += t
			pages += p
		}
		times = append(times, ms)
		last = plans
	}
	sort.Float64s(times)
	b.logf("claim plans at %d queued rows (EXPLAIN (ANALYZE, BUFFERS), statement by statement):", rows)
	for i, plan := range last {
		b.logf("  statement %d:", i+1)
		for _, l := range plan {
			b.logf("    %s", l)
		}
	}
	return times[len(times)/2], pages, nil
}

// planCost reads a plan's execution time and the shared buffers (hit,
// read, dirtied, written) of its top node, which include its children's.
func planCost(plan []string) (float64, int) {
	var ms float64
	pages, seenBuffers := 0, false
	for _, l := range plan {
		if m := execTimeRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			ms, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := buffersRE.FindStringSubmatch(l); m != nil && !seenBuffers {
			seenBuffers = true
			for _, kv := range strings.Fields(m[1]) {
				_, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(v)
				if strings.HasPrefix(kv, "hit=") || strings.HasPrefix(kv, "read=") {
					pages += n
				}
			}
		}
	}
	return ms, pages
}
