package ingest

import (
	"fmt"
	"net/netip"
	"time"
)

// Defaults for Config.
const (
	// DefaultMaxBodyBytes bounds a webhook body. LINE documents no maximum;
	// a webhook carries a handful of events of a few KiB, so about 1 MiB
	// leaves wide room while refusing abuse. It is NATS's default
	// max_payload less HeaderRoom, so that any event a body can hold fits
	// one stream message with its headers: a body that did not could
	// never be stored, and LINE's redeliveries of it would all fail.
	DefaultMaxBodyBytes = 1<<20 - HeaderRoom
	// HeaderRoom is what an event's stream message needs beside the
	// event: linepipe's headers and the webhook's log record, under 2 KiB
	// with the longest channel id, path and address. Ingest refuses to
	// start when MaxBodyBytes plus this exceeds the NATS server's
	// max_payload.
	HeaderRoom = 16 << 10
	// DefaultMaxBufferedBytes bounds the bodies held at once, 64 full-size
	// bodies or thousands of LINE's usual few-KiB ones.
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultPublishTimeout is the budget for JetStream to acknowledge a
	// webhook's events, counted from when its handling began. LINE counts
	// a webhook failed after 2 s; answering 503 well before that lets LINE
	// redeliver instead of timing out.
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
	// MaxBodyBytes is the largest body accepted; larger gets 413. Default
	// 1 MiB less HeaderRoom.
	MaxBodyBytes int64
	// MaxBufferedBytes bounds the bytes of webhook bodies held at once,
	// counted as they arrive, signed or not: a body read that would pass
	// it is answered 503. It bounds ingest's memory against many large or
	// slow bodies, which hold no MaxInFlight place until their signature
	// is checked. Default 64 MiB.
	MaxBufferedBytes int64
	// PublishTimeout is when, after a webhook's handling began, its events
	// must be acknowledged by JetStream; past it, 503. Default 1s.
	PublishTimeout time.Duration
	// MaxInFlight is how many webhooks with a valid signature are handled
	// at once. While that many are, one more is answered 503 at once,
	// before its body is read, and LINE redelivers it as it would after
	// any 503. Requests are counted only once their signature holds, so
	// no one without the channel secret can take the places. Default 512.
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
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
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
	if c.MaxBufferedBytes < c.MaxBodyBytes {
		return fmt.Errorf("max buffered bytes %d: at least the max body bytes, %d", c.MaxBufferedBytes, c.MaxBodyBytes)
	}
	return nil
}

// FitsPayload reports whether every event a body may hold fits a NATS
// message of maxPayload bytes with its headers.
func (c Config) FitsPayload(maxPayload int64) error {
	if c.MaxBodyBytes+HeaderRoom > maxPayload {
		return fmt.Errorf("INGEST_MAX_BODY_BYTES %d leaves no room for an event's headers in the NATS server's max_payload %d: "+
			"set it to at most %d, or raise max_payload", c.MaxBodyBytes, maxPayload, maxPayload-HeaderRoom)
	}
	return nil
}
