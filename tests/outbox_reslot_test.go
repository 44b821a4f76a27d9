package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
)

// Late rows re-slotted together get the bucket's next free slots,
// consecutive and in one booking; a row whose claim is gone gets none,
// and slots past the horizon change nothing.
func TestReslotBooksLateRowsTogether(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	var ids []int64
	for i := range 3 {
		ids = append(ids, b.insert(t, "push", pushBody(userID(i), "late")))
	}
	claim, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 10, Owner: "a", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(claim.Claimed) != 3 {
		t.Fatalf("claim: %v, %d rows", err, len(claim.Claimed))
	}
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox_rate (channel_id, bucket, tat) VALUES ($1, 'push', now() + interval '1 minute')`, b.channel); err != nil {
		t.Fatal(err)
	}
	key := store.RateKey{ChannelID: b.channel, Bucket: "push"}
	var rows []store.ReslotRow
	for _, c := range claim.Claimed {
		rows = append(rows, store.ReslotRow{ID: c.ID, ClaimID: c.ClaimID})
	}
	stale := store.ReslotRow{ID: rows[1].ID, ClaimID: uuid.New()}
	batch := store.ReslotBatch{Key: key, Interval: 10 * time.Millisecond, Lease: time.Minute, Horizon: 30 * time.Second,
		Rows: append([]store.ReslotRow{stale}, rows...)}

	var tat0 time.Time
	tatNow := func() time.Time {
		var tat time.Time
		if err := b.db.Pool.QueryRow(ctx, `SELECT tat FROM outbox_rate WHERE channel_id = $1 AND bucket = 'push'`, b.channel).Scan(&tat); err != nil {
			t.Fatal(err)
		}
		return tat
	}
	tat0 = tatNow()
	res, err := store.ReslotOutboxRows(ctx, b.db.Pool, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, store.ErrSlotBeyondHorizon) && i > 0 {
			t.Errorf("row %d with the next slot a minute out, horizon 30s: %v, want ErrSlotBeyondHorizon", i, r.Err)
		}
	}
	if !errors.Is(res[0].Err, store.ErrLeaseLost) {
		t.Errorf("a row under another claim: %v, want ErrLeaseLost", res[0].Err)
	}
	if !tatNow().Equal(tat0) {
		t.Fatalf("a refused re-slot moved the bucket from %s to %s", tat0, tatNow())
	}

	batch.Horizon = 2 * time.Minute
	if res, err = store.ReslotOutboxRows(ctx, b.db.Pool, batch); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, store.ErrLeaseLost) {
		t.Errorf("a row under another claim: %v, want ErrLeaseLost", res[0].Err)
	}
	for i, r := range res[1:] {
		want := tat0.Add(time.Duration(i) * batch.Interval)
		if r.Err != nil || !r.Slot.Equal(want) {
			t.Errorf("row %d: slot %s, %v; want %s, the bucket's next free slots in turn", rows[i].ID, r.Slot, r.Err, want)
			continue
		}
		if d := time.Until(r.SlotLocal); d < 50*time.Second {
			t.Errorf("row %d: local slot in %s, want about a minute", rows[i].ID, d)
		}
		var sendAt, lease time.Time
		if err := b.db.Pool.QueryRow(ctx, `SELECT send_at, lease_until FROM outbox WHERE id = $1`, rows[i].ID).Scan(&sendAt, &lease); err != nil {
			t.Fatal(err)
		}
		if !sendAt.Equal(r.Slot) || !lease.Equal(r.Slot.Add(time.Minute)) {
			t.Errorf("row %d: send_at %s, lease %s for slot %s", rows[i].ID, sendAt, lease, r.Slot)
		}
	}
	if want := tat0.Add(3 * batch.Interval); !tatNow().Equal(want) {
		t.Errorf("bucket at %s after booking three slots from %s, want %s", tatNow(), tat0, want)
	}
	_ = ids
}
