package sender

import (
	"errors"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

func TestClassify(t *testing.T) {
	push := store.OutboxCandidate{Endpoint: "push"}
	reply := store.OutboxCandidate{Endpoint: "reply"}
	after401 := store.OutboxCandidate{Endpoint: "push", LastStatusCode: 401}
	sent := []byte(`{"sentMessages":[{"id":"461230966842064897","quoteToken":"q"}]}`)
	cases := []struct {
		name  string
		row   store.OutboxCandidate
		maybe bool
		resp  apiResponse
		err   error
		want  outcome
	}{
		{"200", push, false, apiResponse{Status: 200, Body: sent}, nil,
			outcome{Status: "delivered", SentMessageIDs: []string{"461230966842064897"}}},
		{"narrowcast 202", store.OutboxCandidate{Endpoint: "narrowcast"}, false, apiResponse{Status: 202, Body: []byte(`{}`)}, nil,
			outcome{Status: "delivered"}},
		{"409 push", push, true, apiResponse{Status: 409, Body: sent, AcceptedRequestID: "r1"}, nil,
			outcome{Status: "delivered", SentMessageIDs: []string{"461230966842064897"}}},
		{"409 reply is not a key conflict", reply, false, apiResponse{Status: 409}, nil, outcome{Status: "failed"}},
		{"timeout", push, false, apiResponse{}, errors.New("deadline exceeded"), outcome{Status: "retrying", Ambiguous: true, Backoff: true}},
		{"500", push, false, apiResponse{Status: 500}, nil, outcome{Status: "retrying", Ambiguous: true, Backoff: true}},
		{"503", push, false, apiResponse{Status: 503}, nil, outcome{Status: "retrying", Ambiguous: true, Backoff: true}},
		{"429", push, false, apiResponse{Status: 429}, nil, outcome{Status: "retrying", Backoff: true}},
		{"401", push, false, apiResponse{Status: 401}, nil, outcome{Status: "retrying", RefreshToken: true}},
		{"401 twice", after401, false, apiResponse{Status: 401}, nil, outcome{Status: "failed", RefreshToken: true}},
		{"400", push, false, apiResponse{Status: 400}, nil, outcome{Status: "failed"}},
		{"403", push, false, apiResponse{Status: 403}, nil, outcome{Status: "failed"}},
		{"413", push, false, apiResponse{Status: 413}, nil, outcome{Status: "failed"}},
		{"reply 400 first try", reply, false, apiResponse{Status: 400}, nil, outcome{Status: "failed"}},
		{"reply 400 after no answer", reply, true, apiResponse{Status: 400}, nil, outcome{Status: "uncertain"}},
		{"push 400 after no answer", push, true, apiResponse{Status: 400}, nil, outcome{Status: "failed"}},
		// A reply's earlier attempt may have used the token whatever the
		// retry's refusal: never failed, which would say it was not sent.
		{"reply 403 after no answer", reply, true, apiResponse{Status: 403}, nil, outcome{Status: "uncertain"}},
		{"reply 401 twice after no answer", store.OutboxCandidate{Endpoint: "reply", LastStatusCode: 401}, true,
			apiResponse{Status: 401}, nil, outcome{Status: "uncertain", RefreshToken: true}},
		{"reply 401 after no answer still retries", reply, true, apiResponse{Status: 401}, nil,
			outcome{Status: "retrying", RefreshToken: true}},
		{"reply 403 first try", reply, false, apiResponse{Status: 403}, nil, outcome{Status: "failed"}},
		{"push 403 after no answer", push, true, apiResponse{Status: 403}, nil, outcome{Status: "failed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.row, c.maybe, c.resp, c.err)
			if got.Status != c.want.Status || got.Ambiguous != c.want.Ambiguous || got.Backoff != c.want.Backoff ||
				got.RefreshToken != c.want.RefreshToken || len(got.SentMessageIDs) != len(c.want.SentMessageIDs) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for i := range got.SentMessageIDs {
				if got.SentMessageIDs[i] != c.want.SentMessageIDs[i] {
					t.Fatalf("sent ids %v, want %v", got.SentMessageIDs, c.want.SentMessageIDs)
				}
			}
		})
	}
}

func TestUsesRetryKey(t *testing.T) {
	for ep, want := range map[string]bool{"push": true, "multicast": true, "narrowcast": true, "broadcast": true, "reply": false, "x": false} {
		if usesRetryKey(ep) != want {
			t.Errorf("usesRetryKey(%s) = %v", ep, !want)
		}
	}
}

func TestBackoff(t *testing.T) {
	base, max := time.Second, time.Minute
	lo, hi := func() float64 { return 0 }, func() float64 { return 0.999999 }
	for _, c := range []struct {
		attempt int
		full    time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {40, time.Minute}} {
		if got := backoff(c.attempt, base, max, lo); got != c.full/2 {
			t.Errorf("attempt %d with no jitter: %s, want %s", c.attempt, got, c.full/2)
		}
		if got := backoff(c.attempt, base, max, hi); got < c.full-time.Millisecond || got > c.full {
			t.Errorf("attempt %d with full jitter: %s, want just under %s", c.attempt, got, c.full)
		}
	}
}

func TestSentMessageIDs(t *testing.T) {
	ids := sentMessageIDs([]byte(`{"sentMessages":[{"id":"1"},{"id":2}]}`))
	if len(ids) != 2 || ids[0] != "1" || ids[1] != "2" {
		t.Fatalf("ids %v", ids)
	}
	if sentMessageIDs([]byte(`{}`)) != nil || sentMessageIDs([]byte(`not json`)) != nil {
		t.Fatal("ids from a body without sentMessages")
	}
}
