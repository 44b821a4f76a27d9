package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
)

// A row handed back after its claim was shifted refunds its booking: the
// shift moved the bucket on but not the row's send_at, so the refund has
// to look past the shift. Without it a broadcast (two an hour) that
// missed its slot on a busy host was handed back with its bucket still
// booked for half an hour, and waited that long.
func TestReleaseAfterShiftRefundsTheBooking(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id := b.insert(t, "broadcast", `{"messages":[{"type":"text","text":"late"}]}`)
	claim, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 1, Owner: "a", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(claim.Claimed) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(claim.Claimed))
	}
	row := claim.Claimed[0]
	const interval, shift = 30 * time.Minute, 40 * time.Millisecond
	key := store.RateKey{ChannelID: b.channel, Bucket: "broadcast"}
	// The booking the planner would have made, then the claim's shift.
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox_rate (channel_id, bucket, tat)
		SELECT channel_id, 'broadcast', send_at + $2::interval FROM outbox WHERE id = $1`, id, interval); err != nil {
		t.Fatal(err)
	}
	if err := store.ShiftOutboxClaim(ctx, b.db.Pool, row.ClaimID, key, row.SendAt, interval, shift); err != nil {
		t.Fatal(err)
	}
	if err := store.ReleaseOutbox(ctx, b.db.Pool, id, row.ClaimID, store.Refund{Key: key, Amount: interval, Shift: shift}); err != nil {
		t.Fatal(err)
	}
	var left time.Duration
	if err := b.db.Pool.QueryRow(ctx, `SELECT extract(epoch FROM r.tat - o.send_at) * 1e9 FROM outbox_rate r, outbox o
		WHERE r.channel_id = $1 AND r.bucket = 'broadcast' AND o.id = $2`, b.channel, id).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != shift {
		t.Fatalf("bucket booked %s past the released row's send_at, want only the shift (%s)", left, shift)
	}
	if r := b.row(t, id); r.Status != "pending" || r.Attempts != 0 {
		t.Fatalf("released row %+v, want pending with no attempt", r)
	}
}

// A row an unsend scrubs while it is claimed, and that is then handed back
// after a missed slot, ends cancelled and finished, like every other
// cancelled row: with finished_at left empty, retention (which deletes
// finished rows past their age) would keep it forever.
func TestReleasedScrubbedRowIsFinished(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id := b.insert(t, "push", `{"to":"U1","messages":[{"type":"text","text":"soon unsent"}]}`)
	claim, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 1, Owner: "a", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(claim.Claimed) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(claim.Claimed))
	}
	// What the worker's unsend does to a claimed row (store.queueUnsends).
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET body = '{}', scrubbed_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if err := store.ReleaseOutbox(ctx, b.db.Pool, id, claim.Claimed[0].ClaimID); err != nil {
		t.Fatal(err)
	}
	var status string
	var finished *time.Time
	if err := b.db.Pool.QueryRow(ctx, `SELECT status, finished_at FROM outbox WHERE id = $1`, id).Scan(&status, &finished); err != nil {
		t.Fatal(err)
	}
	if status != "cancelled" || finished == nil {
		t.Fatalf("scrubbed row released: status %s, finished_at %v; want cancelled and finished", status, finished)
	}
}

// TestReleaseIsFencedByTheClaim: a sender that lost its row's lease (the
// row taken over by another replica) cannot hand the row back: its
// release is refused as a lost lease and the new owner keeps the row, so
// no third claim can send it while the new owner does.
func TestReleaseIsFencedByTheClaim(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	id := b.insert(t, "push", pushBody(userID(1), "owned"))
	first, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 1, Owner: "a", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(first.Claimed) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(first.Claimed))
	}
	// The lease ends and another replica takes the row over.
	if _, err := b.db.Pool.Exec(ctx, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	second, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 1, Owner: "b", Lease: time.Minute, Horizon: time.Second}, allPlanner{})
	if err != nil || len(second.Claimed) != 1 || second.Claimed[0].ClaimID == first.Claimed[0].ClaimID {
		t.Fatalf("takeover: %v, %+v", err, second.Claimed)
	}
	err = store.ReleaseOutbox(ctx, b.db.Pool, id, first.Claimed[0].ClaimID)
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale owner's release: %v, want ErrLeaseLost", err)
	}
	var owner string
	var status string
	if err := b.db.Pool.QueryRow(ctx, `SELECT status, claimed_by FROM outbox WHERE id = $1`, id).Scan(&status, &owner); err != nil {
		t.Fatal(err)
	}
	if status != "in_flight" || owner != "b" {
		t.Fatalf("after a stale release the row is %s, held by %q; want in_flight, held by b", status, owner)
	}
}
