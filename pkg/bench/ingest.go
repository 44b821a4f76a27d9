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
	CeilingReqPerSec float64                `json:"ceilingReqPerSec"`
	PeakReqPerSec    float64                `json:"peakReqPerSec"`
	Ratio            float64                `json:"ratio"`
	PeakNon2xx       int64                  `json:"peakNon2xx"`
	HalfRate         float64                `json:"halfRate"`
	HalfLatency      loadgen.LatencySummary `json:"halfLatency"`
	HalfNon2xx       int64                  `json:"halfNon2xx"`
	HalfDropped      int64                  `json:"halfDropped"`
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

// runIngest measures the no-op ceiling, then ingest at the same
// concurrency, then ingest at half its measured peak, open loop.
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

	peak := func(base string) (*loadgen.Report, error) {
		cfg := b.loadConfig(base)
		cfg.Concurrency = b.cfg.Concurrency
		cfg.Duration = b.cfg.PeakDuration
		return loadgen.Run(ctx, cfg)
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
	ceil, err := peak(noopURL)
	if err != nil {
		return res, err
	}
	_ = noop.Stop(5 * time.Second)
	stopped = true
	b.logf("ingest ceiling (no-op): %.0f req/s", ceil.RequestsPerSec)

	got, err := peak("http://" + ing.Addr)
	if err != nil {
		return res, err
	}
	b.logf("ingest peak: %.0f req/s (%v)", got.RequestsPerSec, got.Status)
	res.CeilingReqPerSec, res.PeakReqPerSec = ceil.RequestsPerSec, got.RequestsPerSec
	res.Ratio = got.RequestsPerSec / ceil.RequestsPerSec
	res.PeakNon2xx = non2xx(got.Status)

	cfg := b.loadConfig("http://" + ing.Addr)
	cfg.Rate = got.RequestsPerSec / 2
	cfg.Duration = b.cfg.HalfDuration
	half, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return res, err
	}
	res.HalfRate, res.HalfLatency = cfg.Rate, half.FirstAttempt
	res.HalfNon2xx, res.HalfDropped = non2xx(half.Status), half.Dropped
	b.logf("ingest at %.0f req/s: p50 %s p99 %s", cfg.Rate, half.FirstAttempt.P50, half.FirstAttempt.P99)
	return res, nil
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
