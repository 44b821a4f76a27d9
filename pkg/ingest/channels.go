package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
)

var (
	// ErrUnknownChannel means no channel with that id is configured: 404.
	ErrUnknownChannel = errors.New("ingest: unknown channel")
	// ErrSecretsUnavailable means the channel is not cached and the
	// channels table cannot be read now: 503, so LINE redelivers later
	// rather than losing the webhook to a wrong 404.
	ErrSecretsUnavailable = errors.New("ingest: channel secrets unavailable")
)

// Secrets serves channel secrets from memory so ingest keeps accepting
// webhooks while Postgres is down. The cache holds the channel configured
// by environment and every row of the channels table, refreshed
// periodically; a row in the table wins over the environment, so an
// operator rotates a secret with one UPDATE. The environment's channel is
// used only once the table has said it has no such row.
type Secrets struct {
	db      *pgxpool.Pool // nil when ingest runs without a database
	static  map[string]string
	log     *zap.Logger
	now     func() time.Time
	timeout time.Duration // bound on a lookup done while a request waits

	keys *secretbox.Keyring // opens sealed credentials; nil reads plaintext only

	mu     sync.RWMutex
	cached map[string]string
	// reads numbers the reads of the table in the order they start, so
	// the cache keeps, per id, what the latest-started read found: base
	// is the number of the refresh the cache came from, readOf that of a
	// direct lookup that wrote an id since (Refresh, cache).
	reads  uint64
	base   uint64
	readOf map[string]uint64
	// listed, when set (tests), runs between a refresh's read of the
	// table and its swap of the cache.
	listed  func()
	missing map[string]time.Time // negative cache: unknown ids, until when
	fetched map[string]time.Time // last direct lookup per id, to rate-limit them
	// answered is set once the table has answered a read (Read).
	answered atomic.Bool
}

// negativeTTL is how long an unknown channel id is remembered, so a flood
// of requests for a bogus id costs one query, not one per request.
const negativeTTL = 5 * time.Second

// maxMissing bounds the negative cache. Channel ids come from the URL, so
// without a cap a client sending random ids would grow it without limit.
// When it is full, expired entries go first, then arbitrary ones: losing
// an entry costs one more query, never a wrong answer.
const maxMissing = 4096

// NewSecrets builds the cache. db may be nil.
func NewSecrets(db *pgxpool.Pool, static map[string]string, log *zap.Logger, now func() time.Time) *Secrets {
	if now == nil {
		now = time.Now
	}
	s := &Secrets{db: db, static: static, log: log, now: now, timeout: 300 * time.Millisecond,
		cached: map[string]string{}, missing: map[string]time.Time{}, fetched: map[string]time.Time{},
		readOf: map[string]uint64{}}
	// With a table, the environment's channel is only a fallback for a
	// channel the table does not have: serving it before the table was
	// read would accept the very secret an operator rotated away.
	if db == nil {
		for id, sec := range static {
			s.cached[id] = sec
		}
	}
	return s
}

// WithKeys makes s open credentials sealed with k (LINEPIPE_SECRET_KEY).
func (s *Secrets) WithKeys(k *secretbox.Keyring) *Secrets {
	s.keys = k
	return s
}

// Secret returns the channel's secret from the cache, looking the channel
// up in the table on a miss.
func (s *Secrets) Secret(ctx context.Context, id string) (string, error) {
	s.mu.RLock()
	sec, ok := s.cached[id]
	until, neg := s.missing[id]
	s.mu.RUnlock()
	if ok {
		return sec, nil
	}
	if neg && s.now().Before(until) {
		return "", ErrUnknownChannel
	}
	return s.lookup(ctx, id)
}

// Recheck reads the channel again after a signature mismatch, because the
// secret may have been reissued (LINE invalidates the old one at once). It
// returns the current secret and whether it differs from old. Lookups are
// limited to one per channel per second so bad signatures cannot load the
// database.
func (s *Secrets) Recheck(ctx context.Context, id, old string) (string, bool) {
	s.mu.Lock()
	last := s.fetched[id]
	if s.db == nil || s.now().Sub(last) < time.Second {
		s.mu.Unlock()
		return old, false
	}
	s.fetched[id] = s.now()
	s.mu.Unlock()
	sec, err := s.lookup(ctx, id)
	if err != nil || sec == old {
		return old, false
	}
	return sec, true
}

func (s *Secrets) lookup(ctx context.Context, id string) (string, error) {
	if s.db == nil {
		return "", ErrUnknownChannel
	}
	read := s.startRead()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c, err := store.GetChannel(ctx, s.db, id)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		s.answered.Store(true)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.mu.Lock()
		if sec, ok := s.static[id]; ok {
			s.cache(id, sec, read)
			s.mu.Unlock()
			return sec, nil
		}
		s.rememberMissing(id)
		s.mu.Unlock()
		return "", ErrUnknownChannel
	case err != nil:
		return "", ErrSecretsUnavailable
	}
	if c, err = c.Opened(s.keys); err != nil {
		s.log.Warn("channel credentials do not open; check LINEPIPE_SECRET_KEY", zap.Error(err))
		return "", ErrSecretsUnavailable
	}
	s.mu.Lock()
	s.cache(id, c.Secret, read)
	delete(s.missing, id)
	s.mu.Unlock()
	return c.Secret, nil
}

// startRead numbers a read of the table about to start.
func (s *Secrets) startRead() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return s.reads
}

// cache stores what direct lookup number read found for id, unless a read
// that started later already wrote it. The caller holds s.mu.
func (s *Secrets) cache(id, secret string, read uint64) {
	if read > s.base && read > s.readOf[id] {
		s.cached[id] = secret
		s.readOf[id] = read
	}
}

// rememberMissing records id as unknown, keeping the negative cache within
// maxMissing. The caller holds s.mu.
func (s *Secrets) rememberMissing(id string) {
	now := s.now()
	if _, ok := s.missing[id]; !ok && len(s.missing) >= maxMissing {
		for k, until := range s.missing {
			if !now.Before(until) {
				delete(s.missing, k)
			}
		}
		for k := range s.missing {
			if len(s.missing) < maxMissing {
				break
			}
			delete(s.missing, k)
		}
	}
	s.missing[id] = now.Add(negativeTTL)
}

// MissingCached is how many unknown channel ids the negative cache holds.
func (s *Secrets) MissingCached() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.missing)
}

// Refresh reloads every channel from the table. On error the cache is
// kept as it is: stale secrets beat refusing every webhook. An entry a
// direct lookup read after the refresh started its own read is newer,
// and is kept: a rotation's recheck landing mid-refresh would otherwise
// be undone, and LINE's webhooks, signed with the new secret, refused
// until the next refresh.
func (s *Secrets) Refresh(ctx context.Context) error {
	if s.db == nil {
		return nil
	}
	read := s.startRead()
	chans, err := store.ListChannels(ctx, s.db)
	if err != nil {
		return err
	}
	next := make(map[string]string, len(chans)+len(s.static))
	for id, sec := range s.static {
		next[id] = sec
	}
	for _, c := range chans {
		opened, err := c.Opened(s.keys)
		if err != nil {
			// The table wins even when its row cannot be read: no
			// fallback to the environment's secret, which may be the
			// one the operator rotated away. Webhooks get 503 until
			// the key is fixed, and LINE redelivers.
			s.log.Warn("channel credentials do not open; check LINEPIPE_SECRET_KEY", zap.Error(err))
			delete(next, c.ID)
			continue
		}
		next[c.ID] = opened.Secret
	}
	if s.listed != nil {
		s.listed()
	}
	s.mu.Lock()
	if read < s.base {
		s.mu.Unlock() // a refresh that started later has already swapped
		return nil
	}
	for id, r := range s.readOf {
		if sec, ok := s.cached[id]; ok && r > read {
			next[id] = sec
		} else {
			delete(s.readOf, id)
		}
	}
	s.base = read
	s.cached = next
	s.answered.Store(true)
	s.missing = map[string]time.Time{}
	s.mu.Unlock()
	return nil
}

// Read reports whether ingest can tell a channel's secret: without a
// database, always; with one, once the table has answered a refresh or a
// webhook's lookup. Before that every webhook gets 503, so ingest is not
// ready; after it, an outage of the table leaves the cached secrets in
// service.
func (s *Secrets) Read() bool { return s.db == nil || s.answered.Load() }

// Run refreshes the cache every interval until ctx ends.
func (s *Secrets) Run(ctx context.Context, interval time.Duration) {
	if s.db == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				s.log.Warn("channels table unreadable; serving cached secrets", zap.Error(err))
			}
			failing = true
		} else if failing {
			s.log.Info("channels table readable again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
