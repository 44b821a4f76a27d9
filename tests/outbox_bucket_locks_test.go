package tests

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// spacedPlanner gives every send a slot spacing apart from the last one
// in each of its buckets (its endpoint's and its recipient's), reading
// the tats the claim locked: two claims that did not hold a bucket's lock
// through their commit would give two rows the same slot.
type spacedPlanner struct{}

const plannerSpacing = 10 * time.Millisecond

func (spacedPlanner) LaneKeys(channelID, endpoint string) ([]store.RateKey, bool) {
	return []store.RateKey{{ChannelID: channelID, Bucket: endpoint}}, endpoint != store.EndpointPush
}

func (spacedPlanner) Keys(_ time.Time, c store.OutboxCandidate) []store.RateKey {
	keys := []store.RateKey{{ChannelID: c.ChannelID, Bucket: c.Endpoint}}
	if c.Recipient != "" {
		keys = append(keys, store.RateKey{ChannelID: c.ChannelID, Bucket: "to:" + c.Recipient})
	}
	return keys
}

func (p spacedPlanner) Plan(now time.Time, cs []store.OutboxCandidate, tats map[store.RateKey]time.Time) store.ClaimPlan {
	plan := store.ClaimPlan{Tats: map[store.RateKey]time.Time{}}
	for _, c := range cs {
		keys := p.Keys(now, c)
		slot := now
		for _, k := range keys {
			if t, ok := tats[k]; !ok {
				panic(fmt.Sprintf("bucket %v not locked", k))
			} else if t.After(slot) {
				slot = t
			}
		}
		for _, k := range keys {
			tats[k] = slot.Add(plannerSpacing)
			plan.Tats[k] = tats[k]
		}
		plan.Send = append(plan.Send, store.OutboxReserve{ID: c.ID, SendAt: slot})
	}
	return plan
}

// TestOutboxClaimsHoldTheirBuckets: concurrent claims draw every slot of
// a rate bucket from one schedule, whether a claim locks its lanes'
// buckets before reading their rows (a few lanes of replies) or only the
// buckets its rows need after reading them (more lanes than a claim locks
// up front, or pushes, which also debit their recipients' buckets), and
// whether a bucket exists yet or not.
func TestOutboxClaimsHoldTheirBuckets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		channels int
		pushes   bool
	}{
		{"replies on 3 channels", 3, false},
		{"replies on 40 channels", 40, false},
		{"replies and pushes on 3 channels", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := testenv.NewDB(t)
			ctx := context.Background()
			// Pushes go to the same four users on every channel, so rows
			// of one channel share their recipients' buckets.
			if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
				SELECT lpad(c::text, 10, '0'), 'reply', '{"replyToken":"t","messages":[{"type":"text","text":"hi"}]}'
				FROM generate_series(1, $1) c, generate_series(1, 24) i`, tc.channels); err != nil {
				t.Fatal(err)
			}
			want := tc.channels * 24
			if tc.pushes {
				if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
					SELECT lpad(c::text, 10, '0'), 'push',
					       jsonb_build_object('to', 'U' || lpad((i % 4)::text, 32, '0'), 'messages', '[{"type":"text","text":"hi"}]'::jsonb)
					FROM generate_series(1, $1) c, generate_series(1, 24) i`, tc.channels); err != nil {
					t.Fatal(err)
				}
				want *= 2
			}
			claimConcurrently(t, db.Pool, 4, store.ClaimParams{Limit: 9, Lease: time.Hour, Horizon: time.Hour}, spacedPlanner{},
				func(store.ClaimResult) {})
			if t.Failed() {
				return
			}
			rows, err := db.Pool.Query(ctx, `SELECT channel_id, endpoint, coalesce(recipient, ''), send_at FROM outbox WHERE status = 'in_flight'`)
			if err != nil {
				t.Fatal(err)
			}
			slots := map[string][]time.Time{}
			n := 0
			for rows.Next() {
				var ch, ep, to string
				var at time.Time
				if err := rows.Scan(&ch, &ep, &to, &at); err != nil {
					t.Fatal(err)
				}
				slots[ch+"/"+ep] = append(slots[ch+"/"+ep], at)
				if to != "" {
					slots[ch+"/to:"+to] = append(slots[ch+"/to:"+to], at)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("%d rows claimed, want %d", n, want)
			}
			for bucket, ts := range slots {
				sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
				for i := 1; i < len(ts); i++ {
					if d := ts[i].Sub(ts[i-1]); d < plannerSpacing {
						t.Fatalf("bucket %s gave slots %s apart (%s, %s): two claims read it at once", bucket, d, ts[i-1], ts[i])
					}
				}
			}
		})
	}
}
