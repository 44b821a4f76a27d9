package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// bucketPlanner sends every candidate at once, debiting its endpoint's
// bucket, so a claim takes the rate buckets' locks as a limited
// endpoint's claim does.
type bucketPlanner struct{}

func (bucketPlanner) LaneKeys(channelID, endpoint string) ([]store.RateKey, bool) {
	return []store.RateKey{{ChannelID: channelID, Bucket: endpoint}}, true
}

func (bucketPlanner) Keys(_ time.Time, c store.OutboxCandidate) []store.RateKey {
	return []store.RateKey{{ChannelID: c.ChannelID, Bucket: c.Endpoint}}
}

func (bucketPlanner) Plan(now time.Time, cs []store.OutboxCandidate, tats map[store.RateKey]time.Time) store.ClaimPlan {
	p := store.ClaimPlan{Tats: map[store.RateKey]time.Time{}}
	for _, c := range cs {
		p.Send = append(p.Send, store.OutboxReserve{ID: c.ID, SendAt: now})
		p.Tats[store.RateKey{ChannelID: c.ChannelID, Bucket: c.Endpoint}] = now
	}
	return p
}

// TestOutboxPlansStayIndexed: claims, re-slots and completions keep
// reading the outbox through its indexes however small it was when their
// statements were first planned. Postgres plans a prepared statement
// generically after five runs and keeps that plan until the table is
// next analyzed; planned on a near-empty outbox, it scanned the whole
// table in every claim, re-slot and completion once the outbox had
// grown, with nothing (autovacuum off, or behind) to refresh it.
func TestOutboxPlansStayIndexed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection, so every statement is prepared and planned where
	// the later claims run.
	_, pool := oneConnection(t)
	cycle := func() {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, not_after)
			VALUES ('1234567890', 'reply', '{"replyToken":"t","messages":[{"type":"text","text":"hi"}]}',
			        now() + interval '1 minute')`); err != nil {
			t.Fatal(err)
		}
		claimReslotComplete(t, pool, 1)
	}
	// Statistics that no longer describe the table: analyzed with a
	// backlog of pending rows (no claim ids, no leases), then emptied, as
	// a TRUNCATE leaves them. A plan that believes them can join every
	// completion to the whole table.
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT '1234567890', 'push', '{"to":"U1","messages":[{"type":"text","text":"hi"}]}'
		FROM generate_series(1, 20000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `TRUNCATE outbox`); err != nil {
		t.Fatal(err)
	}
	// Past the five custom plans, on a near-empty outbox.
	for i := 0; i < 8; i++ {
		cycle()
	}
	// The outbox grows: rows already delivered, as a day's traffic
	// leaves behind.
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, status, finished_at)
		SELECT '1234567890', 'push', '{"to":"U1","messages":[{"type":"text","text":"hi"}]}', 'delivered', now()
		FROM generate_series(1, 5000)`); err != nil {
		t.Fatal(err)
	}
	before := tableScans(t, pool, "outbox")["outbox"]
	for i := 0; i < 3; i++ {
		cycle()
	}
	after := tableScans(t, pool, "outbox")["outbox"]
	if after.updates-before.updates < 6 {
		t.Fatalf("statistics did not record the claims and completions: %+v then %+v", before, after)
	}
	if n := after.seq - before.seq; n != 0 {
		t.Errorf("%d sequential scans of a 5,000-row outbox in three claims, re-slots and completions; want none", n)
	}
	// Each cycle touches one row, a few versions of it and a few index
	// entries; a join that walks an index end to end reads thousands.
	if n := after.indexed - before.indexed; n > 300 {
		t.Errorf("%d rows fetched through indexes of a 5,000-row outbox in three claims, re-slots and completions; want a few per statement", n)
	}
}

// plansClaim is the claim both plan tests make: a batch of ten.
var plansClaim = store.ClaimParams{Limit: 10, Owner: "plans", Lease: time.Minute, Horizon: time.Second}

// claimReslotComplete runs one of each of the sender's transactions on
// pool: a claim that must take want rows, a re-slot of the first, and the
// completion of them all.
func claimReslotComplete(t *testing.T, pool *pgxpool.Pool, want int) {
	t.Helper()
	ctx := context.Background()
	res, err := store.ClaimOutbox(ctx, pool, plansClaim, bucketPlanner{})
	if err != nil || len(res.Claimed) != want {
		t.Fatalf("claim: %v, %d rows", err, len(res.Claimed))
	}
	c := res.Claimed[0]
	if _, _, err := store.ReslotOutbox(ctx, pool, store.Reslot{ID: c.ID, ClaimID: c.ClaimID,
		Key: store.RateKey{ChannelID: c.ChannelID, Bucket: c.Endpoint}, Interval: time.Millisecond,
		Lease: time.Minute, Horizon: time.Minute}); err != nil {
		t.Fatalf("re-slot: %v", err)
	}
	var done []store.OutboxCompletion
	for _, c := range res.Claimed {
		done = append(done, store.OutboxCompletion{ID: c.ID, ClaimID: c.ClaimID, Status: "delivered", StatusCode: 200})
	}
	if errs, err := store.CompleteOutboxBatch(ctx, pool, done); err != nil || errs[0] != nil {
		t.Fatalf("completion: %v %v", err, errs)
	}
}

// oneConnection is a migrated schema and a pool of one connection to it,
// on which every statement a test runs is prepared and planned.
func oneConnection(t *testing.T) (*testenv.DB, *pgxpool.Pool) {
	t.Helper()
	db := testenv.NewDB(t)
	pool, err := store.Open(context.Background(), db.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// The migration's index builds count as sequential scans; published
	// late, they would land between a test's two readings.
	publishStats(t, db.Pool)
	return db, pool
}

// publishStats has every idle connection of pool publish the statistics
// it holds. A backend publishes them as it goes idle, at most once a
// second unless asked to at once (and an idle one ten seconds later), so
// a connection's earlier work could otherwise reach the counters in the
// middle of a measurement.
func publishStats(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, c := range pool.AcquireAllIdle(ctx) {
		_, err := c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
}

type scanCounts struct{ seq, updates, deletes, indexed int64 }

// tableScans reads tables' scan, update and delete counters once pool's
// only connection has published its statistics: a backend publishes them
// when it goes idle, at most once a second unless asked to at once.
func tableScans(t *testing.T, pool *pgxpool.Pool, tables ...string) map[string]scanCounts {
	t.Helper()
	ctx := context.Background()
	publishStats(t, pool)
	// The flush happens as the backend goes idle after that statement,
	// before it answers; this one reads (in a transaction of its own, so
	// afresh) what it published.
	rows, err := pool.Query(ctx, `SELECT relname, seq_scan, n_tup_upd, n_tup_del, coalesce(idx_tup_fetch, 0)
		FROM pg_stat_user_tables WHERE relid = ANY(SELECT to_regclass(t) FROM unnest($1::text[]) t)`, tables)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]scanCounts{}
	for rows.Next() {
		var name string
		var c scanCounts
		if err := rows.Scan(&name, &c.seq, &c.updates, &c.deletes, &c.indexed); err != nil {
			t.Fatal(err)
		}
		counts[name] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(counts) != len(tables) {
		t.Fatalf("statistics of %d of the tables %v", len(counts), tables)
	}
	return counts
}

// TestOutboxStatementsPlanGenerically: the sender's transactions (claims,
// re-slots, completions) plan each statement once per connection and
// reuse the plan. Planned afresh,
// the claim's lane rows and bucket reads cost about as much planning as
// executing, on every claim.
func TestOutboxStatementsPlanGenerically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection runs only the sender's transactions; rows go in
	// through another, so every statement prepared on the first is one
	// of theirs.
	db, pool := oneConnection(t)
	for i := 0; i < 8; i++ {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
			SELECT ch, 'push', '{"to":"U1","messages":[{"type":"text","text":"hi"}]}'
			FROM unnest(array['1234567890', '1234567891']) AS ch, generate_series(1, 3)`); err != nil {
			t.Fatal(err)
		}
		claimReslotComplete(t, pool, 6)
	}
	rows, err := pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	reused := 0
	for rows.Next() {
		var stmt string
		var generic, custom int64
		if err := rows.Scan(&stmt, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		if custom > 0 {
			t.Errorf("planned afresh %d times in 8 claims, re-slots and completions:\n%s", custom, stmt)
		}
		if generic >= 8 {
			reused++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The lane listing, the lane rows, the buckets' locks, the writes, the
	// re-slot's two reads and its lease extension, and the completion.
	if reused < 8 {
		t.Errorf("%d statements ran 8 times on a kept plan, want at least 8", reused)
	}
}
