package sender

import (
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// TestPastDeadlineSaysWhatLINEMayHave: a row whose deadline passed unsent
// ends expired only when no attempt of it may have reached LINE. A reply
// that may have (an attempt got no answer, or it is taken over in_flight
// from a sender that died mid-call) ends uncertain: its token may be used
// up, and calling it expired ("never sent") would invite a second send.
func TestPastDeadlineSaysWhatLINEMayHave(t *testing.T) {
	t.Parallel()
	dl := time.Unix(1_700_000_000, 0)
	reply := func(status string, maybe bool) store.OutboxCandidate {
		return store.OutboxCandidate{Endpoint: store.EndpointReply, Status: status, MaybeDelivered: maybe}
	}
	push := store.OutboxCandidate{Endpoint: store.EndpointPush, Status: store.OutboxInFlight, MaybeDelivered: true}
	for name, c := range map[string]struct {
		row  store.OutboxCandidate
		want string
	}{
		"reply never attempted":              {reply(store.OutboxPending, false), store.OutboxExpired},
		"reply whose attempt got no answer":  {reply(store.OutboxRetrying, true), store.OutboxUncertain},
		"reply taken over in flight":         {reply(store.OutboxInFlight, false), store.OutboxUncertain},
		"push, whose key makes a retry safe": {push, store.OutboxExpired},
	} {
		if got, _ := pastDeadline(c.row, dl); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
}
