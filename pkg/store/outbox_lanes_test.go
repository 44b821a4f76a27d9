package store_test

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

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
// as many buffers with 100,000 rows queued on one channel as with 1,000
// (make bench shows the same at 1,000,000), while another channel with a
// few rows, a reply lane and rows waiting for a retry are present.
func TestClaimCostIndependentOfBacklog(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	queue := func(n int) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
			SELECT 'A', 'push', '{"to":"U1","messages":[{"type":"text","text":"x"}]}' FROM generate_series(1, $1)`, n); err != nil {
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
	queue(1000)
	small := claimBuffers(t, db)
	queue(99000)
	large := claimBuffers(t, db)
	t.Logf("claim touches %d buffers at 1,000 queued rows, %d at 100,000", small, large)
	if large > 2*small {
		t.Fatalf("claim cost grew from %d to %d buffers with the backlog", small, large)
	}
}
