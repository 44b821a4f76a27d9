package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/store"
)

// staticTokenTTL is how long a channel's static access token is reused
// before channels is read again, so an operator's new token is picked up
// without a restart.
const staticTokenTTL = time.Minute

// ErrUnknownChannel means an outbox row names a channel not in channels.
var ErrUnknownChannel = errors.New("channel not configured")

// tokenSource hands out an access token per channel: the static token in
// channels.access_token when set, otherwise a stateless token issued with
// the channel id and secret (POST /oauth2/v3/token), reused until shortly
// before it expires. Stateless tokens cannot be revoked and are "designed
// to be issued each time a channel is used", so caching them is only an
// optimisation. Tokens are never logged.
type tokenSource struct {
	lookup  func(ctx context.Context, channel string) (store.Channel, error)
	client  *http.Client
	baseURL string
	clock   func() time.Time
	logCall func(store.APILogEntry, error) // records the issue call

	mu      sync.Mutex
	entries map[string]*tokenEntry
	bg      sync.WaitGroup // background refreshes
}

type tokenEntry struct {
	mu         sync.Mutex // one issue at a time per channel
	token      string
	refreshAt  time.Time // from then on a fresh token is fetched in the background
	expires    time.Time // after this the token is not handed out
	fetchedAt  time.Time
	refreshing bool
	// failures numbers the foreground fetches that failed for a reason
	// not their caller's own (its context ending), and failErr is the
	// last one's error. A call that queued on mu while such a fetch ran,
	// and finds no valid token, takes that failure as its own answer
	// rather than fetch again: behind a token endpoint that stalls, every
	// send queued for the channel would otherwise wait out a stall of its
	// own in turn, far past the bound a stopping sender is given.
	failures atomic.Uint64
	failErr  error
}

// tokenRecheckAge is how old a cached token may be and still be used for
// a row LINE last answered 401 (Recheck). It bounds the fetches a burst of
// such rows causes to one a second per channel and replica.
const tokenRecheckAge = time.Second

// staticTokenGrace is how long a static token stays in use past its
// re-read while channels cannot be read (the database is down).
const staticTokenGrace = 10 * time.Minute

func newTokenSource(lookup func(context.Context, string) (store.Channel, error), client *http.Client,
	baseURL string, clock func() time.Time, logCall func(store.APILogEntry, error)) *tokenSource {
	return &tokenSource{lookup: lookup, client: client, baseURL: baseURL, clock: clock, logCall: logCall,
		entries: map[string]*tokenEntry{}}
}

func (s *tokenSource) entry(channel string) *tokenEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[channel]
	if e == nil {
		e = &tokenEntry{}
		s.entries[channel] = e
	}
	return e
}

// Get returns a valid token for channel. Only the first call for a
// channel, or one after a 401 or an expiry, waits for channels or the
// token endpoint: a token due for renewal is still handed out while a
// fresh one is fetched in the background, so a renewal never holds up
// the sends queued behind this channel's lock (which made a whole batch
// miss its rate slots once a minute).
func (s *tokenSource) Get(ctx context.Context, channel string) (string, error) {
	return s.get(channel, func() (context.Context, context.CancelFunc) { return ctx, func() {} })
}

// GetBy is Get with a fetch, when one is needed, bounded by deadline. A
// cached token, nearly every call, costs no context and no timer.
func (s *tokenSource) GetBy(deadline time.Time, channel string) (string, error) {
	return s.get(channel, func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), deadline)
	})
}

func (s *tokenSource) get(channel string, fetchCtx func() (context.Context, context.CancelFunc)) (string, error) {
	e := s.entry(channel)
	failedBefore := e.failures.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.clock()
	valid := e.token != "" && now.Before(e.expires)
	if !valid && e.failures.Load() != failedBefore {
		return "", e.failErr // the fetch this call waited for failed
	}
	if valid {
		if !now.Before(e.refreshAt) && !e.refreshing {
			e.refreshing = true
			s.bg.Add(1)
			go s.refresh(channel, e)
		}
		return e.token, nil
	}
	ctx, cancel := fetchCtx()
	defer cancel()
	tok, refreshAt, expires, err := s.fetch(ctx, channel)
	if err != nil {
		if ctx.Err() == nil {
			// Only a failure of the endpoint or of channels answers the
			// calls queued behind: one that ended with this call's own
			// context (a content fetch stopping) says nothing of theirs.
			e.failErr = err
			e.failures.Add(1)
		}
		return "", err
	}
	e.token, e.refreshAt, e.expires, e.fetchedAt = tok, refreshAt, expires, now
	return tok, nil
}

// refresh renews e in the background; on failure the current token is
// kept until it expires and the next Get tries again.
func (s *tokenSource) refresh(channel string, e *tokenEntry) {
	defer s.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, refreshAt, expires, err := s.fetch(ctx, channel)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refreshing = false
	if err == nil && e.token != "" {
		e.token, e.refreshAt, e.expires, e.fetchedAt = tok, refreshAt, expires, s.clock()
	}
}

// wait returns once no background refresh is running.
func (s *tokenSource) wait() { s.bg.Wait() }

// fetch reads channel's static token, or issues a stateless one.
func (s *tokenSource) fetch(ctx context.Context, channel string) (tok string, refreshAt, expires time.Time, err error) {
	ch, err := s.lookup(ctx, channel)
	if errors.Is(err, store.ErrNotFound) {
		return "", refreshAt, expires, fmt.Errorf("channel %s: %w", channel, ErrUnknownChannel)
	}
	if err != nil {
		return "", refreshAt, expires, err
	}
	now := s.clock()
	if ch.AccessToken != "" {
		return ch.AccessToken, now.Add(staticTokenTTL), now.Add(staticTokenTTL + staticTokenGrace), nil
	}
	tok, ttl, err := s.issue(ctx, ch)
	if err != nil {
		return "", refreshAt, expires, err
	}
	// Renew a tenth of the lifetime (at most a minute) early, so a token
	// never expires between being handed out and being used; hand it out
	// until half that margin is left.
	early := min(ttl/10, time.Minute)
	return tok, now.Add(ttl - early), now.Add(ttl - early/2), nil
}

// Recheck drops channel's cached token unless it was fetched within
// tokenRecheckAge, before sending a row whose last attempt LINE answered
// 401. That attempt may have been another replica's: only that replica
// dropped the token then (Invalidate), and a second 401 fails the row, so
// resending it with a token cached here from before the operator's
// rotation would fail a row that channels already holds a good token for.
func (s *tokenSource) Recheck(channel string) {
	e := s.entry(channel)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token != "" && s.clock().Sub(e.fetchedAt) > tokenRecheckAge {
		e.token = ""
	}
}

// Invalidate drops token for channel after LINE answered 401 to it; a
// token already replaced by another goroutine is left alone.
func (s *tokenSource) Invalidate(channel, token string) {
	e := s.entry(channel)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token == token {
		e.token = ""
	}
}

func (s *tokenSource) issue(ctx context.Context, ch store.Channel) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {ch.ID}, "client_secret": {ch.Secret}}
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/oauth2/v3/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("building token request: %w", config.RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := s.clock()
	r, callErr := do(ctx, s.client, req, "")
	entry := store.APILogEntry{CalledAt: start, Method: http.MethodPost, Endpoint: "/oauth2/v3/token",
		Status: r.Status, RequestID: r.RequestID, ChannelID: ch.ID, Duration: s.clock().Sub(start)}
	entry.Error = tokenError(r.Status, r.Body)
	s.logCall(entry, callErr)
	if callErr != nil {
		return "", 0, fmt.Errorf("issuing access token for channel %s: %w", ch.ID, callErr)
	}
	if r.Status != http.StatusOK {
		err := fmt.Errorf("issuing access token for channel %s: status %d", ch.ID, r.Status)
		if entry.Error != "" {
			err = fmt.Errorf("%w: %s", err, entry.Error)
		}
		return "", 0, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.AccessToken == "" || tok.ExpiresIn <= 0 {
		return "", 0, fmt.Errorf("issuing access token for channel %s: unreadable answer", ch.ID)
	}
	return tok.AccessToken, time.Duration(tok.ExpiresIn) * time.Second, nil
}

// tokenError is what of the token endpoint's answer may be kept in
// api_log.error and last_error: for an error status (300 and up) only,
// only LINE's error fields ("error" and "error_description", OAuth-style,
// or "message"), never the raw body. Any 2xx answer may carry an access
// token (a gateway's 201 or 203 as well as LINE's 200), and an error body
// in a shape LINE does not send could echo anything.
func tokenError(status int, body []byte) string {
	if status < http.StatusMultipleChoices {
		return ""
	}
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
	}
	_ = json.Unmarshal(body, &e) // a field of another type is left empty; the rest are read
	var parts []string
	for _, p := range []string{e.Error, e.ErrorDescription, e.Message} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ": ")
}
