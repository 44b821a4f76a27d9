package linefake

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRetryKeyConflictOnPushRepeatsSentMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	key := uuid.NewString()
	first := b.send(PathPush, push(userA, text("a"), text("b")), key)
	wantStatus(t, first, http.StatusOK)
	firstID := first.header.Get(RequestIDHeader)

	again := b.send(PathPush, push(userA, text("a"), text("b")), key)
	wantStatus(t, again, http.StatusConflict)
	if got := again.header.Get("x-line-accepted-request-id"); got != firstID {
		t.Fatalf("x-line-accepted-request-id %q, want the accepted request's %q", got, firstID)
	}
	if again.header.Get(RequestIDHeader) == firstID {
		t.Fatal("the 409 reused the accepted request's id; every request gets its own")
	}
	e := again.errorBody(t)
	if e.Message != "The retry key is already accepted" {
		t.Fatalf("message %q", e.Message)
	}
	if !reflect.DeepEqual(e.SentMessages, first.sent(t)) {
		t.Fatalf("409 sentMessages %+v, want the accepted %+v", e.SentMessages, first.sent(t))
	}
	// Keys are UUIDs, so case does not make a new key.
	wantStatus(t, b.send(PathPush, push(userA, text("a"), text("b")), strings.ToUpper(key)), http.StatusConflict)
	if n := len(b.srv.Accepted()); n != 1 {
		t.Fatalf("accepted %d sends for one key, want 1", n)
	}
	if got := b.srv.Stats().Count("push", 409); got != 2 {
		t.Fatalf("stats show %d 409s, want 2", got)
	}
}

func TestRetryKeyConflictOnOtherEndpointsCarriesOnlyMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	bodies := map[string]any{
		PathMulticast:  map[string]any{"to": []string{userA, userB}, "messages": texts(1)},
		PathBroadcast:  map[string]any{"messages": texts(1)},
		PathNarrowcast: map[string]any{"messages": texts(1)},
	}
	for path, body := range bodies {
		key := uuid.NewString()
		first := b.send(path, body, key)
		if first.status/100 != 2 {
			t.Fatalf("%s first status %d", path, first.status)
		}
		r := b.send(path, body, key)
		wantStatus(t, r, http.StatusConflict)
		if r.header.Get(AcceptedRequestIDHeader) != first.header.Get(RequestIDHeader) {
			t.Fatalf("%s: accepted request id %q, want %q", path, r.header.Get(AcceptedRequestIDHeader), first.header.Get(RequestIDHeader))
		}
		if strings.Contains(string(r.body), "sentMessages") || r.errorBody(t).Message != msgKeyAccepted {
			t.Fatalf("%s 409 body %s, want only the message", path, r.body)
		}
	}
	if n := len(b.srv.Accepted()); n != len(bodies) {
		t.Fatalf("accepted %d, want %d", n, len(bodies))
	}
}

func TestRetryKeyRejectedOnReplyAndWhenNotUUID(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tok := b.srv.IssueReplyToken(testChannel)
	r := b.send(PathReply, map[string]any{"replyToken": tok, "messages": texts(1)}, uuid.NewString())
	wantStatus(t, r, http.StatusBadRequest)
	for _, bad := range []string{"not-a-uuid", "123e4567e89b12d3a456426614174000", "{123e4567-e89b-12d3-a456-426614174000}",
		"urn:uuid:123e4567-e89b-12d3-a456-426614174000"} {
		r := b.send(PathPush, push(userA, text("a")), bad)
		if r.status != http.StatusBadRequest {
			t.Errorf("key %q: status %d, want 400", bad, r.status)
		}
	}
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("accepted %d sends with a rejected key", n)
	}
	tr := b.must(http.MethodPost, PathToken, []byte("grant_type=client_credentials&client_id="+testChannel+"&client_secret="+testSecret),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", RetryKeyHeader: uuid.NewString()})
	wantStatus(t, tr, http.StatusBadRequest)
	// The reply was refused before the token was spent: it still works.
	wantStatus(t, b.send(PathReply, map[string]any{"replyToken": tok, "messages": texts(1)}, ""), http.StatusOK)
}

func TestRetryKeyWindowIs24Hours(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	key := uuid.NewString()
	body := push(userA, text("once"))
	wantStatus(t, b.send(PathPush, body, key), http.StatusOK)
	b.clock.Advance(24*time.Hour - time.Millisecond)
	wantStatus(t, b.send(PathPush, body, key), http.StatusConflict)
	b.clock.Advance(time.Millisecond)
	// LINE: after 24 hours the same key is a new request, and the message
	// goes out again. The ledger must show that duplicate.
	wantStatus(t, b.send(PathPush, body, key), http.StatusOK)
	wantStatus(t, b.send(PathPush, body, key), http.StatusConflict)

	ds := b.srv.Accepted()
	if len(ds) != 2 || ds[0].RetryKeyReuse != 0 || ds[1].RetryKeyReuse != 1 {
		t.Fatalf("deliveries %+v, want two, the second marked as a key reuse", ds)
	}
	dups := Duplicates(ds, ByRetryKey)
	if len(dups) != 1 || len(dups[testChannel+"|"+key]) != 2 {
		t.Fatalf("duplicates by retry key %v, want one group of two", dups)
	}
	if byText := Duplicates(ds, BodyField("messages.0.text")); len(byText) != 1 {
		t.Fatalf("duplicates by text %v, want one group", byText)
	}
}

func TestConcurrentSameKeyAcceptedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	key := uuid.NewString()
	const n = 16
	statuses := make([]int, n)
	accepted := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.send(PathPush, push(userA, text("x")), key)
			statuses[i] = r.status
			accepted[i] = r.header.Get(AcceptedRequestIDHeader)
		}()
	}
	wg.Wait()
	ds := b.srv.Accepted()
	if len(ds) != 1 {
		t.Fatalf("accepted %d sends for one key, want 1", len(ds))
	}
	ok := 0
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			if accepted[i] != ds[0].RequestID {
				t.Fatalf("409 names %q, want the accepted %q", accepted[i], ds[0].RequestID)
			}
		default:
			t.Fatalf("status %d, want 200 or 409", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d requests got 200, want exactly 1", ok)
	}
}

// A second request arriving while the first holds the key waits, then
// answers 409 with the first's id: never a second acceptance.
func TestInFlightKeyMakesSecondRequestWait(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	b.srv.beforeDeliver = func(sendCall) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	key := uuid.NewString()
	firstC, secondC := make(chan response, 1), make(chan response, 1)
	go func() { firstC <- b.send(PathPush, push(userA, text("x")), key) }()
	<-entered
	go func() { secondC <- b.send(PathPush, push(userA, text("x")), key) }()
	waitFor(t, "the second request to wait on the key", func() bool { return b.srv.keys.waiters() == 1 })
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("accepted %d while the first request was held", n)
	}
	close(release)
	first, second := <-firstC, <-secondC
	wantStatus(t, first, http.StatusOK)
	wantStatus(t, second, http.StatusConflict)
	if second.header.Get(AcceptedRequestIDHeader) != first.header.Get(RequestIDHeader) {
		t.Fatal("the waiting request's 409 does not name the accepted request")
	}
}

// A request that is not accepted frees its key: the waiter then runs as a
// new request, since LINE remembers only accepted keys.
func TestFailedReservationFreesKeyForWaiter(t *testing.T) {
	t.Parallel()
	rk := newRetryKeys(time.Hour)
	now := func() time.Time { return time.Unix(0, 0) }
	_, res, err := rk.reserve(context.Background(), "c", "k", now)
	if err != nil || res == nil {
		t.Fatalf("first reserve: %v %v", res, err)
	}
	got := make(chan *reservation)
	go func() {
		prior, r2, err := rk.reserve(context.Background(), "c", "K", now)
		if err != nil || prior != nil {
			t.Errorf("waiter: prior %v err %v", prior, err)
		}
		got <- r2
	}()
	waitFor(t, "the waiter", func() bool { return rk.waiters() == 1 })
	res.finish(false, "", nil, now())
	r2 := <-got
	if r2 == nil {
		t.Fatal("waiter got no reservation after the first failed")
	}
	r2.finish(true, "req-2", nil, now())
	prior, _, _ := rk.reserve(context.Background(), "c", "k", now)
	if prior == nil || prior.RequestID != "req-2" {
		t.Fatalf("after acceptance: %+v, want req-2", prior)
	}
	// A waiter whose client gives up stops waiting.
	_, r3, _ := rk.reserve(context.Background(), "c", "other", now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := rk.reserve(ctx, "c", "other", now); err == nil {
		t.Fatal("a cancelled waiter did not return")
	}
	r3.finish(false, "", nil, now())
}

func TestExpiredRetryKeysArePurged(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	wantStatus(t, b.send(PathPush, push(userA, text("x")), uuid.NewString()), http.StatusOK)
	b.clock.Advance(time.Hour)
	kept := uuid.NewString()
	wantStatus(t, b.send(PathPush, push(userA, text("x")), kept), http.StatusOK)
	b.clock.Advance(23*time.Hour + time.Minute)
	wantStatus(t, b.send(PathPush, push(userA, text("x")), uuid.NewString()), http.StatusOK)
	b.srv.keys.mu.Lock()
	n := len(b.srv.keys.keys)
	b.srv.keys.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d keys remembered, want 2 (the first is past 24h)", n)
	}
	wantStatus(t, b.send(PathPush, push(userA, text("x")), kept), http.StatusConflict)
}

// The official Go SDK sends an empty X-Line-Retry-Key when given no key;
// the emulator treats it as absent on every endpoint, reply included.
func TestEmptyRetryKeyCountsAsAbsent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	h := map[string]string{"Authorization": "Bearer " + testToken, RetryKeyHeader: ""}
	wantStatus(t, b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("x"))), h), http.StatusOK)
	wantStatus(t, b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("x"))), h), http.StatusOK)
	tok := b.srv.IssueReplyToken(testChannel)
	wantStatus(t, b.must(http.MethodPost, PathReply, mustJSON(t, reply(tok, text("x"))), h), http.StatusOK)
	ds := b.srv.Accepted()
	if len(ds) != 3 || ds[0].RetryKey != "" || len(Duplicates(ds, ByRetryKey)) != 0 {
		t.Fatalf("deliveries %+v, want three without a key", ds)
	}
}
