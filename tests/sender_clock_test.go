package tests

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// testClock is a clock a test moves forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// TestSenderRetryKeyExpiry: a push keeps failing with 500; once its retry
// key's first attempt is older than the margin (23h by default) on the
// database clock, the row ends expired and is never sent again, since LINE
// would treat the key as new and could deliver twice.
func TestSenderRetryKeyExpiry(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{Faults: linefake.Faults{FailRate: 1}})
	id := b.insert(t, "push", pushBody(userID(1), "keep trying"))
	b.start(t, b.config("s"))
	waitFor(t, "two failed attempts", func() (bool, string) {
		r := b.row(t, id)
		return r.Attempts >= 2 && r.Status == "retrying", ""
	})

	// 23 hours pass for the key. The sender's own clock plays no part:
	// key age is a decision every replica shares, so it is the database's.
	if _, err := b.db.Pool.Exec(context.Background(), `UPDATE outbox
		SET first_attempt_at = first_attempt_at - interval '23 hours 1 minute' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	r := b.waitStatus(t, id, "expired")
	if r.LastError == nil || !strings.Contains(*r.LastError, "24h") {
		t.Fatalf("expired row says %v, want the 24h key period named", r.LastError)
	}
	calls := b.sends("push")
	// LINE would now accept the request; the sender must not make it.
	if err := b.line.SetFaults(linefake.Faults{}); err != nil {
		t.Fatal(err)
	}
	marker := b.insert(t, "push", pushBody(userID(2), "fresh key"))
	b.waitStatus(t, marker, "delivered")
	if got := b.sends("push"); got != calls+1 {
		t.Fatalf("push calls went from %d to %d, want only the fresh row's", calls, got)
	}
	if r := b.row(t, id); r.Status != "expired" {
		t.Fatalf("expired row became %s", r.Status)
	}
}

// TestSenderTokenRefreshOn401: LINE stops honouring the cached stateless
// token (here: LINE's clock runs past its expiry). The 401 drops it, a
// fresh token is issued and the row is delivered on the next attempt.
func TestSenderTokenRefreshOn401(t *testing.T) {
	t.Parallel()
	lineClock := &testClock{}
	b := setupSender(t, linefake.Config{Clock: lineClock.Now})
	b.start(t, b.config("s"))
	first := b.insert(t, "push", pushBody(userID(1), "one"))
	b.waitStatus(t, first, "delivered")

	lineClock.Advance(20 * time.Minute) // past the 15-minute stateless token
	second := b.insert(t, "push", pushBody(userID(1), "two"))
	r := b.waitStatus(t, second, "delivered")
	if r.Attempts != 2 {
		t.Fatalf("row took %d attempts, want a 401 then a success", r.Attempts)
	}
	var n401, tokens int
	ctx := context.Background()
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 401 AND outbox_id = $1),
		count(*) FILTER (WHERE endpoint = '/oauth2/v3/token' AND status = 200) FROM api_log`, second).Scan(&n401, &tokens); err != nil {
		t.Fatal(err)
	}
	if n401 != 1 || tokens != 2 {
		t.Fatalf("api_log: %d 401s for the row and %d token issues, want 1 and 2", n401, tokens)
	}
}

// TestSenderStaticTokenRejected: a static token LINE rejects is retried
// once (after re-reading channels), then the row fails for an operator.
func TestSenderStaticTokenRejected(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	if _, err := b.db.Pool.Exec(context.Background(),
		`UPDATE channels SET access_token = 'revoked-token' WHERE channel_id = $1`, b.channel); err != nil {
		t.Fatal(err)
	}
	b.start(t, b.config("s"))
	id := b.insert(t, "push", pushBody(userID(1), "x"))
	r := b.waitStatus(t, id, "failed")
	if r.Attempts != 2 || r.LastStatusCode == nil || *r.LastStatusCode != 401 {
		t.Fatalf("row %+v, want two 401 attempts", r)
	}
	if len(b.line.Accepted()) != 0 {
		t.Fatal("LINE accepted a send with a rejected token")
	}
}
