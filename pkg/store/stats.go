package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OutboxDepth is how many outbox rows of one endpoint wait in one status,
// and how long the oldest of them has been due.
type OutboxDepth struct {
	Endpoint string
	Status   string // pending, retrying or in_flight
	Rows     int64
	// OldestDue is how long the longest-waiting row has been due (past
	// next_attempt_at; for in_flight, past its lease). Zero when none is.
	OldestDue time.Duration
}

// Batcher sends a pgx.Batch: a pool, a connection or a transaction.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Stats is what the worker exports as gauges about the tables an operator
// alerts on.
type Stats struct {
	Outbox []OutboxDepth
	// DeadLetters counts dead_letters rows, up to the cap given to
	// ReadStats; ReplaysRequested those waiting for a replay.
	DeadLetters      int64
	ReplaysRequested int64
}

// ReadStats reads Stats in one round trip, at a cost that does not grow
// with a backlog: at most capRows pending and retrying rows are read
// (through the partial index on waiting rows, outbox_lane_idx, or the
// table, whichever the planner finds cheaper), so up to capRows waiting
// rows both depth and oldest-due age are exact; a larger backlog reads as
// capRows rows in all, with the oldest-due age of the rows read (a lower
// bound). in_flight rows are bounded by the senders' concurrency and read
// through their own partial index.
func ReadStats(ctx context.Context, q Batcher, capRows int) (Stats, error) {
	var s Stats
	b := &pgx.Batch{}
	b.Queue(`SELECT endpoint, status, count(*), extract(epoch FROM statement_timestamp() - min(due))::float8
		FROM (SELECT endpoint, status, next_attempt_at AS due FROM outbox
		      WHERE status IN ('pending', 'retrying') LIMIT $1) d
		GROUP BY endpoint, status
		UNION ALL
		SELECT endpoint, 'in_flight', count(*), extract(epoch FROM statement_timestamp() - min(lease_until))::float8
		FROM outbox WHERE status = 'in_flight' GROUP BY endpoint`, capRows).Query(func(rows pgx.Rows) error {
		var d OutboxDepth
		var age float64
		_, err := pgx.ForEachRow(rows, []any{&d.Endpoint, &d.Status, &d.Rows, &age}, func() error {
			if age > 0 {
				d.OldestDue = time.Duration(age * float64(time.Second))
			} else {
				d.OldestDue = 0
			}
			s.Outbox = append(s.Outbox, d)
			return nil
		})
		return err
	})
	b.Queue(`SELECT (SELECT count(*) FROM (SELECT 1 FROM dead_letters LIMIT $1) d),
		(SELECT count(*) FROM dead_letters WHERE replay_requested_at IS NOT NULL)`, capRows).
		QueryRow(func(r pgx.Row) error { return r.Scan(&s.DeadLetters, &s.ReplaysRequested) })
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return s, fmt.Errorf("reading outbox and dead-letter stats: %w", err)
	}
	return s, nil
}
