package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/linepipe/linepipe/pkg/loadgen"
)

// DurabilityResult is ingest's throughput and latency against a NATS
// server that fsyncs every write before acknowledging it (sync_interval:
// always, the deployed setting) and against one using NATS's default
// (fsync on a timer, every 2 minutes), in the same run on the same
// machine. The difference is the price of a 200 that survives a power cut.
type DurabilityResult struct {
	AlwaysReqPerSec  float64                `json:"alwaysReqPerSec"`
	DefaultReqPerSec float64                `json:"defaultReqPerSec"`
	Ratio            float64                `json:"ratio"` // always / default
	AlwaysLatency    loadgen.LatencySummary `json:"alwaysLatency"`
	DefaultLatency   loadgen.LatencySummary `json:"defaultLatency"`
	AlwaysNon2xx     int64                  `json:"alwaysNon2xx"`
	DefaultNon2xx    int64                  `json:"defaultNon2xx"`
}

// runDurability starts two private NATS servers, identical but for the
// sync policy, each with its own ingest, and drives each at peak (closed
// loop) for PeakDuration, alternating twice so drift in the machine's load
// falls on both.
func (b *Bench) runDurability(ctx context.Context) (*DurabilityResult, error) {
	type side struct {
		name   string
		url    string
		reqs   float64
		lat    loadgen.LatencySummary
		non2xx int64
	}
	var sides []*side
	for _, defaultSync := range []bool{false, true} {
		name := "nats-sync-always"
		if defaultSync {
			name = "nats-sync-default"
		}
		node, err := NewNATSNode(b.natsBin, b.stack.Dir, name)
		if err != nil {
			return nil, err
		}
		opts := b.natsOpts
		opts.DefaultSync = defaultSync
		if err := node.UseConfig(b.stack.Dir, opts); err != nil {
			return nil, err
		}
		if err := node.Start(); err != nil {
			return nil, err
		}
		defer func() { _ = node.Stop(5 * time.Second) }()
		b.mu.Lock()
		b.procs = append(b.procs, node.Proc)
		b.mu.Unlock()
		if err := node.WaitReady(ctx, 20*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w (log: %s)", name, err, node.LogPath)
		}
		st := *b.stack
		st.NATSURL = node.URL()
		ing, err := st.Ingest("ingest-" + name)
		if err != nil {
			return nil, err
		}
		if err := b.start(ing); err != nil {
			return nil, err
		}
		defer func() { _ = ing.Stop(10 * time.Second) }()
		sides = append(sides, &side{name: name, url: "http://" + ing.Addr})
	}
	for round := 0; round < 2; round++ {
		for _, sd := range sides {
			cfg := b.loadConfig(sd.url)
			cfg.Concurrency = b.cfg.Concurrency
			cfg.Duration = b.cfg.PeakDuration / 2
			rep, err := loadgen.Run(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sd.name, err)
			}
			sd.reqs += rep.RequestsPerSec / 2
			sd.non2xx += non2xx(rep.Status)
			if round == 1 {
				sd.lat = rep.FirstAttempt
			}
		}
	}
	always, def := sides[0], sides[1]
	res := &DurabilityResult{AlwaysReqPerSec: always.reqs, DefaultReqPerSec: def.reqs,
		AlwaysLatency: always.lat, DefaultLatency: def.lat, AlwaysNon2xx: always.non2xx, DefaultNon2xx: def.non2xx}
	if def.reqs > 0 {
		res.Ratio = always.reqs / def.reqs
	}
	b.logf("ingest with sync_interval always: %.0f req/s (p99 %s); default: %.0f req/s (p99 %s)",
		always.reqs, always.lat.P99, def.reqs, def.lat.P99)
	return res, nil
}

// durabilityRows are the table's lines for r (none when the stage did not run).
func durabilityRows(r *DurabilityResult, row func(...string)) {
	if r == nil {
		return
	}
	row("ingest webhooks/s, NATS sync_interval always (deployed)", fmt.Sprintf("%.0f", r.AlwaysReqPerSec),
		fmt.Sprintf("%.0f NATS default sync", r.DefaultReqPerSec), fmt.Sprintf("%.2f", r.Ratio), "reported", "")
	row("  p50 / p99 at peak: always vs default", ms(r.AlwaysLatency.P50)+" / "+ms(r.AlwaysLatency.P99),
		ms(r.DefaultLatency.P50)+" / "+ms(r.DefaultLatency.P99), "", "reported", "")
}
