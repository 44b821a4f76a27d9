package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// ExplainClaim runs the claim's statements for real under EXPLAIN
// (ANALYZE, BUFFERS) and ends its transaction: no row stays locked, so a
// claim right after it can take the same rows.
func TestExplainClaimAnalyzesAndRollsBack(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := store.EnqueueOutbox(ctx, db.Pool, store.OutboxInsert{ChannelID: "c1", Endpoint: "push",
			Body: []byte(`{"to":"U0123456789abcdef0123456789abcdef","messages":[{"type":"text","text":"x"}]}`)}); err != nil {
			t.Fatal(err)
		}
	}
	p := store.ClaimParams{Limit: 3, Now: time.Now().Add(time.Second), Owner: "explain", Lease: time.Minute, Horizon: time.Second}
	plans, err := store.ExplainClaim(ctx, db.Pool, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) == 0 {
		t.Fatal("no plan")
	}
	var all string
	for _, plan := range plans {
		all += strings.Join(plan, "\n") + "\n"
	}
	for _, want := range []string{"Execution Time:", "Buffers: shared", "actual time=", "LockRows"} {
		if !strings.Contains(all, want) {
			t.Errorf("plans lack %q:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "rows=3 loops=1") {
		t.Errorf("the due statement did not read a full batch of 3 for real:\n%s", all)
	}
	// The locks EXPLAIN ANALYZE took are gone: FOR UPDATE NOWAIT on every
	// row succeeds from another connection.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT id FROM outbox WHERE status = 'pending' FOR UPDATE NOWAIT) s`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("after ExplainClaim: %d pending rows lockable, err %v; want 5", n, err)
	}
}
