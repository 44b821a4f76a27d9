package linefake

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestFaultFailRateIs500WithNothingAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Faults = Faults{FailRate: 1} })
	r := b.send(PathPush, push(userA, text("x")), uuid.NewString())
	wantStatus(t, r, http.StatusInternalServerError)
	if r.errorBody(t).Message == "" {
		t.Fatal("500 without an error body")
	}
	tok := b.srv.IssueReplyToken(testChannel)
	wantStatus(t, b.send(PathReply, reply(tok, text("x")), ""), http.StatusInternalServerError)
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("accepted %d under a 500", n)
	}
	// Nothing was accepted, so the key and the reply token are still free.
	if err := b.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b.send(PathReply, reply(tok, text("x")), ""), http.StatusOK)
}

func TestFaultTooManyRate(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Faults = Faults{TooManyRate: 1} })
	key := uuid.NewString()
	r := b.send(PathPush, push(userA, text("x")), key)
	wantStatus(t, r, http.StatusTooManyRequests)
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("accepted %d under a 429", n)
	}
	if err := b.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	// A 429 accepted nothing, so retrying with the same key is accepted.
	wantStatus(t, b.send(PathPush, push(userA, text("x")), key), http.StatusOK)
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Faults = Faults{Latency: 150 * time.Millisecond, LatencyJitter: 50 * time.Millisecond}
	})
	start := time.Now()
	wantStatus(t, b.send(PathPush, push(userA, text("x")), ""), http.StatusOK)
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %v, want at least the injected 150ms", el)
	}
	// Admin and token endpoints are never delayed by send faults: with a
	// latency far above any plausible scheduling delay, a fast answer
	// proves it.
	if err := b.srv.SetFaults(Faults{Latency: time.Minute}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	wantStatus(t, b.must(http.MethodGet, "/healthz", nil, nil), http.StatusOK)
	if el := time.Since(start); el >= time.Minute {
		t.Fatalf("healthz took %v", el)
	}
}

// Accept-then-drop: LINE took the send, the client sees a broken
// connection. Retrying with the same key gets 409 with the accepted
// request's id and sentMessages: the reason retry keys exist.
func TestFaultAcceptThenDrop(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Faults = Faults{DropRate: 1} })
	key := uuid.NewString()
	_, err := b.do(http.MethodPost, PathPush, mustJSON(t, push(userA, text("x"))),
		map[string]string{"Authorization": "Bearer " + testToken, RetryKeyHeader: key})
	if err == nil {
		t.Fatal("the client got a response; want a connection error")
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		t.Fatalf("error %v, want a transport error from the client", err)
	}
	ds := b.srv.Accepted()
	if len(ds) != 1 || !ds[0].Dropped || ds[0].RetryKey != key || len(ds[0].SentMessages) != 1 {
		t.Fatalf("deliveries %+v, want the dropped send recorded", ds)
	}
	if st := b.srv.Stats(); st.Dropped != 1 || st.Requests["push"]["dropped"] != 1 {
		t.Fatalf("stats %+v, want one dropped push", st)
	}

	if err := b.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	r := b.send(PathPush, push(userA, text("x")), key)
	wantStatus(t, r, http.StatusConflict)
	if r.header.Get(AcceptedRequestIDHeader) != ds[0].RequestID {
		t.Fatalf("409 names %q, want the dropped request %q", r.header.Get(AcceptedRequestIDHeader), ds[0].RequestID)
	}
	if !reflect.DeepEqual(r.errorBody(t).SentMessages, ds[0].SentMessages) {
		t.Fatal("409 sentMessages differ from what was accepted")
	}
	if n := len(b.srv.Accepted()); n != 1 {
		t.Fatalf("accepted %d, want 1: the retry must not duplicate", n)
	}
}

// Accept-then-500: LINE took the send but answered 5xx, which may have
// delivered. A retry with the same key gets 409 naming the accepted
// request; a reply's retry finds its token used.
func TestFaultAcceptThen500(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Faults = Faults{AcceptedFailRate: 1} })
	key := uuid.NewString()
	r := b.send(PathPush, push(userA, text("x")), key)
	wantStatus(t, r, http.StatusInternalServerError)
	ds := b.srv.Accepted()
	if len(ds) != 1 || ds[0].Dropped || ds[0].RetryKey != key || len(ds[0].SentMessages) != 1 {
		t.Fatalf("deliveries %+v, want the send answered 500 recorded as accepted", ds)
	}
	token := b.srv.IssueReplyToken(testChannel)
	wantStatus(t, b.send(PathReply, reply(token, text("x")), ""), http.StatusInternalServerError)

	if err := b.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	again := b.send(PathPush, push(userA, text("x")), key)
	wantStatus(t, again, http.StatusConflict)
	if again.header.Get(AcceptedRequestIDHeader) != ds[0].RequestID {
		t.Fatalf("409 names %q, want the request answered 500, %q", again.header.Get(AcceptedRequestIDHeader), ds[0].RequestID)
	}
	wantStatus(t, b.send(PathReply, reply(token, text("x")), ""), http.StatusBadRequest)
	if n := len(b.srv.Accepted()); n != 2 {
		t.Fatalf("accepted %d, want 2: the push and the reply answered 500, neither retry", n)
	}
}

// Faults are shares drawn from a seeded source: the same seed gives the
// same sequence of outcomes, and the share is roughly the one asked for.
func TestFaultSharesAreSeeded(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		b := setup(t, func(c *Config) {
			c.Seed = seed
			c.Faults = Faults{FailRate: 0.3, TooManyRate: 0.2}
			c.RateLimits.Push = Unlimited
		})
		out := make([]int, 200)
		for i := range out {
			out[i] = b.send(PathPush, push(userA, text("x")), "").status
		}
		return out
	}
	a, again := run(7), run(7)
	if !reflect.DeepEqual(a, again) {
		t.Fatal("the same seed gave different fault sequences")
	}
	counts := map[int]int{}
	for _, s := range a {
		counts[s]++
	}
	// Binomial(200, 0.3) and (200, 0.2): these bounds are > 5 sigma wide.
	if counts[500] < 30 || counts[500] > 90 || counts[429] < 15 || counts[429] > 65 || counts[200] < 60 {
		t.Fatalf("outcomes %v, want about 60x500, 40x429, 100x200", counts)
	}
	if reflect.DeepEqual(a, run(8)) {
		t.Fatal("a different seed gave the same 200 outcomes")
	}
}

func TestAdminFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	wantStatus(t, b.must(http.MethodPut, PathAdminFaults, []byte(`{"failRate":1}`), nil), http.StatusOK)
	wantStatus(t, b.send(PathPush, push(userA, text("x")), ""), http.StatusInternalServerError)
	r := b.must(http.MethodGet, PathAdminFaults, nil, nil)
	var f Faults
	if err := jsonUnmarshal(r.body, &f); err != nil || f.FailRate != 1 {
		t.Fatalf("GET faults %s: %v", r.body, err)
	}
	for _, bad := range []string{`{"failRate":1.5}`, `{"failRate":0.6,"tooManyRate":0.6}`, `{"dropRate":-1}`, `{"bogus":1}`, `nope`} {
		if r := b.must(http.MethodPut, PathAdminFaults, []byte(bad), nil); r.status != http.StatusBadRequest {
			t.Errorf("PUT %s: status %d, want 400", bad, r.status)
		}
	}
	if b.srv.Faults().FailRate != 1 {
		t.Fatal("a rejected PUT changed the faults")
	}
	wantStatus(t, b.must(http.MethodPut, PathAdminFaults, []byte(`{}`), nil), http.StatusOK)
	wantStatus(t, b.send(PathPush, push(userA, text("x")), ""), http.StatusOK)
}
