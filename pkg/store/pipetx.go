package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Acquirer lends a connection (a *pgxpool.Pool).
type Acquirer interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// batcher sends pipelined batches and single queries on one connection.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pipeTx is a transaction whose BEGIN travels with its first batch and
// whose COMMIT travels with its last. pgx.Tx spends a round trip on each;
// under load every round trip of a claim is time its rows and rate
// buckets stay locked and a reply waits, and on a busy host each one
// also waits for both processes to be scheduled.
type pipeTx struct {
	conn  *pgx.Conn
	begun bool
	// indexed: the transaction plans with sequential scans off (see
	// beginOutboxTx).
	indexed bool
}

// beginPipeTx lends a connection of db for a pipeTx. done rolls back a
// transaction that did not commit (a committed one leaves the connection
// idle, and rollback does nothing) and returns the connection.
func beginPipeTx(ctx context.Context, db Acquirer) (tx *pipeTx, done func(), err error) {
	pc, err := db.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx = &pipeTx{conn: pc.Conn()}
	return tx, func() {
		tx.rollback()
		pc.Release()
	}, nil
}

// beginOutboxTx is beginPipeTx for the sender's transactions on the
// outbox (claims, re-slots, completions), which plan with sequential
// scans and JIT off (outboxPlanSettings).
//
// Postgres plans a prepared statement generically after five runs and
// keeps that plan until the table is analyzed again. Planned while the
// outbox was small, a claim's or a completion's join on row ids hashes a
// sequential scan of the whole outbox; every row is written three times
// and finished rows stay for their retention, so without an ANALYZE
// (autovacuum off, or behind a burst) each claim and completion went on
// reading every row version: 2 ms per completion at 10,000 rows, 8 ms at
// 40,000, half the Postgres time of a reply load. Every statement these
// transactions run has an index path that is right at any size, so they
// forbid the sequential scan instead of waiting for statistics. Tables
// without such a path still get one: the setting only prices it out.
func beginOutboxTx(ctx context.Context, db Acquirer) (*pipeTx, func(), error) {
	tx, done, err := beginPipeTx(ctx, db)
	if err == nil {
		tx.indexed = true
	}
	return tx, done, err
}

// outboxPlanSettings is what beginOutboxTx's transactions plan with, one
// statement sent after their BEGIN. ExplainClaim explains a claim with it
// too.
//
// JIT is off: Postgres compiles a statement whose estimated cost passes
// jit_above_cost, and a claim's estimate grows with the backlog, since it
// cannot know each lane's quota (LIMIT l.q comes from the statement's
// arrays) and expects a tenth of the lane. Compiling takes tens of
// milliseconds; the claim reads a batch of rows.
//
// Plans are generic: each statement is planned once per connection and
// the plan kept. Postgres prices the claim's lane rows and bucket reads
// generically above their custom plans, so by default it planned them
// afresh on every claim, which cost about what executing them did. A
// generic plan cannot know the values, but with sequential scans off
// every statement here has one index path whatever they are. Two
// earlier hazards of a generic claim at 1,000,000 queued rows, JIT
// compiling on every claim and hashing the whole followers table, are
// ruled out by JIT off and by reading the follow state per row
// (candidateCols). Measured in alternating pairs of bench stages: the
// River stage's Postgres CPU per push fell by about a tenth, and the
// reply stage's p99 at 1,000 webhooks/s from 62-76 ms to 49-58 ms.
//
// A kept plan also keeps whatever the statistics said when it was made,
// and they can describe a table that is gone (a backlog of pending rows,
// analyzed, then drained). So every statement here that works on a batch
// of rows by id names them in "id = ANY($1)" as well as in its join: an
// index condition that holds the read to those rows whatever the plan.
const outboxPlanSettings = `select set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true), ` +
	`set_config('plan_cache_mode', 'force_generic_plan', true)`

// SendBatch sends b, preceded by BEGIN when it is the transaction's first.
// The caller reads b's results as usual: BEGIN's is consumed here.
func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.begun {
		return t.conn.SendBatch(ctx, b)
	}
	t.begun = true
	withBegin := &pgx.Batch{}
	withBegin.Queue("begin")
	if t.indexed {
		withBegin.Queue(outboxPlanSettings)
	}
	opening := len(withBegin.QueuedQueries)
	withBegin.QueuedQueries = append(withBegin.QueuedQueries, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, withBegin)
	for i := 0; i < opening; i++ {
		if _, err := br.Exec(); err != nil {
			return errBatch{BatchResults: br, err: err}
		}
	}
	return br
}

// Query runs one statement inside the transaction, which must have begun.
func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}

// rollback ends a transaction that did not commit. A connection it cannot
// clean goes back to the pool still in a transaction, and the pool then
// closes it rather than lend it again.
func (t *pipeTx) rollback() {
	if !t.begun || t.conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = t.conn.Exec(ctx, "rollback")
}

// errBatch reports BEGIN's failure for every result of the batch.
type errBatch struct {
	pgx.BatchResults
	err error
}

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return nil, e.err }
func (e errBatch) QueryRow() pgx.Row                { return errRow{e.err} }
func (e errBatch) Close() error {
	_ = e.BatchResults.Close()
	return e.err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// PipeTx is a transaction for callers outside this package whose BEGIN
// travels with its first batch and whose COMMIT travels with its last
// statements and the outbox rows it queues (see pipeTx): the worker
// stores a batch of events in two round trips instead of five.
type PipeTx struct{ t *pipeTx }

// BeginPipe lends a connection of db for a PipeTx. done rolls back a
// transaction that did not commit and returns the connection; call it
// whatever happened.
func BeginPipe(ctx context.Context, db Acquirer) (*PipeTx, func(), error) {
	t, done, err := beginPipeTx(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	return &PipeTx{t: t}, done, nil
}

// SendBatch sends b in the transaction, with BEGIN the first time.
func (p *PipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return p.t.SendBatch(ctx, b)
}

// CommitWith runs b's statements (nil or empty is fine), inserts ins
// into the outbox (none is fine) and commits, in one round trip. A
// statement of b that fails is reported as label's; Postgres then runs
// nothing after it in the round trip, so nothing commits.
func (p *PipeTx) CommitWith(ctx context.Context, b *pgx.Batch, label string, ins []OutboxInsert) error {
	w := &writes{}
	if b != nil {
		for _, qq := range b.QueuedQueries {
			w.addQueued(label, qq)
		}
	}
	if len(ins) > 0 {
		args, err := outboxRowsArgs(ins)
		if err != nil {
			return err
		}
		w.add("enqueueing outbox rows", enqueueOutboxRowsSQL, args...)
	}
	return p.t.commit(ctx, w)
}
