package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// An unknown channel id is looked up once per negativeTTL: a flood of
// webhooks for it is answered from the negative cache, without a query,
// and a channel added meanwhile is found once the entry expires.
func TestUnknownChannelIsLookedUpOncePerTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := NewSecrets(db.Pool, nil, zap.NewNop(), clock)
	if _, err := s.Secret(ctx, "1000000009"); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
	// Added in the table now, it stays unknown to ingest until the entry
	// expires: proof that the cached answer was used, not a query.
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "1000000009", Secret: "added"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(negativeTTL - time.Millisecond)
	mu.Unlock()
	if _, err := s.Secret(ctx, "1000000009"); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("within %s of the miss: %v; want the cached ErrUnknownChannel", negativeTTL, err)
	}
	mu.Lock()
	now = now.Add(time.Millisecond)
	mu.Unlock()
	if sec, err := s.Secret(ctx, "1000000009"); err != nil || sec != "added" {
		t.Fatalf("after %s: %q, %v; want the added channel's secret", negativeTTL, sec, err)
	}
}
