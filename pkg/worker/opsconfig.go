package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
)

// OpsConfig is the worker's day-two loops: dead-letter replay, retention
// and the gauges operators alert on. Every replica runs all three.
type OpsConfig struct {
	// ReplayInterval is how often requested dead-letter replays are
	// looked for. Default 1s.
	ReplayInterval time.Duration
	// RetentionInterval is how often the retention table is enforced;
	// 0 turns the janitor off. Default 1m.
	RetentionInterval time.Duration
	// StatsInterval is how often the outbox, dead-letter and consumer
	// gauges are refreshed. Default 15s.
	StatsInterval time.Duration
}

// OpsFromEnv reads OpsConfig; see the README's configuration table.
func OpsFromEnv(env *config.Env) OpsConfig {
	return OpsConfig{
		ReplayInterval:    env.Duration("WORKER_REPLAY_INTERVAL", DefaultReplayInterval),
		RetentionInterval: env.Duration("RETENTION_INTERVAL", DefaultRetentionInterval),
		StatsInterval:     env.Duration("WORKER_STATS_INTERVAL", DefaultStatsInterval),
	}
}

// Validate reports unusable settings.
func (c OpsConfig) Validate() error {
	var errs []error
	if c.ReplayInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("WORKER_REPLAY_INTERVAL %s: at least 10ms", c.ReplayInterval))
	}
	if c.RetentionInterval != 0 && c.RetentionInterval < time.Second {
		errs = append(errs, fmt.Errorf("RETENTION_INTERVAL %s: 0 (off) or at least 1s", c.RetentionInterval))
	}
	if c.StatsInterval < time.Second {
		errs = append(errs, fmt.Errorf("WORKER_STATS_INTERVAL %s: at least 1s", c.StatsInterval))
	}
	return errors.Join(errs...)
}

// startOps runs the replay, retention and gauge loops until ctx ends.
func (w *Worker) startOps(ctx context.Context, wg *sync.WaitGroup, c OpsConfig) {
	wg.Add(3)
	go func() { defer wg.Done(); w.RunReplays(ctx, c.ReplayInterval) }()
	go func() { defer wg.Done(); w.RunJanitor(ctx, c.RetentionInterval, DefaultRetentionBatch) }()
	go func() { defer wg.Done(); w.RunStats(ctx, c.StatsInterval, DefaultStatsCap) }()
}
