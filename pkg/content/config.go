// Package content keeps the bytes of the images, video, audio and files
// users send. The worker records one message_content row per such message
// in the transaction that stores it; a Fetcher (run by the sender, which
// already holds the channels' tokens and the shared rate buckets) claims
// rows under a fenced lease, streams each from LINE's data API into a
// JetStream Object Store bucket, and deletes the object again when the
// user unsends the message or its retention ends (retention.go).
package content

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
)

// Defaults, each explained on the Config field it fills.
const (
	DefaultDataBaseURL  = "https://api-data.line.me"
	DefaultBucket       = "linepipe_content"
	DefaultMaxBytes     = 300 << 20
	DefaultConcurrency  = 4
	DefaultLease        = 5 * time.Minute
	DefaultPollInterval = time.Second
	DefaultHTTPTimeout  = 15 * time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 10 * time.Minute
	DefaultPollBase     = time.Second
	DefaultPollMax      = 30 * time.Second
	DefaultMaxAttempts  = 20
	// DefaultRetentionInterval is how often a replica tries a content
	// retention round, as the worker's janitor does for its tables.
	DefaultRetentionInterval = time.Minute
	// DefaultRate: get content has no limit of its own, so LINE's "other
	// API endpoints" row applies, 2,000 requests a second per channel and
	// endpoint.
	DefaultRate = "2000/1s"
)

// Config configures a Fetcher. Zero values take the defaults.
type Config struct {
	// BaseURL of LINE's data API (LINE_DATA_API_BASE_URL).
	BaseURL string
	// Bucket is the Object Store bucket (CONTENT_BUCKET); Replicas its
	// replicas in a NATS cluster (NATS_REPLICAS).
	Bucket   string
	Replicas int
	// MaxBytes bounds one content (CONTENT_MAX_BYTES): a larger one ends
	// failed and nothing of it is kept.
	MaxBytes int64
	// Concurrency is how many rows one fetcher works on at once
	// (CONTENT_CONCURRENCY).
	Concurrency int
	// Lease is how long a claim owns a row without news from its fetcher
	// (CONTENT_LEASE): another fetcher takes over a row whose lease ended,
	// so it is how long a dead fetcher's row waits. A fetch in progress
	// extends it every third of the lease, fenced by its claim id, so a
	// download may outlast it as long as a whole chunk (128 KiB) arrives
	// within each lease.
	Lease time.Duration
	// PollInterval is the wait after a claim found nothing due.
	PollInterval time.Duration
	// HTTPTimeout bounds the wait for LINE's answer headers and any pause
	// in the body (CONTENT_HTTP_TIMEOUT); a long download that keeps
	// flowing runs on, its lease extended.
	HTTPTimeout time.Duration
	// BackoffBase, BackoffMax shape the retry after a 5xx, 429, timeout
	// or network error (CONTENT_BACKOFF_BASE, CONTENT_BACKOFF_MAX).
	BackoffBase, BackoffMax time.Duration
	// PollBase, PollMax shape the transcoding poll of video and audio
	// still being prepared.
	PollBase, PollMax time.Duration
	// MaxAttempts: after this many failed attempts a row ends failed
	// (CONTENT_MAX_ATTEMPTS).
	MaxAttempts int
	// RateLimit and RatePer: requests per channel and endpoint (content,
	// transcoding), drawn from the outbox_rate buckets every replica
	// shares (CONTENT_RATE, "N/duration" or "off"). Zero takes
	// DefaultRate; a negative RateLimit is off.
	RateLimit int
	RatePer   time.Duration
	// RetentionInterval is how often expired content is deleted (the
	// retention table's 'message_content' row; RETENTION_INTERVAL, read
	// by the worker for its own tables too). One replica at a time runs
	// a round. Zero takes the default; negative turns it off.
	RetentionInterval time.Duration
	// Owner is written to claimed_by. Default hostname-pid.
	Owner string
	// Rand returns [0,1) for backoff jitter. Default math/rand.
	Rand func() float64
	// Log and Registerer take logs and metrics; default none.
	Log        *zap.Logger
	Registerer prometheus.Registerer
}

// FromEnv reads the fetcher's environment. CONTENT_FETCH=false turns the
// fetcher off (enabled reports it).
func FromEnv(env *config.Env) (cfg Config, enabled bool, err error) {
	cfg = Config{
		BaseURL:     env.String("LINE_DATA_API_BASE_URL", DefaultDataBaseURL),
		Bucket:      BucketFromEnv(env),
		Replicas:    env.Int("NATS_REPLICAS", 1),
		MaxBytes:    env.Bytes("CONTENT_MAX_BYTES", DefaultMaxBytes),
		Concurrency: env.Int("CONTENT_CONCURRENCY", DefaultConcurrency),
		Lease:       env.Duration("CONTENT_LEASE", DefaultLease),
		HTTPTimeout: env.Duration("CONTENT_HTTP_TIMEOUT", DefaultHTTPTimeout),
		BackoffBase: env.Duration("CONTENT_BACKOFF_BASE", DefaultBackoffBase),
		BackoffMax:  env.Duration("CONTENT_BACKOFF_MAX", DefaultBackoffMax),
		MaxAttempts: env.Int("CONTENT_MAX_ATTEMPTS", DefaultMaxAttempts),

		RetentionInterval: env.Duration("RETENTION_INTERVAL", DefaultRetentionInterval),
	}
	enabled = env.Bool("CONTENT_FETCH", true)
	var rateErr error
	cfg.RateLimit, cfg.RatePer, rateErr = parseRate(env.String("CONTENT_RATE", DefaultRate))
	var errs []error
	// Zero means "default" in Config; in the environment it is a mistake.
	if cfg.MaxBytes <= 0 {
		errs = append(errs, errors.New("CONTENT_MAX_BYTES must be positive"))
	}
	if cfg.Concurrency < 1 || cfg.MaxAttempts < 1 {
		errs = append(errs, errors.New("CONTENT_CONCURRENCY and CONTENT_MAX_ATTEMPTS must be at least 1"))
	}
	switch {
	case cfg.RetentionInterval == 0:
		cfg.RetentionInterval = -1 // 0 in the environment turns retention off
	case cfg.RetentionInterval < time.Second:
		errs = append(errs, fmt.Errorf("RETENTION_INTERVAL %s: 0 (off) or at least 1s", cfg.RetentionInterval))
	}
	chk := cfg
	chk.setDefaults()
	return cfg, enabled, errors.Join(append(errs, env.Err(), rateErr, chk.Validate())...)
}

// parseRate reads "N/duration" or "off" (-1).
func parseRate(s string) (int, time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return -1, 0, nil
	}
	n, per, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(n)
	d, derr := time.ParseDuration(per)
	if !ok || err != nil || limit <= 0 || derr != nil || d <= 0 {
		return 0, 0, fmt.Errorf("CONTENT_RATE %q: want N/duration or off", s)
	}
	return limit, d, nil
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultDataBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RateLimit == 0 {
		c.RateLimit, c.RatePer = 2000, time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	def(&c.Lease, DefaultLease)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.HTTPTimeout, DefaultHTTPTimeout)
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.PollBase, DefaultPollBase)
	def(&c.PollMax, DefaultPollMax)
	def(&c.RetentionInterval, DefaultRetentionInterval)
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := config.CheckBaseURL("LINE_DATA_API_BASE_URL", c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, errors.New("CONTENT_MAX_BYTES must be positive"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("CONTENT_CONCURRENCY must be at least 1"))
	}
	if c.Lease < c.HTTPTimeout+10*time.Second {
		errs = append(errs, errors.New("CONTENT_LEASE must be at least CONTENT_HTTP_TIMEOUT + 10s"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("CONTENT_MAX_ATTEMPTS must be at least 1"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, errors.New("NATS_REPLICAS must be 1 to 5"))
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		errs = append(errs, errors.New("CONTENT_BACKOFF_BASE must be positive and at most CONTENT_BACKOFF_MAX"))
	}
	return errors.Join(errs...)
}

// backoff is base·2^(n-1), capped, with ±20% jitter.
func backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rnd()))
}
