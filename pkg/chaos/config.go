// Package chaos runs linepipe as real processes, two replicas of each
// service behind a round-robin proxy, under webhook and outbox load while
// processes are killed, NATS and Postgres restart and the LINE emulator
// misbehaves, and then audits storage and the emulator's ledger: nothing
// acknowledged lost, nothing delivered twice, nothing unsent readable.
package chaos

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// Config shapes a run. Zero values take the defaults of WithDefaults.
type Config struct {
	// Duration of load and faults; the drain and audit come after.
	// Default 4m, or 45s with Short.
	Duration time.Duration
	// Short is the CI variant: whole run under two minutes.
	Short bool
	// Cluster runs a three-node NATS JetStream cluster with a replicated
	// stream (NATS_REPLICAS=3) and kills one node mid-run instead of
	// restarting a single server.
	Cluster bool
	// NATSDefaultSync runs NATS with its default sync_interval instead of
	// the deployed always, to compare what fsync-before-ack costs.
	NATSDefaultSync bool
	// Rate of webhooks per second through the proxy. Default 60.
	Rate float64
	// EventsPerRequest in each webhook. Default 2.
	EventsPerRequest int
	// OutboxRate of pushes inserted per second by SQL. Default 40.
	OutboxRate float64
	// KillEvery is the pause between kill -9s of a random service
	// process. Default 6s (4s with Short).
	KillEvery time.Duration
	// DrainTimeout bounds the wait for the pipeline to settle after the
	// faults stop. Default 2m, or 50s with Short.
	DrainTimeout time.Duration
	// Faults the emulator injects while faults run.
	Faults linefake.Faults

	Dir        string // work directory; default a temp dir
	Keep       bool   // keep Dir (logs) afterwards
	NATSServer string // nats-server binary; default as bench.ResolveNATSServer
	PGBin      string // directory of initdb and postgres; default as ResolvePGBin
	Seed       uint64 // randomness of kills and load; 0 from the clock
	Log        io.Writer
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = 4 * time.Minute
		if c.Short {
			c.Duration = 45 * time.Second
		}
	}
	if c.Rate == 0 {
		c.Rate = 60
	}
	if c.EventsPerRequest == 0 {
		c.EventsPerRequest = 2
	}
	if c.OutboxRate == 0 {
		c.OutboxRate = 40
	}
	if c.KillEvery == 0 {
		c.KillEvery = 6 * time.Second
		if c.Short {
			c.KillEvery = 4 * time.Second
		}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 2 * time.Minute
		if c.Short {
			c.DrainTimeout = 50 * time.Second
		}
	}
	if c.Faults == (linefake.Faults{}) {
		c.Faults = linefake.Faults{FailRate: 0.05, TooManyRate: 0.03, DropRate: 0.05, AcceptedFailRate: 0.03,
			Latency: 2 * time.Millisecond, LatencyJitter: 30 * time.Millisecond}
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// Validate reports a run that could not show anything.
func (c Config) Validate() error {
	var errs []error
	if c.Duration < 20*time.Second {
		errs = append(errs, errors.New("duration must be at least 20s to fit the NATS and Postgres restarts"))
	}
	if c.Rate <= 0 || c.OutboxRate <= 0 || c.EventsPerRequest < 1 {
		errs = append(errs, errors.New("rates and events per request must be positive"))
	}
	if c.KillEvery < time.Second {
		errs = append(errs, errors.New("kill interval must be at least 1s"))
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
