package sender

import (
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// The send delay is measured on the database's clock, whatever this
// process's clock reads: created_at, send_at and the claim's reading are
// all the database's.
func TestSinceCreatedUsesTheDatabaseClock(t *testing.T) {
	t.Parallel()
	db := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) // the database's clock at the claim
	local := time.Unix(1_000, 0)                       // this process's, an hour and more apart
	row := store.OutboxClaimed{
		OutboxCandidate: store.OutboxCandidate{CreatedAt: db.Add(-1500 * time.Millisecond)},
		DBNow:           db, SendAt: db.Add(20 * time.Millisecond), SendAtLocal: local.Add(20 * time.Millisecond),
	}
	// The request goes out 30 ms after its slot: 1.5 s + 20 ms + 30 ms
	// after the row was created.
	if got, want := sinceCreated(row, local.Add(50*time.Millisecond)), 1550*time.Millisecond; got != want {
		t.Fatalf("send delay %s, want %s", got, want)
	}
}
