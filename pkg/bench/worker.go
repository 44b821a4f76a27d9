package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/worker"
)

// WorkerResult compares the worker draining a full stream with a raw
// batched COPY of the very rows it wrote, into copies of its tables: of
// workerRounds rounds, each a drain and then its references, the one
// whose ratio is the median.
type WorkerResult struct {
	Events              int64   `json:"events"`
	StreamMessages      uint64  `json:"streamMessages"`
	Seconds             float64 `json:"seconds"`
	EventsPerSec        float64 `json:"eventsPerSec"`
	CeilingSeconds      float64 `json:"ceilingSeconds"`
	CeilingEventsPerSec float64 `json:"ceilingEventsPerSec"`
	// Ratio is the drain's rate over the COPY's. A round's drain and
	// COPY run seconds apart, so a change in the host's speed between
	// rounds moves both.
	Ratio float64 `json:"ratio"`
	// RowwiseEventsPerSec is the same rows written one INSERT ... ON
	// CONFLICT DO NOTHING per row, pipelined in the same batches: what
	// the statement style alone costs, without NATS or decoding.
	RowwiseEventsPerSec float64 `json:"rowwiseEventsPerSec"`
	Loops               int     `json:"loops"`
	// DrainCPU and CeilingCPU are the drain's and the COPY's CPU per
	// event; the COPY's is its Postgres backends' and the bench's.
	DrainCPU   CPUShare       `json:"drainCpu"`
	CeilingCPU CPUShare       `json:"ceilingCpu"`
	Rounds     []WorkerResult `json:"rounds,omitempty"`
}

// workerRounds is how many drains the worker stage times. On a shared
// 2-core host one drain's ratio to its COPY ranged from 0.27 to 0.53 on
// the same code within an hour.
const workerRounds = 3

// copiedTables are the tables a worker batch writes for the event mix;
// the ceiling writes the same rows to copies of them.
var copiedTables = []string{"events", "messages", "webhook_log", "unsent_messages"}

// workerTables is every table a drain can write, emptied between rounds
// so that each drain starts as the first did.
var workerTables = append(slices.Clone(copiedTables), "followers", "chats",
	"chat_members", "message_content", "dead_letters", "worker_failures")

// runWorker times workerRounds drains, each with its references, and
// reports the round with the median ratio.
func (b *Bench) runWorker(ctx context.Context, ing *Proc, js jetstream.JetStream) (WorkerResult, error) {
	var rounds []WorkerResult
	for i := range workerRounds {
		if i > 0 {
			if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE "+strings.Join(workerTables, ", ")); err != nil {
				return WorkerResult{}, fmt.Errorf("emptying the worker's tables: %w", err)
			}
		}
		r, err := b.workerOnce(ctx, ing, js, i)
		if err != nil {
			return WorkerResult{}, err
		}
		b.logf("worker stage, round %d: %.0f events/s, COPY %.0f, ratio %.2f", i+1, r.EventsPerSec, r.CeilingEventsPerSec, r.Ratio)
		rounds = append(rounds, r)
	}
	return medianWorker(rounds), nil
}

// medianWorker is the round with the median ratio (rs holds an odd
// number), so the table's lines are one drain and its references and
// agree with its ratio.
func medianWorker(rs []WorkerResult) WorkerResult {
	out := medianByRatio(rs, func(r WorkerResult) float64 { return r.Ratio })
	out.Rounds = rs
	return out
}

// medianByRatio is the round of rs (an odd number) whose ratio is the
// median.
func medianByRatio[T any](rs []T, ratio func(T) float64) T {
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b T) int { return cmp.Compare(ratio(a), ratio(b)) })
	return sorted[len(sorted)/2]
}

// workerOnce fills the stream through ingest with workers stopped, then
// starts the workers and times until the stream is empty (every message
// committed and acknowledged), then writes the references.
func (b *Bench) workerOnce(ctx context.Context, ing *Proc, js jetstream.JetStream, round int) (WorkerResult, error) {
	var res WorkerResult
	st, err := js.Stream(ctx, b.stack.Stream)
	if err != nil {
		return res, err
	}
	if err := st.Purge(ctx); err != nil {
		return res, fmt.Errorf("purging stream: %w", err)
	}
	cfg := b.loadConfig("http://" + ing.Addr)
	cfg.Concurrency = b.cfg.Concurrency
	cfg.Requests = b.cfg.WorkerEvents
	rep, err := runLoad(ctx, cfg)
	if err != nil {
		return res, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return res, err
	}
	res.StreamMessages = info.State.Msgs
	b.logf("worker: stream holds %d messages (%d events accepted)", info.State.Msgs, rep.EventsAccepted)

	var procs []*Proc
	for i := 0; i < b.cfg.Workers; i++ {
		name := fmt.Sprintf("worker-%d", i+1)
		if round > 0 {
			name = fmt.Sprintf("worker-%d-round%d", i+1, round+1)
		}
		p, err := b.stack.Worker(name, fmt.Sprintf("WORKER_CONCURRENCY=%d", b.cfg.WorkerConcurrency))
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	res.Loops = b.cfg.Workers * b.cfg.WorkerConcurrency
	span := b.startSpan()
	start := span.at
	for _, p := range procs {
		if err := b.start(p); err != nil {
			return res, err
		}
	}
	deadline := start.Add(b.cfg.DrainTimeout)
	for {
		info, err := st.Info(ctx)
		if err == nil && info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("worker did not drain the stream within %s", b.cfg.DrainTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.Seconds = time.Since(start).Seconds()
	b.logCPU("worker drain", span.procs, start)
	if err := b.schema.Pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&res.Events); err != nil {
		return res, err
	}
	res.DrainCPU = b.share(span, float64(res.Events))
	for _, p := range procs {
		if err := p.Stop(10 * time.Second); err != nil {
			b.logf("stopping %s: %v", p.Name, err)
		}
	}
	res.EventsPerSec = float64(res.Events) / res.Seconds
	b.logf("worker: %d events in %.2fs = %.0f events/s", res.Events, res.Seconds, res.EventsPerSec)

	return res, b.storageReferences(ctx, &res)
}

// storageReferences writes the rows the worker stored again, by COPY (the
// ceiling) and one INSERT per row, and fills in the rates and the ratio.
func (b *Bench) storageReferences(ctx context.Context, res *WorkerResult) error {
	tables, err := readTables(ctx, b.schema.Pool)
	if err != nil {
		return err
	}
	// Each reference's CPU is logged like the drain's, so the log shows
	// how much Postgres work each way of storing the rows takes.
	span := b.startSpan()
	secs, err := writeAll(ctx, b.schema.Pool, tables, "ceiling_", copyChunk, b.workerBatch(), res.Loops)
	if err != nil {
		return fmt.Errorf("storage ceiling: %w", err)
	}
	res.CeilingCPU = b.share(span, float64(res.Events))
	b.logCPU("storage ceiling (COPY)", span.procs, span.at)
	cpu0, start := b.cpuByProc(), time.Now()
	rowSecs, err := writeAll(ctx, b.schema.Pool, tables, "rowwise_", insertChunk, b.workerBatch(), res.Loops)
	if err != nil {
		return fmt.Errorf("row-wise reference: %w", err)
	}
	b.logCPU("row-wise reference", cpu0, start)
	res.RowwiseEventsPerSec = float64(res.Events) / rowSecs
	b.logf("row-wise INSERT of the same rows: %.2fs = %.0f events/s", rowSecs, res.RowwiseEventsPerSec)
	res.CeilingSeconds = secs
	res.CeilingEventsPerSec = float64(res.Events) / secs
	res.Ratio = res.EventsPerSec / res.CeilingEventsPerSec
	b.logf("storage ceiling: %.2fs = %.0f events/s", secs, res.CeilingEventsPerSec)
	return nil
}

func (b *Bench) workerBatch() int { return worker.DefaultBatchSize }

type tableRows struct {
	name string
	cols []string
	rows [][]any
}

func readTables(ctx context.Context, pool *pgxpool.Pool) ([]tableRows, error) {
	var tables []tableRows
	for _, t := range copiedTables {
		tr, err := readTable(ctx, pool, t)
		if err != nil {
			return nil, err
		}
		tables = append(tables, tr)
	}
	return tables, nil
}

type chunkWriter func(ctx context.Context, pool *pgxpool.Pool, prefix string, tables []tableRows, i, n int) error

// writeAll writes what the worker stored into empty tables LIKE the
// originals (same columns, defaults, indexes and unique keys), in
// transactions of batch events plus their share of the other tables, on
// loops connections at once. With copyChunk it is the fastest a client
// can make Postgres hold these rows with the worker's batching and
// parallelism: the storage ceiling.
func writeAll(ctx context.Context, pool *pgxpool.Pool, tables []tableRows, prefix string, write chunkWriter, batch, loops int) (float64, error) {
	for _, t := range tables {
		// An earlier round's copy goes: every round writes into empty tables.
		if _, err := pool.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s%s", prefix, t.name)); err != nil {
			return 0, fmt.Errorf("dropping %s%s: %w", prefix, t.name, err)
		}
		if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE %s%s (LIKE %s INCLUDING ALL)", prefix, t.name, t.name)); err != nil {
			return 0, fmt.Errorf("creating %s%s: %w", prefix, t.name, err)
		}
	}
	chunks := (len(tables[0].rows) + batch - 1) / batch
	if chunks == 0 {
		return 0, fmt.Errorf("no events stored")
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, loops)
	start := time.Now()
	for l := 0; l < loops; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= chunks {
					return
				}
				if err := write(ctx, pool, prefix, tables, i, chunks); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return elapsed, nil
}

func copyChunk(ctx context.Context, pool *pgxpool.Pool, prefix string, tables []tableRows, i, n int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, t := range tables {
			lo, hi := i*len(t.rows)/n, (i+1)*len(t.rows)/n
			if lo == hi {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{prefix + t.name}, t.cols, pgx.CopyFromRows(t.rows[lo:hi])); err != nil {
				return fmt.Errorf("copy into %s%s: %w", prefix, t.name, err)
			}
		}
		return nil
	})
}

// insertChunk writes a chunk the way the worker does: one INSERT ... ON
// CONFLICT DO NOTHING per row, all rows of the chunk pipelined.
func insertChunk(ctx context.Context, pool *pgxpool.Pool, prefix string, tables []tableRows, i, n int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, t := range tables {
			lo, hi := i*len(t.rows)/n, (i+1)*len(t.rows)/n
			ph := make([]string, len(t.cols))
			for j := range ph {
				ph[j] = fmt.Sprintf("$%d", j+1)
			}
			sql := fmt.Sprintf("INSERT INTO %s%s (%s) VALUES (%s) ON CONFLICT DO NOTHING",
				prefix, t.name, strings.Join(t.cols, ", "), strings.Join(ph, ", "))
			for _, r := range t.rows[lo:hi] {
				b.Queue(sql, r...)
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// readTable reads every row of table except identity columns, json
// columns as text so they are written back byte for byte.
func readTable(ctx context.Context, pool *pgxpool.Pool, table string) (tableRows, error) {
	tr := tableRows{name: table}
	rows, err := pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'NO' AND is_generated = 'NEVER'
		ORDER BY ordinal_position`, table)
	if err != nil {
		return tr, err
	}
	var sel []string
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return tr, err
		}
		tr.cols = append(tr.cols, col)
		if typ == "json" {
			sel = append(sel, col+"::text")
		} else {
			sel = append(sel, col)
		}
	}
	if err := rows.Err(); err != nil {
		return tr, err
	}
	rows, err = pool.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+table)
	if err != nil {
		return tr, err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return tr, err
		}
		tr.rows = append(tr.rows, v)
	}
	return tr, rows.Err()
}
