package linefake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults are failures injected into send requests (reply, push,
// multicast, narrowcast, broadcast), each an independent probability per
// request drawn from the seeded random source. They never touch the token
// endpoint or the admin API.
type Faults struct {
	// FailRate is the share of sends answered 500 with nothing accepted.
	FailRate float64 `json:"failRate"`
	// TooManyRate is the share answered 429 with nothing accepted.
	TooManyRate float64 `json:"tooManyRate"`
	// DropRate is the share of sends that are accepted and recorded as
	// delivered, after which the TCP connection is closed without any
	// response. The client cannot tell this from a network failure: the
	// case that X-Line-Retry-Key exists for.
	DropRate float64 `json:"dropRate"`
	// AcceptedFailRate is the share of sends that are accepted and
	// recorded as delivered, then answered 500: LINE's "5xx error" that
	// may have been delivered all the same, the other case the retry key
	// exists for. Drawn, like DropRate, among the requests that would
	// otherwise be answered normally. Sends only: the data API ignores it.
	AcceptedFailRate float64 `json:"acceptedFailRate"`
	// Latency delays every send by this much real time before it is
	// handled, plus a uniform random extra in [0, LatencyJitter).
	Latency       time.Duration `json:"latency"`
	LatencyJitter time.Duration `json:"latencyJitter"`
}

// Validate checks that every share is a probability and that 500s and
// 429s together do not exceed one.
func (f Faults) Validate() error {
	var errs []error
	for name, p := range map[string]float64{"fail rate": f.FailRate, "429 rate": f.TooManyRate, "drop rate": f.DropRate,
		"accepted fail rate": f.AcceptedFailRate} {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("faults: %s %v outside [0,1]", name, p))
		}
	}
	if f.FailRate+f.TooManyRate > 1 {
		errs = append(errs, errors.New("faults: fail rate + 429 rate exceed 1"))
	}
	if f.Latency < 0 || f.LatencyJitter < 0 {
		errs = append(errs, errors.New("faults: latency must not be negative"))
	}
	return errors.Join(errs...)
}

// outcome is what the fault roll decided for one request.
type outcome int

const (
	outcomeNormal outcome = iota
	outcomeFail
	outcomeTooMany
	outcomeDrop
	outcomeAcceptedFail
)

// chaos holds the current faults and the one seeded random source the
// emulator draws from. math/rand's generators are not safe for concurrent
// use, so every draw goes through the mutex.
type chaos struct {
	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
}

func newChaos(f Faults, seed uint64) *chaos {
	return &chaos{faults: f, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (c *chaos) set(f Faults) {
	c.mu.Lock()
	c.faults = f
	c.mu.Unlock()
}

func (c *chaos) get() Faults {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults
}

// delay is the latency to inject for one request.
func (c *chaos) delay() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.faults.Latency
	if j := c.faults.LatencyJitter; j > 0 {
		d += time.Duration(c.rng.Int64N(int64(j)))
	}
	return d
}

// roll decides a request's fate. The drop is drawn separately so that its
// share means "of the requests that would otherwise be accepted".
func (c *chaos) roll() outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults
	if f.FailRate > 0 || f.TooManyRate > 0 {
		r := c.rng.Float64()
		switch {
		case r < f.FailRate:
			return outcomeFail
		case r < f.FailRate+f.TooManyRate:
			return outcomeTooMany
		}
	}
	if f.DropRate > 0 && c.rng.Float64() < f.DropRate {
		return outcomeDrop
	}
	if f.AcceptedFailRate > 0 && c.rng.Float64() < f.AcceptedFailRate {
		return outcomeAcceptedFail
	}
	return outcomeNormal
}

// bytes fills b from the seeded source (reply tokens, quote tokens, ULID
// randomness): reproducible under a fixed seed, which is all a test needs.
func (c *chaos) bytes(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range b {
		b[i] = byte(c.rng.UintN(256))
	}
}

// sleep waits d of real time, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
