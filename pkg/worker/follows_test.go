package worker

import (
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// Several follow events of one user in a batch become one row: the
// newest, or on a tie the first, as writing them in turn would leave.
func TestLatestFollowsKeepsTheNewestPerUser(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	var l latestFollows
	l.add(store.Follow{ChannelID: "c", UserID: "u", Following: true, At: t0.Add(time.Second)})
	l.add(store.Follow{ChannelID: "c", UserID: "u", Following: false, At: t0.Add(3 * time.Second)})
	l.add(store.Follow{ChannelID: "c", UserID: "u", Following: true, At: t0.Add(2 * time.Second)})
	l.add(store.Follow{ChannelID: "c", UserID: "v", Following: true, At: t0})
	l.add(store.Follow{ChannelID: "c", UserID: "v", Following: false, At: t0})
	l.add(store.Follow{ChannelID: "d", UserID: "u", Following: true, At: t0})
	if len(l.rows) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(l.rows), l.rows)
	}
	if r := l.rows[0]; r.Following || !r.At.Equal(t0.Add(3*time.Second)) {
		t.Errorf("u on c: %+v, want the unfollow at +3s", r)
	}
	if r := l.rows[1]; !r.Following {
		t.Errorf("v on c: %+v, want the first of two at the same time", r)
	}
}
