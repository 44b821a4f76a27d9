package sender

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
)

// Defaults, in one place. Each is explained on the Config field it fills.
const (
	DefaultBaseURL        = "https://api.line.me"
	DefaultBatchSize      = 250
	DefaultPollInterval   = time.Second
	DefaultLease          = time.Minute
	DefaultConcurrency    = 512
	DefaultRequestTimeout = 15 * time.Second
	DefaultBackoffBase    = time.Second
	DefaultBackoffMax     = 10 * time.Minute
	DefaultKeyMaxAge      = 23 * time.Hour
	DefaultReplyTokenTTL  = time.Minute
	DefaultRateSlack      = 40 * time.Millisecond
	DefaultReplyRateSlack = 200 * time.Millisecond
	DefaultRateHorizon    = time.Second
	// DefaultRecipientCap: LINE answers push with 429 "A large number of
	// messages were sent to the same user" without publishing a number;
	// 60 message objects a minute keeps a bot well clear of mass sending.
	DefaultRecipientCap = "60/1m"
)

// Rate is a limit of Limit requests (or, for the recipient cap, message
// objects) per Per. Limit <= 0 means unlimited.
type Rate struct {
	Limit int
	Per   time.Duration
}

func (r Rate) String() string {
	if r.Limit <= 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.Limit, r.Per)
}

// ParseRate reads "N/duration" ("2000/1s", "60/1h") or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration or off", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: bad period", s)
	}
	return Rate{Limit: limit, Per: d}, nil
}

// LINERates are LINE's published limits per channel and endpoint
// (Messaging API reference, "Rate limits").
func LINERates() map[string]Rate {
	return map[string]Rate{
		store.EndpointPush:       {2000, time.Second},
		store.EndpointReply:      {2000, time.Second},
		store.EndpointMulticast:  {200, time.Second},
		store.EndpointNarrowcast: {60, time.Hour},
		store.EndpointBroadcast:  {60, time.Hour},
	}
}

// Config configures a Sender. Zero values take the defaults above.
type Config struct {
	// Keys open channel credentials sealed at rest (LINEPIPE_SECRET_KEY);
	// nil reads plaintext only.
	Keys *secretbox.Keyring
	// BaseURL of the Messaging API (LINE_API_BASE_URL). Default
	// https://api.line.me; tests point it at the emulator.
	BaseURL string
	// Owner is written to claimed_by so an operator sees which replica
	// holds a row. Default hostname-pid.
	Owner string
	// BatchSize is the most rows one claim takes. Default 250: with rate
	// limits lifted the claim loop, one claim at a time, is what caps a
	// replica, and a claim's cost is mostly per statement, not per row.
	// Under a limit a claim takes only the slots within the horizon.
	BatchSize int
	// PollInterval is the longest wait between claims when nothing is
	// due. Committed rows wake the sender through a notification at once;
	// the poll is the fallback for one lost with a dropped connection.
	// Default 1s.
	PollInterval time.Duration
	// Lease is how long a claim owns a row after its send slot. Another
	// replica takes over a row whose lease expired, so it must exceed the
	// longest send (token issue plus request, both bounded by
	// RequestTimeout). Default 1m.
	Lease time.Duration
	// Concurrency is how many requests one replica has in flight. Default
	// 512: a row holds its slot from its claim (through the wait for its
	// rate slot) until LINE answers, so keeping LINE's 2,000/s busy takes
	// the rate times the answer time in flight, 400 at 200 ms.
	Concurrency int
	// RequestTimeout bounds one HTTP call to LINE. After it the attempt
	// counts as "no answer" and is retried with the same key. Default 15s.
	RequestTimeout time.Duration
	// BackoffBase and BackoffMax shape exponential backoff with jitter
	// after a 5xx, timeout or 429. Defaults 1s and 10m.
	BackoffBase, BackoffMax time.Duration
	// KeyMaxAge: a retry key first used longer ago than this is never sent
	// again (LINE forgets keys after 24h, so a resend could duplicate);
	// the row ends expired. Default 23h.
	KeyMaxAge time.Duration
	// ReplyTokenTTL is a reply row's validity when not_after is null:
	// LINE's reply token is usable within one minute. Default 1m.
	ReplyTokenTTL time.Duration
	// SendToUnfollowed turns off the followers check. By default a push
	// to a user whom followers shows as not following ends skipped: LINE
	// answers 200 but nobody receives it (SENDER_SKIP_UNFOLLOWED=false
	// sets this).
	SendToUnfollowed bool
	// Rates per endpoint; missing entries take LINERates.
	Rates map[string]Rate
	// RecipientCap limits message objects pushed to one recipient, as a
	// sustained rate with bursts up to Limit. Zero is off; FromEnv
	// defaults it to DefaultRecipientCap (SENDER_RECIPIENT_CAP).
	RecipientCap Rate
	// RateSlack widens the spacing of slots: limit slots per period +
	// RateSlack. A send may start up to a quarter of it after its slot;
	// later, the row is re-slotted. The rest absorbs what happens between
	// the sender and LINE (scheduling, the network), which can bunch
	// requests that left evenly spaced. Default 40ms.
	RateSlack time.Duration
	// ReplyRateSlack is RateSlack for the reply endpoint's bucket.
	// Default 200ms, so a reply may start 50ms after its slot. A reply
	// later than its tolerance is re-slotted on the channel's reply
	// bucket, whose lock every reply of the channel takes; on a busy host
	// with 10ms of tolerance a fifth to a third of replies at 1,000/s were
	// late, and each re-slot made the next replies later still. The
	// price is a channel's replies peaking at 1,667/s instead of 1,923/s
	// of LINE's 2,000/s; pushes, which campaigns send by the thousand,
	// keep RateSlack.
	ReplyRateSlack time.Duration
	// RateHorizon is how far ahead a claim reserves slots. Default 1s.
	RateHorizon time.Duration

	// Clock is the sender's own time: access token expiry and api_log's
	// called_at. Every decision replicas share (what is due, key age,
	// reply validity, leases, rate slots) uses the database clock.
	// Default time.Now.
	Clock func() time.Time
	// Rand returns a float in [0,1) for backoff jitter. Default math/rand.
	Rand func() float64
	// HTTPClient calls LINE. Default: timeouts from RequestTimeout, no
	// redirects followed.
	HTTPClient *http.Client
	// Log gets one line per API call. Default: no logging.
	Log *zap.Logger
	// Registerer takes the metrics. Default: none registered.
	Registerer prometheus.Registerer
}

// FromEnv reads the sender's environment variables (see docs/OUTBOX.md).
// The error lists unparsable rates; env.Err() has the rest.
func FromEnv(env *config.Env) (Config, error) {
	c := Config{
		BaseURL:          env.String("LINE_API_BASE_URL", DefaultBaseURL),
		BatchSize:        env.Int("SENDER_BATCH_SIZE", DefaultBatchSize),
		PollInterval:     env.Duration("SENDER_POLL_INTERVAL", DefaultPollInterval),
		Lease:            env.Duration("SENDER_LEASE", DefaultLease),
		Concurrency:      env.Int("SENDER_CONCURRENCY", DefaultConcurrency),
		RequestTimeout:   env.Duration("SENDER_HTTP_TIMEOUT", DefaultRequestTimeout),
		BackoffBase:      env.Duration("SENDER_BACKOFF_BASE", DefaultBackoffBase),
		BackoffMax:       env.Duration("SENDER_BACKOFF_MAX", DefaultBackoffMax),
		KeyMaxAge:        env.Duration("SENDER_RETRY_KEY_MAX_AGE", DefaultKeyMaxAge),
		ReplyTokenTTL:    env.Duration("REPLY_TOKEN_TTL", DefaultReplyTokenTTL),
		SendToUnfollowed: !env.Bool("SENDER_SKIP_UNFOLLOWED", true),
		RateSlack:        env.Duration("SENDER_RATE_SLACK", DefaultRateSlack),
		ReplyRateSlack:   env.Duration("SENDER_REPLY_RATE_SLACK", DefaultReplyRateSlack),
		RateHorizon:      env.Duration("SENDER_RATE_HORIZON", DefaultRateHorizon),
		Rates:            map[string]Rate{},
	}
	var errs []error
	for _, ep := range slices.Sorted(maps.Keys(LINERates())) { // sorted: --help lists them in a stable order
		if v := env.String("SENDER_RATE_"+strings.ToUpper(ep), ""); v != "" {
			r, err := ParseRate(v)
			errs = append(errs, err)
			c.Rates[ep] = r
		}
	}
	rc, err := ParseRate(env.String("SENDER_RECIPIENT_CAP", DefaultRecipientCap))
	errs = append(errs, err)
	c.RecipientCap = rc
	return c, errors.Join(errs...)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.Lease, DefaultLease)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.KeyMaxAge, DefaultKeyMaxAge)
	def(&c.ReplyTokenTTL, DefaultReplyTokenTTL)
	def(&c.RateSlack, DefaultRateSlack)
	def(&c.ReplyRateSlack, DefaultReplyRateSlack)
	def(&c.RateHorizon, DefaultRateHorizon)
	rates := LINERates()
	for ep, r := range c.Rates {
		rates[ep] = r
	}
	c.Rates = rates
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.HTTPClient == nil {
		c.HTTPClient = newHTTPClient(c.RequestTimeout, c.Concurrency)
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// LongestSend bounds one claimed row's time in a sender, from its claim
// to its completion handed in, with SENDER_RATE_HORIZON rateHorizon and
// SENDER_HTTP_TIMEOUT requestTimeout: the wait for its rate slot, a token
// fetch and the request, each HTTP call within the timeout, and 5 s for
// the rest. The lease must outlast it, or another replica could resend a
// row still in flight; so must a stopping sender's grace, with the claim
// it may finish first (LongestStop), or it is killed between LINE's
// answer and its record, and the row is sent again.
func LongestSend(rateHorizon, requestTimeout time.Duration) time.Duration {
	return rateHorizon + 2*requestTimeout + 5*time.Second
}

// LongestStop bounds a stopping sender's exit from SIGTERM: a claim on
// its way when the signal came runs to its end (claimBound), then each
// row it took gets LongestSend. A stopping sender's grace
// (docker-compose.yml) must outlast it.
func LongestStop(rateHorizon, requestTimeout time.Duration) time.Duration {
	return claimBound + LongestSend(rateHorizon, requestTimeout)
}

// Validate reports every setting that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if err := config.CheckBaseURL("LINE_API_BASE_URL", c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 1 || c.Concurrency < 1 {
		errs = append(errs, errors.New("batch size and concurrency must be at least 1"))
	}
	// A lease shorter than the longest send would let a second replica
	// resend a row that is still in flight.
	if min := LongestSend(c.RateHorizon, c.RequestTimeout); c.Lease < min {
		errs = append(errs, fmt.Errorf("lease %s must be at least %s (rate horizon + 2 x HTTP timeout + 5s)", c.Lease, min))
	}
	if c.KeyMaxAge <= 0 || c.KeyMaxAge+c.Lease >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("retry key max age %s plus lease must stay under LINE's 24h key period", c.KeyMaxAge))
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		errs = append(errs, errors.New("backoff base must be positive and at most backoff max"))
	}
	if c.RateSlack <= 0 || c.ReplyRateSlack <= 0 || c.RateHorizon <= 0 || c.PollInterval <= 0 || c.ReplyTokenTTL <= 0 {
		errs = append(errs, errors.New("rate slacks, rate horizon, poll interval and reply token TTL must be positive"))
	}
	return errors.Join(errs...)
}

// slack is the RateSlack of endpoint's bucket.
func (c *Config) slack(endpoint string) time.Duration {
	if endpoint == store.EndpointReply {
		return c.ReplyRateSlack
	}
	return c.RateSlack
}
