package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Migrate is idempotent and safe to run from several processes at once:
// the advisory lock serialises them and every version applies once.
func TestMigrateIsIdempotentUnderConcurrency(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t) // already migrated once
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := store.Migrate(ctx, db.Pool)
			if err == nil && len(applied) != 0 {
				t.Errorf("a second migration applied %v", applied)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n, files int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM linepipe_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()
		AND table_name IN ('events', 'messages', 'outbox', 'dead_letters', 'webhook_log')`).Scan(&files); err != nil {
		t.Fatal(err)
	}
	if n < 2 || files != 5 {
		t.Fatalf("%d versions recorded, %d core tables", n, files)
	}
}

// The scrub function keeps an event's envelope and the message id and
// type, and drops everything else of the message.
func TestScrubMessageFunction(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	var out string
	err := db.Pool.QueryRow(context.Background(), `SELECT linepipe_scrub_message($1::json)::text`,
		`{"type":"message","webhookEventId":"01X","future":{"a":1},"message":{"id":"9","type":"text","text":"secret","quoteToken":"q","emojis":[{"index":0}]}}`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type": "message", "future": {"a": 1}, "message": {"id": "9", "type": "text"}, "webhookEventId": "01X"}`
	if out != want {
		t.Fatalf("scrubbed:\n got %s\nwant %s", out, want)
	}
	if err := db.Pool.QueryRow(context.Background(), `SELECT linepipe_scrub_message('{"type":"follow"}'::json)::text`).Scan(&out); err != nil || out != `{"type":"follow"}` {
		t.Fatalf("an event without a message changed: %s %v", out, err)
	}
}
