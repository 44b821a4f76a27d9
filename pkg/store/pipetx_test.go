package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestCommitWithIsAllOrNothing: CommitWith runs the caller's last
// statements, the outbox rows and COMMIT in one round trip. When they
// all succeed everything commits, result functions included; when one
// of the caller's statements fails, its error carries the caller's
// label and nothing of the transaction commits, neither what an earlier
// round trip wrote nor the outbox rows. The worker acknowledges its
// stream messages once this returns nil, so a failure it reports as
// success would lose events.
func TestCommitWithIsAllOrNothing(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE pipe_rows (k int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	reply := store.OutboxInsert{ChannelID: "1650000001", Endpoint: "push", Body: []byte(`{"to":"U1","messages":[]}`)}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// run inserts first in one round trip, then last with the outbox
	// row and COMMIT in another.
	run := func(first int, last *pgx.Batch) error {
		t.Helper()
		tx, done, err := store.BeginPipe(ctx, db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO pipe_rows VALUES ($1)`, first)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		return tx.CommitWith(ctx, last, "applying events", []store.OutboxInsert{reply})
	}

	last := &pgx.Batch{}
	last.Queue(`INSERT INTO pipe_rows VALUES (2)`)
	var read int
	last.Queue(`SELECT count(*) FROM pipe_rows`).QueryRow(func(row pgx.Row) error { return row.Scan(&read) })
	if err := run(1, last); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if read != 2 {
		t.Fatalf("the result function read %d rows, want 2 (it did not run, or ran out of order)", read)
	}
	if n := count(`SELECT count(*) FROM pipe_rows`); n != 2 {
		t.Fatalf("%d rows committed, want 2", n)
	}
	if n := count(`SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("%d outbox rows committed, want 1", n)
	}

	failing := &pgx.Batch{}
	failing.Queue(`INSERT INTO pipe_rows VALUES (4)`)
	failing.Queue(`INSERT INTO pipe_rows VALUES (4)`) // a unique violation
	err := run(3, failing)
	var pgErr *pgconn.PgError
	if err == nil || !strings.HasPrefix(err.Error(), "applying events: ") || !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("commit after a failing statement: %v, want the unique violation under the caller's label", err)
	}
	if n := count(`SELECT count(*) FROM pipe_rows WHERE k IN (3, 4)`); n != 0 {
		t.Fatalf("%d rows of the failed transaction committed", n)
	}
	if n := count(`SELECT count(*) FROM outbox`); n != 1 {
		t.Fatalf("%d outbox rows, want the first transaction's 1 only", n)
	}
}
