package sender

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestSenderHandsBackARowThatMissesEverySlot: a replica so overloaded
// that it reaches every rate slot late (its slot clock reads far ahead,
// so no claim shift or fresh slot can make it on time) takes
// maxSlotMisses fresh slots for a push and then hands the row back
// unsent: LINE sees no request for it, its claim is cleared at once
// rather than when its minute-long lease would end, its bucket's
// reservation is refunded, and slot_missed and released count the
// misses and the one hand-back. Another replica, on time, then delivers
// the row exactly once.
func TestSenderHandsBackARowThatMissesEverySlot(t *testing.T) {
	t.Parallel()
	const channel, secret = "1234567890", "s3cr3t-slot-misses"
	line := linefake.New(linefake.Config{Channels: []linefake.Channel{{ID: channel, Secret: secret}}})
	api := httptest.NewServer(line)
	t.Cleanup(api.Close)
	db := testenv.NewDB(t)
	ctx := context.Background()
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: channel, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body) VALUES ($1, 'push', $2) RETURNING id`,
		channel, fmt.Sprintf(`{"to":"U%032x","messages":[{"type":"text","text":"late every time"}]}`, 1)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	config := func(owner string, reg prometheus.Registerer) Config {
		return Config{BaseURL: api.URL, Owner: owner, PollInterval: 20 * time.Millisecond,
			BackoffBase: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, RequestTimeout: 5 * time.Second,
			Lease: time.Minute, Concurrency: 1, BatchSize: 1,
			Rates: map[string]Rate{store.EndpointPush: {Limit: 10, Per: time.Second}}, Registerer: reg}
	}
	pushes := func() int {
		n := 0
		for _, c := range line.Stats().Requests[store.EndpointPush] {
			n += c
		}
		return n
	}

	// The overloaded replica. Its slot clock runs past every slot by more
	// than a claim shift may move a claim (maxShift) and more than any
	// fresh slot lies ahead (the horizon), so every check finds the row
	// late. Its first reading stops its claim loop: the row it holds is
	// the test's one, and it must not claim the row again once handed
	// back.
	a, err := New(config("overloaded", prometheus.NewRegistry()), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	late := maxShift + a.cfg.RateHorizon
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	var stopOnce sync.Once
	a.now = func() time.Time {
		stopOnce.Do(stopA)
		return time.Now().Add(late)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(actx) }()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the overloaded sender never finished with its row")
	}

	if n := pushes(); n != 0 {
		t.Errorf("LINE saw %d push requests from a sender that missed every slot, want none", n)
	}
	var status string
	var attempts int
	var claimed bool
	var left time.Duration
	if err := db.Pool.QueryRow(ctx, `SELECT o.status, o.attempts,
			o.claim_id IS NOT NULL OR o.claimed_by IS NOT NULL OR o.lease_until IS NOT NULL,
			extract(epoch FROM r.tat - o.send_at) * 1e9
		FROM outbox o JOIN outbox_rate r ON r.channel_id = o.channel_id AND r.bucket = o.endpoint
		WHERE o.id = $1`, id).Scan(&status, &attempts, &claimed, &left); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || attempts != 0 || claimed {
		t.Errorf("row after missing every slot: status %s, %d attempts, still claimed %v; want pending, unclaimed, no attempt",
			status, attempts, claimed)
	}
	if left != 0 {
		t.Errorf("push bucket still booked %s past the released row's send_at, want its reservation refunded", left)
	}
	if n := testutil.ToFloat64(a.m.slotMissed); n != maxSlotMisses+1 {
		t.Errorf("slot_missed counted %v, want %d: a miss per fresh slot, and the last that hands the row back", n, maxSlotMisses+1)
	}
	if n := testutil.ToFloat64(a.m.released); n != 1 {
		t.Errorf("released counted %v, want 1", n)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A replica on time takes the row at once, well within the minute the
	// overloaded one's lease would have held it, and delivers it once.
	b, err := New(config("on-time", prometheus.NewRegistry()), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- b.Run(bctx) }()
	t.Cleanup(func() {
		stopB()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := db.Pool.QueryRow(ctx, `SELECT status, attempts FROM outbox WHERE id = $1`, id).Scan(&status, &attempts); err != nil {
			t.Fatal(err)
		}
		if status == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row handed back is %s after 15s with %d attempts, want delivered long before its old lease ends", status, attempts)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if attempts != 1 || pushes() != 1 || line.AcceptedCount() != 1 {
		t.Fatalf("row delivered after %d attempts; LINE saw %d push requests and accepted %d; want one of each",
			attempts, pushes(), line.AcceptedCount())
	}
}
