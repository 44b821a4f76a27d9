package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/linepipe/linepipe/pkg/loadgen"
)

// IngestResult compares ingest with the no-op HTTP ceiling driven by the
// same generator settings in the same run.
type IngestResult struct {
	// CeilingReqPerSec and PeakReqPerSec are each server's best over
	// the closed loops in Peaks, in the round whose ratio is the median.
	CeilingReqPerSec float64                `json:"ceilingReqPerSec"`
	PeakReqPerSec    float64                `json:"peakReqPerSec"`
	Ratio            float64                `json:"ratio"`
	Peaks            []IngestPeak           `json:"peaks"`
	PeakNon2xx       int64                  `json:"peakNon2xx"`
	HalfRate         float64                `json:"halfRate"`
	HalfLatency      loadgen.LatencySummary `json:"halfLatency"`
	HalfNon2xx       int64                  `json:"halfNon2xx"`
	HalfDropped      int64                  `json:"halfDropped"`
	// HalfCPU is the CPU of the run at half the peak, per webhook.
	HalfCPU CPUShare `json:"halfCpu"`
	// HalfTail is where that run's slowest webhooks spent their time, by
	// ingest's own /metrics; nil when they could not be read.
	HalfTail *IngestTail `json:"halfTail,omitempty"`
	// Rounds are every round, the one above among them.
	Rounds []IngestResult `json:"rounds,omitempty"`
}

// IngestPeak is one closed loop's rate on each server.
type IngestPeak struct {
	Concurrency      int     `json:"concurrency"`
	CeilingReqPerSec float64 `json:"ceilingReqPerSec"`
	PeakReqPerSec    float64 `json:"peakReqPerSec"`
	// CeilingCPU and PeakCPU are where each server's loop spent its
	// CPU, per request, the load generator (in "bench") included.
	CeilingCPU CPUShare `json:"ceilingCpu"`
	PeakCPU    CPUShare `json:"peakCpu"`
}

// peakConcurrencies are the closed loops a peak is taken over: the
// configured one and four times it. Ingest answers only once NATS has
// stored the webhook's bundle, so at a given number of connections it is
// bound by that round trip, while the no-op server is bound by the CPU: a
// single closed loop measures ingest's latency as much as its peak. LINE
// does not say how many webhooks it has in flight to one endpoint.
func (b *Bench) peakConcurrencies() []int {
	return []int{b.cfg.Concurrency, 4 * b.cfg.Concurrency}
}

func (b *Bench) loadConfig(base string) loadgen.Config {
	return loadgen.Config{
		BaseURL:       base,
		Channels:      []loadgen.Channel{{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret}},
		DiscardRecord: true,
		Seed:          b.cfg.Seed,
	}
}

// startNoop runs the no-op reference server (cmd/loadgen -noop-server) as
// its own process, like ingest: measured in the bench process it would
// share the load generator's runtime and skip the scheduling between
// processes that ingest pays, and the ratio would understate ingest.
func (b *Bench) startNoop() (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: "noop", Path: filepath.Join(b.stack.BinDir, "loadgen"), Addr: addr,
		LogPath: filepath.Join(b.stack.Dir, "noop.log"),
		Args:    []string{"-noop-server", "-addr", addr},
		// The secret goes by environment, not argv, which ps shows.
		Env: []string{"LOADGEN_CHANNELS=" + b.stack.ChannelID + ":" + b.stack.ChannelSecret}}
	if err := p.Start(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	if err := WaitHTTP(context.Background(), "http://"+addr+"/healthz", 30*time.Second, p.Done()); err != nil {
		_ = p.Stop(time.Second)
		return nil, fmt.Errorf("%w (log: %s)", err, p.LogPath)
	}
	return p, nil
}

// runIngest measures the no-op ceiling and ingest with the same closed
// loops, alternating them in ingestRounds rounds (each server's best loop
// being its peak in a round), then ingest at half its peak, open loop.
func (b *Bench) runIngest(ctx context.Context, ing *Proc) (IngestResult, error) {
	var res IngestResult
	noop, err := b.startNoop()
	if err != nil {
		return res, fmt.Errorf("starting no-op server: %w", err)
	}
	noopURL := "http://" + noop.Addr
	stopped := false
	defer func() {
		if !stopped {
			_ = noop.Stop(5 * time.Second)
		}
	}()

	peak := func(base string, conc int) (*loadgen.Report, CPUShare, error) {
		cfg := b.loadConfig(base)
		cfg.Concurrency = conc
		cfg.Duration = b.cfg.PeakDuration / 2
		span := b.startSpan()
		rep, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return nil, CPUShare{}, err
		}
		return rep, b.share(span, float64(rep.Requests)), nil
	}
	// A short warm-up of each server so neither pays for connection set-up
	// and first-use allocations inside the measured window.
	for _, base := range []string{noopURL, "http://" + ing.Addr} {
		cfg := b.loadConfig(base)
		cfg.Concurrency, cfg.Duration = b.cfg.Concurrency, time.Second
		if _, err := loadgen.Run(ctx, cfg); err != nil {
			return res, err
		}
	}
	// Rounds alternate the two servers at each closed loop, so that a
	// change in the shared host's speed moves both sides of a round.
	var rounds []IngestResult
	for round := range ingestRounds {
		var r IngestResult
		for _, conc := range b.peakConcurrencies() {
			ceil, ceilCPU, err := peak(noopURL, conc)
			if err != nil {
				return res, err
			}
			got, gotCPU, err := peak("http://"+ing.Addr, conc)
			if err != nil {
				return res, err
			}
			b.logf("ingest round %d, %d connections: %.0f req/s (%v; CPU per webhook %s, host %s), no-op %.0f req/s (%s, host %s)",
				round+1, conc, got.RequestsPerSec, got.Status, gotCPU, gotCPU.busyText(), ceil.RequestsPerSec, ceilCPU, ceilCPU.busyText())
			r.Peaks = append(r.Peaks, IngestPeak{Concurrency: conc, CeilingReqPerSec: ceil.RequestsPerSec,
				PeakReqPerSec: got.RequestsPerSec, CeilingCPU: ceilCPU, PeakCPU: gotCPU})
			r.CeilingReqPerSec = max(r.CeilingReqPerSec, ceil.RequestsPerSec)
			r.PeakReqPerSec = max(r.PeakReqPerSec, got.RequestsPerSec)
			r.PeakNon2xx += non2xx(got.Status)
		}
		r.Ratio = r.PeakReqPerSec / r.CeilingReqPerSec
		rounds = append(rounds, r)
	}
	res = medianIngest(rounds)
	_ = noop.Stop(5 * time.Second)
	stopped = true

	cfg := b.loadConfig("http://" + ing.Addr)
	cfg.Rate = res.PeakReqPerSec / 2
	cfg.Duration = b.cfg.HalfDuration
	before, beforeErr := scrapeHistograms(ctx, ing.AdminAddr, ingestTailSeries...)
	span := b.startSpan()
	half, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return res, err
	}
	res.HalfCPU = b.share(span, float64(half.Requests))
	if res.HalfTail, err = ingestTailSince(ctx, ing.AdminAddr, before, beforeErr); err != nil {
		b.logf("ingest at half its peak: its /metrics not read: %v", err)
	} else {
		b.logf("ingest at half its peak, by its /metrics: %s", res.HalfTail)
	}
	res.HalfRate, res.HalfLatency = cfg.Rate, half.FirstAttempt
	res.HalfNon2xx, res.HalfDropped = non2xx(half.Status), half.Dropped
	b.logf("ingest at %.0f req/s: p50 %s p99 %s", cfg.Rate, half.FirstAttempt.P50, half.FirstAttempt.P99)
	return res, nil
}

// ingestRounds is how many times the ingest stage measures both servers
// at each closed loop. One round's ratio moved between 0.42 and 0.64 from
// run to run with ingest unchanged, as the shared host's speed changed
// between the no-op server's runs and ingest's.
const ingestRounds = 3

// medianIngest is the round with the median ratio (rs holds an odd
// number), so the table's line is one round's pair of servers and agrees
// with its ratio, with every round's non-2xx answers.
func medianIngest(rs []IngestResult) IngestResult {
	out := medianByRatio(rs, func(r IngestResult) float64 { return r.Ratio })
	out.PeakNon2xx = 0
	for _, r := range rs {
		out.PeakNon2xx += r.PeakNon2xx
	}
	out.Rounds = rs
	return out
}

func non2xx(status map[string]int64) int64 {
	var n int64
	for code, c := range status {
		if len(code) != 3 || code[0] != '2' {
			n += c
		}
	}
	return n
}

// IngestTail is, for one run, the share of webhooks whose handling inside
// ingest (from the handler's start to its answer) and whose wait for
// JetStream's ack took longer than Edge: ingest's histogram edge at or
// below the p99 target. Set against the 1 % of a client's p99, it says
// whether a p99 over the target was spent in ingest, waiting for NATS,
// or outside the handler (the connection, the client, the host's queue
// for a core).
type IngestTail struct {
	Edge    time.Duration `json:"edge"`
	Handled float64       `json:"handled"`
	Acked   float64       `json:"acked"`
}

// ingestTailSeries are the histograms IngestTail reads.
var ingestTailSeries = []string{"linepipe_ingest_request_seconds", "linepipe_ingest_publish_seconds"}

// ingestTailSince reads ingest's /metrics at addr again and compares it
// with before, read when the run began (or failing with beforeErr).
func ingestTailSince(ctx context.Context, addr string, before map[string]histogram, beforeErr error) (*IngestTail, error) {
	if beforeErr != nil {
		return nil, beforeErr
	}
	after, err := scrapeHistograms(ctx, addr, ingestTailSeries...)
	if err != nil {
		return nil, err
	}
	return ingestTail(before, after, TargetIngestP99), nil
}

// ingestTail compares two readings of ingest's /metrics around a run.
func ingestTail(before, after map[string]histogram, target time.Duration) *IngestTail {
	req := after[ingestTailSeries[0]].since(before[ingestTailSeries[0]])
	pub := after[ingestTailSeries[1]].since(before[ingestTailSeries[1]])
	edge, handled := req.edgeBelow(target.Seconds())
	_, acked := pub.edgeBelow(edge)
	return &IngestTail{Edge: time.Duration(edge * float64(time.Second)), Handled: handled, Acked: acked}
}

func (t *IngestTail) String() string {
	return fmt.Sprintf("%.2f %% of webhooks took over %s to answer, %.2f %% waited that long for JetStream's ack",
		100*t.Handled, ms(t.Edge), 100*t.Acked)
}

// where says what the shares imply for a client's p99 above the edge:
// the 1 % of webhooks behind a p99 either could have spent it inside
// ingest, or did not.
func (t *IngestTail) where() string {
	switch {
	case t.Handled < 0.01:
		return "fewer than the 1 % behind a p99, so most of that wait was outside ingest's handler: reaching it, or in the client"
	case t.Acked >= t.Handled/2:
		return "as many as the 1 % behind a p99, most of them waiting for JetStream's ack"
	default:
		return "as many as the 1 % behind a p99, most of them not in the wait for JetStream's ack"
	}
}
