package linefake

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"
)

// RetryKeyHeader and the response headers LINE uses around it.
const (
	RetryKeyHeader          = "X-Line-Retry-Key"
	RequestIDHeader         = "X-Line-Request-Id"
	AcceptedRequestIDHeader = "X-Line-Accepted-Request-Id"
)

// uuidPattern is the hexadecimal 8-4-4-4-12 form LINE's reference shows
// ("123e4567-e89b-12d3-a456-426614174000"). What LINE does with any other
// value is UNCONFIRMED; the emulator takes the strict reading and answers
// 400, so a client that would be rejected by a strict LINE fails here
// first. Braced, URN and dash-less forms are rejected for the same reason.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// retryKeys remembers accepted X-Line-Retry-Key values per channel for the
// retry window (24 h at LINE). A key is reserved while its request is in
// flight. LINE's behaviour for two concurrent requests with one key is
// UNCONFIRMED; the emulator takes the safe reading: the second waits for
// the first to finish, then gets 409 if the first was accepted, or is
// handled as a new request if the first was not. Two requests with one key
// are therefore never both accepted within the window. The registry is
// keyed on the key alone, not the body: a reused key with a changed body
// also gets 409, as reported against LINE in line-bot-sdk-go#435.
type retryKeys struct {
	mu        sync.Mutex
	window    time.Duration
	keys      map[string]*keyEntry // channel|lowercased key
	lastPurge time.Time
	waiting   int // requests waiting on an in-flight key, for tests
}

type keyEntry struct {
	done       chan struct{} // closed when the in-flight request finishes
	accepted   bool
	requestID  string
	sent       []SentMessage
	acceptedAt time.Time
}

// acceptedKey is what a 409 reports about the request that won the key.
type acceptedKey struct {
	RequestID string
	Sent      []SentMessage
}

// reservation is held by the request that owns a key until it finishes.
type reservation struct {
	rk    *retryKeys
	k     string
	entry *keyEntry
}

func newRetryKeys(window time.Duration) *retryKeys {
	return &retryKeys{window: window, keys: map[string]*keyEntry{}}
}

func (r *retryKeys) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = map[string]*keyEntry{}
}

// reserve claims key for one request. It returns the accepted request when
// the key is already taken within the window, or a reservation the caller
// must finish. It waits while another request holds the key.
func (r *retryKeys) reserve(ctx context.Context, channel, key string, now func() time.Time) (*acceptedKey, *reservation, error) {
	k := channel + "|" + strings.ToLower(key)
	for {
		r.mu.Lock()
		t := now()
		r.purge(t)
		e := r.keys[k]
		if e != nil && e.accepted && t.Sub(e.acceptedAt) < r.window {
			a := &acceptedKey{RequestID: e.requestID, Sent: e.sent}
			r.mu.Unlock()
			return a, nil, nil
		}
		if e == nil || e.accepted {
			res := &reservation{rk: r, k: k, entry: &keyEntry{done: make(chan struct{})}}
			r.keys[k] = res.entry
			r.mu.Unlock()
			return nil, res, nil
		}
		wait := e.done
		r.waiting++
		r.mu.Unlock()
		var err error
		select {
		case <-wait:
		case <-ctx.Done():
			err = ctx.Err()
		}
		r.mu.Lock()
		r.waiting--
		r.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	}
}

// finish records the request's outcome and wakes any waiter. A request
// that was not accepted frees the key, since LINE only remembers keys of
// accepted requests.
func (res *reservation) finish(accepted bool, requestID string, sent []SentMessage, at time.Time) {
	r := res.rk
	r.mu.Lock()
	defer r.mu.Unlock()
	if accepted {
		res.entry.accepted = true
		res.entry.requestID = requestID
		res.entry.sent = sent
		res.entry.acceptedAt = at
	} else if r.keys[res.k] == res.entry {
		delete(r.keys, res.k)
	}
	close(res.entry.done)
}

// purge drops keys older than the window, at most once a minute of clock
// time, so the map stays bounded by what the window can hold.
func (r *retryKeys) purge(now time.Time) {
	if now.Sub(r.lastPurge) < time.Minute {
		return
	}
	r.lastPurge = now
	for k, e := range r.keys {
		if e.accepted && now.Sub(e.acceptedAt) >= r.window {
			delete(r.keys, k)
		}
	}
}

// waiters is how many requests wait on an in-flight key right now.
func (r *retryKeys) waiters() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting
}
