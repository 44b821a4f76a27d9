package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// tokenServer answers POST /oauth2/v3/token like LINE's stateless token
// endpoint, numbering the tokens it issues.
func tokenServer(t *testing.T, secret string, expiresIn int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/v3/token" || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("client_secret") != secret {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusBadRequest)
			return
		}
		i := n.Add(1)
		fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":%d,"token_type":"Bearer"}`, i, expiresIn)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func channels(m map[string]store.Channel) func(context.Context, string) (store.Channel, error) {
	var mu sync.Mutex
	return func(_ context.Context, id string) (store.Channel, error) {
		mu.Lock()
		defer mu.Unlock()
		c, ok := m[id]
		if !ok {
			return c, store.ErrNotFound
		}
		return c, nil
	}
}

func TestTokenSourceStateless(t *testing.T) {
	srv, issued := tokenServer(t, "sec", 900)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	var logged []store.APILogEntry
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}, "bad": {ID: "bad", Secret: "nope"}}),
		srv.Client(), srv.URL, clock, func(e store.APILogEntry, _ error) { logged = append(logged, e) })
	ctx := context.Background()

	get := func(ch string) string {
		t.Helper()
		tok, err := ts.Get(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if a, b := get("c1"), get("c1"); a != "tok-1" || b != "tok-1" || issued.Load() != 1 {
		t.Fatalf("tokens %s %s after %d issues: want one cached token", a, b, issued.Load())
	}
	now = now.Add(13*time.Minute + 59*time.Second) // renewed a minute early
	if tok := get("c1"); tok != "tok-1" {
		t.Fatalf("token renewed too early: %s", tok)
	}
	now = now.Add(2 * time.Second)
	// Due for renewal: still handed out, while a fresh one is issued in
	// the background, so no send waits for the token endpoint.
	if tok := get("c1"); tok != "tok-1" {
		t.Fatalf("a token due for renewal was not handed out while renewed: %s", tok)
	}
	ts.wait()
	if tok := get("c1"); tok != "tok-2" {
		t.Fatalf("token not renewed before expiry: %s", tok)
	}
	ts.Invalidate("c1", "tok-1") // stale: leaves tok-2 alone
	if tok := get("c1"); tok != "tok-2" {
		t.Fatalf("stale invalidation dropped the current token: %s", tok)
	}
	ts.Invalidate("c1", "tok-2")
	if tok := get("c1"); tok != "tok-3" {
		t.Fatalf("401 did not force a new token: %s", tok)
	}
	if _, err := ts.Get(ctx, "bad"); err == nil {
		t.Fatal("a rejected secret gave a token")
	}
	if _, err := ts.Get(ctx, "missing"); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
	if len(logged) != 4 || logged[0].Endpoint != "/oauth2/v3/token" || logged[3].Status != 400 {
		t.Fatalf("token calls logged: %+v", logged)
	}
}

func TestTokenSourceStatic(t *testing.T) {
	srv, issued := tokenServer(t, "sec", 900)
	m := map[string]store.Channel{"c1": {ID: "c1", Secret: "sec", AccessToken: "static-1"}}
	ts := newTokenSource(channels(m), srv.Client(), srv.URL, time.Now, func(store.APILogEntry, error) {})
	tok, err := ts.Get(context.Background(), "c1")
	if err != nil || tok != "static-1" || issued.Load() != 0 {
		t.Fatalf("static token: %q %v, %d issued", tok, err, issued.Load())
	}
}

func TestTokenSourceConcurrentIssueOnce(t *testing.T) {
	srv, issued := tokenServer(t, "sec", 900)
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}}),
		srv.Client(), srv.URL, time.Now, func(store.APILogEntry, error) {})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.Get(context.Background(), "c1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if issued.Load() != 1 {
		t.Fatalf("%d tokens issued for one channel at once, want 1", issued.Load())
	}
}

// TestTokenSourceRecheck: before a row another replica got 401 for, a
// token cached here longer than tokenRecheckAge is read again, so an
// operator's rotation in channels is picked up at once; one fetched
// within it is reused, so a burst of such rows reads channels once.
func TestTokenSourceRecheck(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	token, reads := "static-1", 0
	lookup := func(context.Context, string) (store.Channel, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		return store.Channel{ID: "c1", Secret: "sec", AccessToken: token}, nil
	}
	ts := newTokenSource(lookup, http.DefaultClient, "http://127.0.0.1:1", clock, func(store.APILogEntry, error) {})
	get := func() string {
		t.Helper()
		tok, err := ts.Get(context.Background(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if tok := get(); tok != "static-1" {
		t.Fatalf("first token %q", tok)
	}
	mu.Lock()
	token = "static-2" // the operator rotates it in channels
	mu.Unlock()

	advance(tokenRecheckAge / 2)
	ts.Recheck("c1")
	if tok := get(); tok != "static-1" || reads != 1 {
		t.Fatalf("a token fetched %s ago was read again: %q after %d reads", tokenRecheckAge/2, tok, reads)
	}
	advance(tokenRecheckAge)
	for range 50 { // a burst of rows LINE last answered 401
		ts.Recheck("c1")
		if tok := get(); tok != "static-2" {
			t.Fatalf("after Recheck on a token cached %s: %q, want the rotated static-2", 3*tokenRecheckAge/2, tok)
		}
	}
	if reads != 2 {
		t.Fatalf("channels read %d times for a burst of rechecks, want 2", reads)
	}
}

// TestTokenErrorKeepsOnlyLINEErrorFields: of the token endpoint's
// answer, api_log.error and the returned error (the row's last_error)
// keep only LINE's error fields, and only for an error status: a 2xx
// other than 200 (a gateway's 201 or 203) may carry a token, and an
// error body LINE does not send may echo anything.
func TestTokenErrorKeepsOnlyLINEErrorFields(t *testing.T) {
	t.Parallel()
	answers := map[string]struct {
		status int
		body   string
	}{
		"c201": {201, `{"access_token":"tok-secret-201","expires_in":900,"token_type":"Bearer"}`},
		"c203": {203, `{"access_token":"tok-secret-203","expires_in":900,"token_type":"Bearer"}`},
		"c400": {400, `{"error":"invalid_client","error_description":"invalid client_secret","access_token":"tok-secret-400"}`},
		"c429": {429, `{"message":"Too many requests","details":["tok-secret-429"]}`},
		"c502": {502, `<html>bad gateway tok-secret-502</html>`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.PostFormValue("client_id")]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	m := map[string]store.Channel{}
	for id := range answers {
		m[id] = store.Channel{ID: id, Secret: "sec"}
	}
	var mu sync.Mutex
	logged := map[string]store.APILogEntry{}
	ts := newTokenSource(channels(m), srv.Client(), srv.URL, func() time.Time { return time.Unix(1_700_000_000, 0) },
		func(e store.APILogEntry, _ error) { mu.Lock(); logged[e.ChannelID] = e; mu.Unlock() })
	want := map[string]string{"c201": "", "c203": "", "c400": "invalid_client: invalid client_secret",
		"c429": "Too many requests", "c502": ""}
	for id, text := range want {
		_, err := ts.Get(context.Background(), id)
		if err == nil {
			t.Fatalf("%s: a token was handed out for status %d", id, answers[id].status)
		}
		mu.Lock()
		e := logged[id]
		mu.Unlock()
		if e.Error != text || e.Status != answers[id].status {
			t.Errorf("%s: api_log status %d error %q, want %d %q", id, e.Status, e.Error, answers[id].status, text)
		}
		if strings.Contains(err.Error(), "tok-secret") || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: returned error %q, want only %q of the answer", id, err, text)
		}
	}
}

// TestTokenFetchFailureAnswersTheCallsQueuedBehindIt: while a channel's
// token fetch stalls and then fails, the calls queued behind it take its
// failure as their answer instead of each fetching (and stalling) in
// turn: a stopping sender's sends for the channel then end within one
// stall, not one per queued send. A call after the failure fetches anew.
func TestTokenFetchFailureAnswersTheCallsQueuedBehindIt(t *testing.T) {
	t.Parallel()
	const stall = 2 * time.Second
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(stall)
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}}),
		srv.Client(), srv.URL, time.Now, func(store.APILogEntry, error) {})
	const queued = 8
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, queued)
	for range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ts.GetBy(time.Now().Add(time.Minute), "c1")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a token was handed out by an endpoint that only fails")
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d token requests for %d calls queued behind one failing fetch, want 1 (took %s)", n, queued, time.Since(start))
	}
	if _, err := ts.GetBy(time.Now().Add(time.Minute), "c1"); err == nil || requests.Load() != 2 {
		t.Fatalf("a call after the failure: %v, %d requests; want a fetch of its own that fails", err, requests.Load())
	}
}

// TestTokenFetchEndedByItsCallerIsNotShared: a fetch that ends because its
// own caller's context did (a content fetch stopping) is no answer for
// the calls queued behind it: they fetch, and get a token.
func TestTokenFetchEndedByItsCallerIsNotShared(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(w, `{"access_token":"tok","expires_in":900,"token_type":"Bearer"}`)
	}))
	t.Cleanup(srv.Close)
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}}),
		srv.Client(), srv.URL, time.Now, func(store.APILogEntry, error) {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() { _, err := ts.Get(ctx, "c1"); first <- err }()
	time.Sleep(20 * time.Millisecond) // the first call holds the channel's lock
	tok, err := ts.GetBy(time.Now().Add(time.Minute), "c1")
	if err != nil || tok != "tok" {
		t.Fatalf("a call queued behind a fetch its caller cancelled: %q, %v; want a token of its own", tok, err)
	}
	if err := <-first; err == nil {
		t.Fatal("the cancelled call got a token")
	}
}

// TestTokenFetchFailureAnswersQueuedCallsOnceTheTokenExpired: the queued
// calls share a failed fetch also when the channel's token is cached but
// expired, the case of a stalled endpoint whose background renewals
// failed until the token ran out.
func TestTokenFetchFailureAnswersQueuedCallsOnceTheTokenExpired(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failing.Load() {
			time.Sleep(2 * time.Second)
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"access_token":"tok","expires_in":900,"token_type":"Bearer"}`)
	}))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}}),
		srv.Client(), srv.URL, clock, func(store.APILogEntry, error) {})
	if _, err := ts.GetBy(time.Now().Add(time.Minute), "c1"); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	mu.Lock()
	now = now.Add(time.Hour) // past the token's expiry
	mu.Unlock()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.GetBy(time.Now().Add(time.Minute), "c1"); err == nil {
				t.Error("an expired token, or none, was handed out")
			}
		}()
	}
	wg.Wait()
	if n := requests.Load(); n != 2 {
		t.Fatalf("%d token requests (the first issue included) for 6 calls queued behind one failing fetch, want 2", n)
	}
}
