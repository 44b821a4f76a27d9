package sender

import (
	"testing"
	"time"
)

// A send gives up leaseSafety before its lease ends, counted from its
// slot, however long its request timeout: after the lease another
// replica may claim the row and send it again. Within the lease, the
// request timeout bounds it.
func TestSendDeadlineStaysInsideTheLease(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	cfg := Config{Lease: 7 * time.Second, RequestTimeout: 15 * time.Second}
	for name, c := range map[string]struct {
		target time.Time
		want   time.Time
	}{
		"slot now, timeout past the lease":    {now, now.Add(2 * time.Second)},
		"slot ahead, timeout past the lease":  {now.Add(10 * time.Second), now.Add(12 * time.Second)},
		"slot long ahead, timeout ends first": {now.Add(time.Minute), now.Add(15 * time.Second)},
	} {
		if got := sendDeadline(cfg, c.target, now); !got.Equal(c.want) {
			t.Errorf("%s: deadline %s after now, want %s", name, got.Sub(now), c.want.Sub(now))
		}
	}
	cfg.Lease = time.Minute
	if got := sendDeadline(cfg, now, now); !got.Equal(now.Add(cfg.RequestTimeout)) {
		t.Errorf("a long lease: deadline %s after now, want the request timeout %s", got.Sub(now), cfg.RequestTimeout)
	}
}
