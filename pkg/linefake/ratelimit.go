package linefake

import (
	"sort"
	"sync"
	"time"
)

// RateWindow reports, for one channel and endpoint, the most requests seen
// within any one-second window. Attempts counts every authenticated
// request; Admitted counts those the rate limiter let through (LINE counts
// a retry against the limit too, so 409s are admitted requests). A test
// asserts that a client kept under a rate with MaxAttempts, and that no
// 429 was needed to keep it there with the stats' status counts.
type RateWindow struct {
	Channel     string `json:"channel"`
	Endpoint    string `json:"endpoint"`
	MaxAttempts int    `json:"maxAttemptsPerSecond"`
	MaxAdmitted int    `json:"maxAdmittedPerSecond"`
}

// limiter applies LINE's token buckets and the per-user cap, and keeps the
// one-second maxima. One mutex: the work under it is tiny.
type limiter struct {
	mu      sync.Mutex
	limits  RateLimits
	cap     UserCap
	buckets map[string]*bucket     // channel|endpoint
	windows map[string]*windowPair // channel|endpoint
	users   map[string][]capEntry  // channel|user
}

type bucket struct {
	tokens float64
	last   time.Time
}

type windowPair struct {
	channel, endpoint  string
	attempts, admitted slidingMax
}

type capEntry struct {
	at       time.Time
	messages int
}

func newLimiter(l RateLimits, c UserCap) *limiter {
	lm := &limiter{limits: l, cap: c}
	lm.reset()
	return lm
}

func (l *limiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets = map[string]*bucket{}
	l.windows = map[string]*windowPair{}
	l.users = map[string][]capEntry{}
}

func (l *limiter) limitFor(ep string) Limit {
	switch ep {
	case epPush:
		return l.limits.Push
	case epReply:
		return l.limits.Reply
	case epMulticast:
		return l.limits.Multicast
	case epNarrowcast:
		return l.limits.Narrowcast
	case epBroadcast:
		return l.limits.Broadcast
	case EndpointContent, EndpointTranscoding:
		return l.limits.Other
	}
	return Unlimited
}

// allow takes one token from the channel's bucket for ep, refilling it
// continuously at Requests/Per up to Requests. It reports false when the
// bucket is empty: LINE's 429.
// The clock is read under the lock, so that requests timed by their
// handlers reach the one-second windows in time order; arrival stamps
// (arrival.go) may not, and the windows put them in place.
func (l *limiter) allow(channel, ep string, clock func() time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := clock()
	k := channel + "|" + ep
	w := l.windows[k]
	if w == nil {
		w = &windowPair{channel: channel, endpoint: ep}
		l.windows[k] = w
	}
	w.attempts.add(now)
	lim := l.limitFor(ep)
	if lim.Requests < 0 {
		w.admitted.add(now)
		return true
	}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: float64(lim.Requests), last: now}
		l.buckets[k] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(lim.Requests) * el.Seconds() / lim.Per.Seconds()
		if b.tokens > float64(lim.Requests) {
			b.tokens = float64(lim.Requests)
		}
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	w.admitted.add(now)
	return true
}

// takeUserCap counts n messages to user against the cap and reports false,
// counting nothing, when they would exceed it.
func (l *limiter) takeUserCap(channel, user string, n int, now time.Time) bool {
	if l.cap.Messages <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := channel + "|" + user
	kept := l.users[k][:0]
	total := 0
	for _, e := range l.users[k] {
		if now.Sub(e.at) < l.cap.Per {
			kept = append(kept, e)
			total += e.messages
		}
	}
	if total+n > l.cap.Messages {
		l.users[k] = kept
		return false
	}
	l.users[k] = append(kept, capEntry{at: now, messages: n})
	return true
}

func (l *limiter) rateWindows() []RateWindow {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]RateWindow, 0, len(l.windows))
	for _, w := range l.windows {
		out = append(out, RateWindow{Channel: w.channel, Endpoint: w.endpoint,
			MaxAttempts: w.attempts.max, MaxAdmitted: w.admitted.max})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}

// BusiestSecond is the most of times (in any order) within any window of
// one second ending at one of them: the measure the emulator keeps for
// the requests it receives, applied to times taken elsewhere (a client's
// own record of when it sent them).
func BusiestSecond(times []time.Time) int {
	var s slidingMax
	for _, t := range times {
		s.add(t)
	}
	return s.max
}

// slidingMax tracks the largest number of events within any window of one
// second ending at an event. Events may come out of time order (a
// request's arrival stamp is older than one handled before it): each is
// put in its place, and the windows ending at it and at the later events
// within a second of it are counted again. The last slidingKeep of
// events are kept, so an event up to a second late is counted exactly,
// and memory is bounded by the rate itself.
type slidingMax struct {
	times []time.Time // sorted; times[head:] are within slidingKeep of the newest
	head  int
	max   int
}

const slidingKeep = 2 * time.Second

func (s *slidingMax) add(t time.Time) {
	i := len(s.times)
	s.times = append(s.times, t)
	for i > s.head && s.times[i-1].After(t) {
		s.times[i] = s.times[i-1]
		i--
	}
	s.times[i] = t
	// lo is the first event within a second before times[j], for each j
	// from t on: windows ending later than t+1s do not hold t.
	lo := s.head + sort.Search(i-s.head, func(k int) bool { return t.Sub(s.times[s.head+k]) < time.Second })
	for j := i; j < len(s.times) && s.times[j].Sub(t) < time.Second; j++ {
		for s.times[j].Sub(s.times[lo]) >= time.Second {
			lo++
		}
		if n := j - lo + 1; n > s.max {
			s.max = n
		}
	}
	newest := s.times[len(s.times)-1]
	for s.head < len(s.times) && newest.Sub(s.times[s.head]) >= slidingKeep {
		s.head++
	}
	if s.head > 1024 && s.head > len(s.times)/2 {
		s.times = append(s.times[:0], s.times[s.head:]...)
		s.head = 0
	}
}
