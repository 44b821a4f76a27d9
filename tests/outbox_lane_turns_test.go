package tests

import (
	"context"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
)

// TestClaimListsEveryLaneInTurn: with more lanes than one claim lists
// (MaxLanes), the listing continues where the last one was cut and wraps
// around, so a channel sorting after them gets its due row claimed,
// although the lanes before it hold only rows not yet due. A listing
// that always began at the first lane never reached it: its replies
// would have expired unsent.
func TestClaimListsEveryLaneInTurn(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	// Channels a1 and a2 sort first and hold a push each, due in an hour;
	// channel c's push is due now.
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body, next_attempt_at)
		VALUES ('a1', 'push', '{"to":"U1","messages":[]}', now() + interval '1 hour'),
		       ('a2', 'push', '{"to":"U1","messages":[]}', now() + interval '1 hour'),
		       ('c', 'push', '{"to":"U1","messages":[]}', now())`); err != nil {
		t.Fatal(err)
	}
	var after *store.LaneKey
	for claim := 1; claim <= 3; claim++ {
		res, err := store.ClaimOutbox(ctx, b.db.Pool, store.ClaimParams{Limit: 10, Owner: "t", Lease: time.Minute,
			Horizon: time.Second, MaxLanes: 2, AfterLane: after}, allPlanner{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Claimed) > 0 {
			if ch := res.Claimed[0].ChannelID; ch != "c" || len(res.Claimed) != 1 {
				t.Fatalf("claim %d took %d rows, the first of channel %s; want channel c's one", claim, len(res.Claimed), ch)
			}
			return
		}
		after = res.NextLanes
	}
	t.Fatal("three claims of two lanes each never listed channel c, the third lane")
}
