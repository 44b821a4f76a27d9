package loadgen

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// issuer hands out numbered tokens and remembers redeliveries, as a LINE
// emulator registering them would.
type issuer struct {
	mu          sync.Mutex
	issued      map[string]string // token -> channel
	redelivered map[string]int
}

func (i *issuer) Issue(channelID string) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	tok := fmt.Sprintf("issued-%d", len(i.issued))
	i.issued[tok] = channelID
	return tok
}

func (i *issuer) Redelivered(token string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.redelivered[token]++
}

func TestReplyTokensAreIssuedRecordedAndRearmedOnRedelivery(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, func(r *seenRequest, _ *http.Request) int {
		if !r.Redelivery {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	iss := &issuer{issued: map[string]string{}, redelivered: map[string]int{}}
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 4, Requests: 200, EventsPerRequest: 2,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Seed: 9, ReplyTokens: iss,
	})
	withToken := 0
	for _, r := range fake.snapshot() {
		for _, e := range r.Events {
			if e.ReplyToken == "" {
				continue
			}
			withToken++
			if ch, ok := iss.issued[e.ReplyToken]; !ok || ch != r.ChannelID {
				t.Fatalf("event carries token %q not issued for channel %s", e.ReplyToken, r.ChannelID)
			}
			if r.Redelivery && iss.redelivered[e.ReplyToken] != 1 {
				t.Errorf("token %q redelivered without being rearmed once (%d)", e.ReplyToken, iss.redelivered[e.ReplyToken])
			}
		}
	}
	if withToken == 0 || len(iss.issued) != withToken/2 {
		t.Fatalf("%d events carried tokens, %d issued; want every token issued once and sent twice", withToken, len(iss.issued))
	}
	recorded := 0
	for _, e := range rep.Record.Accepted {
		if e.ReplyToken != "" {
			recorded++
			if _, ok := iss.issued[e.ReplyToken]; !ok {
				t.Errorf("record names token %q that was never issued", e.ReplyToken)
			}
			if e.Kind == "" {
				t.Errorf("record of %s has no kind", e.WebhookEventID)
			}
		}
	}
	if recorded != len(iss.issued) {
		t.Errorf("record holds %d tokens, %d were issued", recorded, len(iss.issued))
	}
}
