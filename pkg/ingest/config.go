package ingest

import (
	"fmt"
	"net/netip"
	"time"
)

// Defaults for Config.
const (
	// DefaultMaxBodyBytes bounds a webhook body. LINE documents no maximum;
	// a webhook carries a handful of events of a few KiB, so 1 MiB leaves
	// wide room while refusing abuse.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultPublishTimeout is the budget for JetStream to acknowledge a
	// webhook's events. LINE counts a webhook failed after 2 s; answering
	// 503 well before that lets LINE redeliver instead of timing out.
	DefaultPublishTimeout = time.Second
	// DefaultMaxInFlight bounds the webhooks handled at once, and with it
	// ingest's memory when JetStream or the host falls behind: each
	// webhook waiting for its acks holds two goroutines (the handler and
	// its connection's reader), the connection's buffers and the body,
	// about 40 KiB for a one-event webhook. At 1,000 webhooks/s on a
	// starved host (four busy loops on two cores), 4,700 goroutines waited
	// and the process reached 95 MiB; bounded at 1,024 it still reached
	// 66 MiB. A healthy ingest answers in milliseconds: at 9,500
	// webhooks/s with a p99 of 11 ms (make bench) that is under a hundred
	// in flight.
	DefaultMaxInFlight = 512
)

// Config is the webhook handler's behaviour.
type Config struct {
	// MaxBodyBytes is the largest body accepted; larger gets 413. Default 1 MiB.
	MaxBodyBytes int64
	// PublishTimeout bounds waiting for JetStream acks; past it, 503. Default 1s.
	PublishTimeout time.Duration
	// MaxInFlight is how many webhooks are handled at once. One more is
	// answered 503 at once, before its body is read, and LINE redelivers
	// it as it would after any 503. Default 512.
	MaxInFlight int
	// TrustProxy takes the sender IP from X-Forwarded-For: the rightmost
	// hop not in TrustedProxies, and only when the peer itself is a
	// trusted proxy. Default false: enable it only behind a reverse proxy
	// that appends to the header.
	TrustProxy bool
	// TrustedProxies are the proxies' networks. Nil means
	// DefaultTrustedProxies (loopback and private ranges).
	TrustedProxies []netip.Prefix
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return c
}

// Validate rejects settings that would break LINE's contract.
func (c Config) Validate() error {
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("max body bytes %d: at least 1024", c.MaxBodyBytes)
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout >= 2*time.Second {
		return fmt.Errorf("publish timeout %s: must be above 0 and below LINE's 2s", c.PublishTimeout)
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("max in flight %d: at least 1", c.MaxInFlight)
	}
	return nil
}
