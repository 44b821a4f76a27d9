package store_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

var buffersRE = regexp.MustCompile(`Buffers: shared((?: \w+=\d+)+)`)

// planBuffers is the shared buffers the plan's root node touched (hit,
// read, dirtied, written): a cost measure that does not depend on how
// busy the machine is.
func planBuffers(t *testing.T, plan string) int {
	t.Helper()
	m := buffersRE.FindStringSubmatch(plan)
	if m == nil {
		t.Fatalf("no buffers in plan:\n%s", plan)
	}
	total := 0
	for _, kv := range regexp.MustCompile(`=(\d+)`).FindAllStringSubmatch(m[1], -1) {
		n, _ := strconv.Atoi(kv[1])
		total += n
	}
	return total
}

func claimBuffers(t *testing.T, db *testenv.DB) int {
	t.Helper()
	lanes, rows, err := store.ExplainClaim(context.Background(), db.Pool,
		store.ClaimParams{Limit: 100, Owner: "explain", Lease: time.Minute, Horizon: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return planBuffers(t, lanes) + planBuffers(t, rows)
}

// TestClaimCostIndependentOfBacklog: the claim's statements touch about
// as many buffers with 100,000 rows queued on one channel, which has
// 1,000 followers, as with 1,000 (make bench shows the same at
// 1,000,000), while another channel with a few rows, a reply lane and
// rows waiting for a retry are present.
func TestClaimCostIndependentOfBacklog(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	queue := func(n int) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
			SELECT 'A', 'push', json_build_object('to', 'U' || md5((i % 5000)::text),
				'messages', json_build_array(json_build_object('type', 'text', 'text', 'x')))
			FROM generate_series(1, $1) AS i`, n); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, status, next_attempt_at)
			SELECT 'A', 'push', '{}', 'retrying', now() + interval '1 hour' FROM generate_series(1, $1 / 10)`, n); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `ANALYZE outbox`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body) VALUES
		('B', 'push', '{}'), ('B', 'push', '{}'), ('A', 'reply', '{}')`); err != nil {
		t.Fatal(err)
	}
	// The channel has an audience. A claim looks up the follow state of
	// the rows it reads, never reads the whole audience: a plan that
	// expected the backlog's size instead of the lanes' quotas hashed
	// the whole followers table once the backlog was large.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO followers (channel_id, user_id, following, state_at)
		SELECT 'A', 'U' || md5(i::text), true, now() FROM generate_series(1, 1000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE followers`); err != nil {
		t.Fatal(err)
	}
	queue(1000)
	small := claimBuffers(t, db)
	queue(99000)
	large := claimBuffers(t, db)
	t.Logf("claim touches %d buffers at 1,000 queued rows, %d at 100,000", small, large)
	if large > 2*small {
		t.Fatalf("claim cost grew from %d to %d buffers with the backlog", small, large)
	}
}

// TestClaimNeverCompiles: a claim's statements run without JIT, whatever
// the server's jit_above_cost. A claim cannot know each lane's quota when
// it is planned, so its estimate grows with the backlog; past the
// threshold (100,000 by default: about 5,000,000 queued rows) Postgres
// would spend tens of milliseconds compiling every claim. Here the
// threshold is 0, so any statement that may compile does.
func TestClaimNeverCompiles(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["jit"] = "on"
	cfg.ConnConfig.RuntimeParams["jit_above_cost"] = "0"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT 'A', 'push', '{"to":"U1","messages":[{"type":"text","text":"x"}]}' FROM generate_series(1, 100)`); err != nil {
		t.Fatal(err)
	}
	control, err := collect(ctx, pool, `EXPLAIN (ANALYZE) SELECT count(*) FROM outbox WHERE body::text <> ''`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(control, "\n"), "JIT:") {
		t.Log("this Postgres compiles nothing even at jit_above_cost 0 (no JIT provider): the claim cannot compile either")
	}
	lanes, rows, err := store.ExplainClaim(ctx, pool, store.ClaimParams{Limit: 100, Owner: "explain",
		Lease: time.Minute, Horizon: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for name, plan := range map[string]string{"lanes": lanes, "lane rows": rows} {
		if strings.Contains(plan, "JIT:") {
			t.Errorf("the claim's %s statement was JIT-compiled:\n%s", name, plan)
		}
	}
}
