// Package worker moves events from the stream into Postgres. Every replica
// pulls from one durable consumer, stores a batch in one transaction and
// acknowledges after commit, so a crash at any point leads to redelivery
// and an idempotent re-store, never to loss.
package worker

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for Config.
const (
	DefaultConsumer  = "worker"
	DefaultBatchSize = 200
	// DefaultAckWait is how long a fetched message stays invisible to other
	// replicas before it is redelivered. A batch commits in milliseconds,
	// and a slow one signals progress every half AckWait, so this only
	// bounds how late a crashed replica's messages are stored: 10 s, then
	// 20 s if they crash their next worker too.
	DefaultAckWait = 10 * time.Second
	// DefaultMaxAttempts is how often a message may fail through its own
	// fault before it goes to dead_letters.
	DefaultMaxAttempts = 5
	// DefaultIdleWait bounds one wait for new messages when the stream is empty.
	DefaultIdleWait = 5 * time.Second
)

// Config is the consumer's behaviour.
type Config struct {
	// Consumer is the durable consumer name all replicas share. Default "worker".
	Consumer string
	// BatchSize is the most messages stored in one transaction. Default 200.
	BatchSize int
	// AckWait before an unacknowledged message is redelivered. Default 10s.
	AckWait time.Duration
	// MaxAttempts before a failing message is dead-lettered. Default 5.
	MaxAttempts int
	// IdleWait is the longest single wait for messages. Default 5s.
	IdleWait time.Duration
	// PurgeInterval is how often stored messages are purged from the
	// stream while there are any. Default DefaultPurgeInterval.
	PurgeInterval time.Duration
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.IdleWait == 0 {
		c.IdleWait = DefaultIdleWait
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = DefaultPurgeInterval
	}
	return c
}

// Validate reports unusable settings.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch size %d: 1 to 10000", c.BatchSize))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %s: at least 1s", c.AckWait))
	}
	if c.PurgeInterval < 10*time.Millisecond || c.PurgeInterval > PurgeGrace {
		errs = append(errs, fmt.Errorf("purge interval %s: 10ms to %s", c.PurgeInterval, PurgeGrace))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: at least 1", c.MaxAttempts))
	}
	return errors.Join(errs...)
}

// redeliveryDelay is the backoff before a failed message is tried again:
// 1s, 2s, 4s … capped at a minute.
func redeliveryDelay(deliveries uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < deliveries && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
