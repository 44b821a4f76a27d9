package linefake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors for credential outcomes. The HTTP layer maps them to LINE's
// status codes; Go callers (tests) can branch on them.
var (
	ErrUnknownChannel    = errors.New("linefake: unknown channel")
	ErrInvalidReplyToken = errors.New("linefake: invalid reply token")
)

const statelessPrefix = "lf3."

// channels holds the channels and answers "which channel does this Bearer
// token belong to". Static tokens are looked up; stateless tokens carry
// their channel and expiry, sealed with an HMAC key that lives only in
// this process, so issuing them costs no memory, as at LINE, where they
// cannot be revoked either.
type channels struct {
	mu     sync.RWMutex
	byID   map[string]Channel
	static map[string]string // token -> channel id
	key    []byte
	ttl    time.Duration
}

func newChannels(ttl time.Duration) *channels {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("linefake: no crypto randomness: " + err.Error())
	}
	return &channels{byID: map[string]Channel{}, static: map[string]string{}, key: key, ttl: ttl}
}

// add registers or replaces ch. Replacing drops the old static tokens, as
// reissuing a long-lived token at LINE invalidates the old one.
func (c *channels) add(ch Channel) {
	if ch.BotUserID == "" {
		sum := sha256.Sum256([]byte("bot:" + ch.ID))
		ch.BotUserID = "U" + hex.EncodeToString(sum[:16])
	}
	ch.AccessTokens = append([]string(nil), ch.AccessTokens...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[ch.ID]; ok {
		for _, t := range old.AccessTokens {
			delete(c.static, t)
		}
	}
	c.byID[ch.ID] = ch
	for _, t := range ch.AccessTokens {
		c.static[t] = ch.ID
	}
}

func (c *channels) get(id string) (Channel, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, ok := c.byID[id]
	return ch, ok
}

// issue returns a stateless token for the channel when secret matches.
func (c *channels) issue(id, secret string, now time.Time) (string, error) {
	ch, ok := c.get(id)
	if !ok || subtle.ConstantTimeCompare([]byte(ch.Secret), []byte(secret)) != 1 {
		return "", ErrUnknownChannel
	}
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	payload := id + "\x00" + strconv.FormatInt(now.Add(c.ttl).UnixMilli(), 10) + "\x00" + hex.EncodeToString(nonce)
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return statelessPrefix + enc + "." + c.seal(enc), nil
}

func (c *channels) seal(s string) string {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// authenticate maps a Bearer token to its channel id. A stateless token
// is valid until 15 minutes (by the injected clock) after it was issued.
func (c *channels) authenticate(token string, now time.Time) (string, bool) {
	if token == "" {
		return "", false
	}
	if rest, ok := strings.CutPrefix(token, statelessPrefix); ok {
		return c.verifyStateless(rest, now)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.static[token]
	return id, ok
}

func (c *channels) verifyStateless(rest string, now time.Time) (string, bool) {
	enc, mac, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(c.seal(enc))) {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	f := strings.Split(string(raw), "\x00")
	if len(f) != 3 {
		return "", false
	}
	exp, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || !now.Before(time.UnixMilli(exp)) {
		return "", false
	}
	if _, ok := c.get(f[0]); !ok {
		return "", false
	}
	return f[0], true
}

// replyTokens issues and consumes reply tokens with LINE's rules: single
// use, valid ReplyTokenTTL after the webhook; a redelivered event's token
// valid ReplyTokenTTL after the redelivery unless it was used or the event
// is older than RedeliveredReplyLimit.
type replyTokens struct {
	mu        sync.Mutex
	ttl       time.Duration
	redeliver time.Duration
	tokens    map[string]*replyEntry
	lastPurge time.Time
}

type replyEntry struct {
	channel  string
	issuedAt time.Time // when the (re)delivery carrying it was sent
	eventAt  time.Time
	used     bool
	// redelivered tokens also die RedeliveredReplyLimit after the event.
	redelivered bool
}

func newReplyTokens(ttl, redeliver time.Duration) *replyTokens {
	return &replyTokens{ttl: ttl, redeliver: redeliver, tokens: map[string]*replyEntry{}}
}

func (r *replyTokens) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens = map[string]*replyEntry{}
}

func (r *replyTokens) add(token, channel string, now, eventAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.purge(now)
	r.tokens[token] = &replyEntry{channel: channel, issuedAt: now, eventAt: eventAt}
}

// rearm restarts a token's TTL for a redelivery. It reports whether the
// token will work: not if it was used or the event is too old.
func (r *replyTokens) rearm(token string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.tokens[token]
	if e == nil || e.used || now.Sub(e.eventAt) >= r.redeliver {
		return false
	}
	e.issuedAt = now
	e.redelivered = true
	return true
}

// consume spends token for channel. Unknown, used, expired and another
// channel's tokens are all the same 400 at LINE.
func (r *replyTokens) consume(token, channel string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.tokens[token]
	if e == nil || e.used || e.channel != channel || now.Sub(e.issuedAt) >= r.ttl ||
		(e.redelivered && now.Sub(e.eventAt) >= r.redeliver) {
		return ErrInvalidReplyToken
	}
	e.used = true
	return nil
}

// purge forgets tokens that can never work again, at most once a minute.
func (r *replyTokens) purge(now time.Time) {
	if now.Sub(r.lastPurge) < time.Minute {
		return
	}
	r.lastPurge = now
	for t, e := range r.tokens {
		if now.Sub(e.issuedAt) >= r.ttl && now.Sub(e.eventAt) >= r.redeliver {
			delete(r.tokens, t)
		}
	}
}
