package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestContentClaimCostIndependentOfBacklog: a content claim touches about
// as many buffers with 100,000 media waiting as with 1,000, while rows
// due later, stored rows and a fetcher's expired lease are present. With
// the due rows and the expired leases read in one OR, Postgres read every
// due row and sorted them for each claim.
func TestContentClaimCostIndependentOfBacklog(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(from, n int) {
		t.Helper()
		exec(`INSERT INTO message_content (channel_id, message_id, message_type, status, next_attempt_at)
			SELECT 'A', 'due' || i, 'image', 'pending', now() - interval '1 hour' + i * interval '1 ms'
			FROM generate_series($1::int, $1::int + $2::int - 1) AS i`, from, n)
		exec(`INSERT INTO message_content (channel_id, message_id, message_type, status, next_attempt_at)
			SELECT 'A', 'later' || i, 'image', 'pending', now() + interval '1 hour'
			FROM generate_series($1::int, $1::int + $2::int / 2 - 1) AS i`, from, n)
		exec(`INSERT INTO message_content (channel_id, message_id, message_type, status)
			SELECT 'A', 'stored' || i, 'image', 'stored' FROM generate_series($1::int, $1::int + $2::int - 1) AS i`, from, n)
		exec(`ANALYZE message_content`)
	}
	exec(`INSERT INTO message_content (channel_id, message_id, message_type, status, lease_until, claimed_by)
		VALUES ('A', 'dead-fetcher', 'image', 'processing', now() - interval '1 minute', 'gone')`)
	claimBuffers := func() (int, []string) {
		t.Helper()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		plan, err := collect(ctx, tx, "EXPLAIN (ANALYZE, BUFFERS) "+store.ContentDueSQL, 8)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := collect(ctx, tx, "SELECT message_id FROM ("+store.ContentDueSQL+") c", 8)
		if err != nil {
			t.Fatal(err)
		}
		return planBuffers(t, strings.Join(plan, "\n")), rows
	}
	wait(1, 1000)
	small, got := claimBuffers()
	// The expired lease's row is due since a minute, the other due rows
	// since an hour: they come first, in due order.
	want := []string{"due1", "due2", "due3", "due4", "due5", "due6", "due7", "due8"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("claim read %v, want %v", got, want)
	}
	wait(1001, 99000)
	large, _ := claimBuffers()
	t.Logf("content claim touches %d buffers with 1,000 media waiting, %d with 100,000", small, large)
	if large > 2*small {
		t.Fatalf("content claim cost grew from %d to %d buffers with the backlog", small, large)
	}
	// Only the expired lease left due: it is read too.
	exec(`UPDATE message_content SET status = 'stored' WHERE message_id LIKE 'due%'`)
	if _, got = claimBuffers(); strings.Join(got, ",") != "dead-fetcher" {
		t.Fatalf("claim read %v, want the expired lease's row", got)
	}
}

// collect runs a statement whose rows are one text each (a plan's lines,
// ids) and returns them.
func collect(ctx context.Context, q store.Querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
