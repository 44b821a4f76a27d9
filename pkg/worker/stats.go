package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// Defaults for the gauges the worker refreshes.
const (
	DefaultStatsInterval = 15 * time.Second
	// DefaultStatsCap bounds the rows one refresh reads from the outbox
	// and dead_letters, so a huge backlog costs no more than this.
	DefaultStatsCap = 100000
)

// RunStats refreshes the outbox, dead-letter and JetStream consumer gauges
// every interval until ctx ends. Every replica exports them; alert on
// their max across replicas.
func (w *Worker) RunStats(ctx context.Context, interval time.Duration, capRows int) {
	if interval <= 0 {
		interval = DefaultStatsInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.RefreshStats(ctx, capRows); err != nil && ctx.Err() == nil {
			w.log.Warn("refreshing gauges", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshStats reads the gauges once: one query round trip to Postgres
// and one consumer info request to JetStream.
func (w *Worker) RefreshStats(ctx context.Context, capRows int) error {
	if capRows <= 0 {
		capRows = DefaultStatsCap
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m := w.metrics.ops
	var errs []error
	if s, err := store.ReadStats(rctx, w.db, capRows); err != nil {
		errs = append(errs, err)
	} else {
		m.setOutbox(s.Outbox)
		m.deadLetters.Set(float64(s.DeadLetters))
		m.replaysRequested.Set(float64(s.ReplaysRequested))
	}
	cons, err := w.js.Consumer(rctx, w.stream.Stream, w.cfg.Consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
		// Not created yet: the consuming loops create both at start.
	case err != nil:
		errs = append(errs, fmt.Errorf("looking up consumer %s: %w", w.cfg.Consumer, err))
	default:
		if info, err := cons.Info(rctx); err != nil {
			errs = append(errs, fmt.Errorf("consumer %s info: %w", w.cfg.Consumer, err))
		} else {
			m.consumerPending.Set(float64(info.NumPending))
			m.consumerAckPending.Set(float64(info.NumAckPending))
			m.consumerRedelivered.Set(float64(info.NumRedelivered))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}
