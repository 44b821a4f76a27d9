package bench

import (
	"context"
	"fmt"
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

// runIngest measures the no-op ceiling, then ingest at the same
// concurrency, then ingest at half its measured peak, open loop.
func (b *Bench) runIngest(ctx context.Context, ing *Proc) (IngestResult, error) {
	var res IngestResult
	noop, err := loadgen.StartNoopServer("127.0.0.1:0", []loadgen.Channel{{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret}})
	if err != nil {
		return res, fmt.Errorf("starting no-op server: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = noop.Close(context.Background())
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
	for _, base := range []string{noop.URL, "http://" + ing.Addr} {
		cfg := b.loadConfig(base)
		cfg.Concurrency, cfg.Duration = b.cfg.Concurrency, time.Second
		if _, err := loadgen.Run(ctx, cfg); err != nil {
			return res, err
		}
	}
	ceil, err := peak(noop.URL)
	if err != nil {
		return res, err
	}
	_ = noop.Close(context.Background())
	closed = true
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
