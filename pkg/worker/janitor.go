package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// Defaults for the retention janitor.
const (
	DefaultRetentionInterval = time.Minute
	// DefaultRetentionBatch is the most rows one DELETE removes: each
	// statement is its own transaction holding its row locks for
	// milliseconds, so a million expired rows never stall the pipeline
	// (docs/PERFORMANCE.md, BenchmarkRetention).
	DefaultRetentionBatch = 5000
)

// retentionLockSalt is mixed with the schema name into the advisory lock
// that lets one replica at a time run a retention round.
const retentionLockSalt = "linepipe.retention:"

// RunJanitor enforces the retention table every interval until ctx ends.
// Every replica runs it; a session advisory lock, tried without waiting,
// lets one of them do a round while the others skip it.
func (w *Worker) RunJanitor(ctx context.Context, interval time.Duration, batch int) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := w.RetainOnce(ctx, batch); err != nil && ctx.Err() == nil {
			w.log.Warn("retention round failed; retrying next interval", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RetainOnce runs one retention round if no other replica is running one:
// for each table, DELETE statements of at most batch rows until none is
// left expired. It returns the rows deleted per table, nil when another
// replica holds the round.
func (w *Worker) RetainOnce(ctx context.Context, batch int) (map[string]int64, error) {
	if batch <= 0 {
		batch = DefaultRetentionBatch
	}
	conn, err := w.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring janitor connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1 || current_schema()))`,
		retentionLockSalt).Scan(&locked); err != nil {
		return nil, fmt.Errorf("trying the retention lock: %w", err)
	}
	if !locked {
		return nil, nil
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must
		// not stay with the pooled connection.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtext($1 || current_schema()))`, retentionLockSalt); err != nil {
			_ = conn.Conn().Close(uctx) // a closed session drops its locks
		}
	}()

	deleted := map[string]int64{}
	for _, table := range store.RetentionTables {
		for ctx.Err() == nil {
			n, err := store.DeleteExpired(ctx, conn, table, batch)
			deleted[table] += n
			w.metrics.ops.retentionDeleted.WithLabelValues(table).Add(float64(n))
			if err != nil {
				return deleted, err
			}
			if n < int64(batch) {
				break
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return deleted, err
	}
	w.metrics.ops.retentionLastRun.Set(float64(w.now().Unix()))
	var total int64
	for _, n := range deleted {
		total += n
	}
	if total > 0 {
		w.log.Info("retention round", zap.Any("deleted", deleted))
	}
	return deleted, nil
}
