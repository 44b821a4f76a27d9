package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// A dead letter being replayed is skipped, not taken again and not waited
// for, by every other replica's claim: each row is replayed once however
// many workers run, and a slow replay holds up no one.
func TestClaimReplaySkipsARowBeingReplayed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := testenv.NewDB(t)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO dead_letters (subject, stream_seq, deliveries, data, error, replay_requested_at)
		VALUES ('linepipe.event.1', 1, 1, '{}', 'x', now()), ('linepipe.event.1', 2, 1, '{}', 'x', now())`); err != nil {
		t.Fatal(err)
	}
	first, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx)
	a, err := store.ClaimReplay(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Rollback(ctx)
	claimCtx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	b, err := store.ClaimReplay(claimCtx, second)
	if err != nil {
		t.Fatalf("second claim while the first is open: %v; want the other row at once", err)
	}
	if b.ID == a.ID {
		t.Fatalf("both claims took dead letter %d", a.ID)
	}
	third, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Rollback(ctx)
	if _, err := store.ClaimReplay(claimCtx, third); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a third replica's claim: %v; want nothing left to take", err)
	}
}
