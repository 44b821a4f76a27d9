package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// TestTakenOverReplyRefusedEndsUncertain: a reply whose sender died
// mid-call (left in_flight, its lease over) is taken over; the retry is
// refused with "Invalid reply token", which is what LINE answers when the
// dead sender's call used the token. The row ends uncertain, not failed:
// it may have reached the user, and a failed row invites a second send.
func TestTakenOverReplyRefusedEndsUncertain(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	// A token the emulator holds as used: one it never issued gets the
	// same 400 "Invalid reply token".
	tok := "used-by-the-dead-senders-call"
	id := b.insert(t, "reply", fmt.Sprintf(`{"replyToken":%q,"messages":[{"type":"text","text":"echo"}]}`, tok))
	// What a sender that died mid-call leaves, and LINE had used the token.
	if _, err := b.db.Pool.Exec(context.Background(), `UPDATE outbox SET status = 'in_flight', attempts = 1,
		first_attempt_at = now() - interval '2 seconds', claim_id = gen_random_uuid(), claimed_by = 'dead',
		lease_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("s"))
	r := b.waitStatus(t, id, "uncertain")
	if !r.MaybeDelivered || r.LastStatusCode == nil || *r.LastStatusCode != 400 || !strings.Contains(*r.LastError, "may have been delivered") {
		t.Fatalf("taken-over reply refused: %+v", r)
	}
}
