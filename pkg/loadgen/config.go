package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults, in one place. Each Config field's comment names the one it uses.
const (
	DefaultConcurrency      = 16
	DefaultDuration         = 10 * time.Second
	DefaultEventsPerRequest = 1
	DefaultUsers            = 1000
	DefaultGroupShare       = 0.1
	DefaultRetries          = 3
	DefaultTimeout          = 2 * time.Second // LINE's webhook timeout
	DefaultBackoff          = 200 * time.Millisecond
	DefaultMaxBackoff       = 5 * time.Second
	DefaultUnsendPool       = 10000
	DefaultMaxInFlight      = 8192
	DefaultMaxConns         = 256
)

// Limits.
const (
	// MaxEventsPerRequest is a sanity bound, not a LINE figure: LINE does
	// not document how many events one webhook may carry.
	MaxEventsPerRequest = 500
	// NoopMaxBodyBytes bounds what the no-op server reads. LINE documents
	// no webhook size limit; 2 MB is its Messaging API request limit.
	NoopMaxBodyBytes = 2 << 20
)

const (
	defaultMixSpecification  = "text=60,sticker=10,image=5,follow=5,unfollow=3,postback=10,unsend=5,futureThing=2"
	channelIDPatternExplains = "letters, digits, '-' or '_', 1 to 64 characters"
)

// Event kinds the generator can produce, as named in a mix.
const (
	KindText        = "text"
	KindSticker     = "sticker"
	KindImage       = "image"
	KindFollow      = "follow"
	KindUnfollow    = "unfollow"
	KindPostback    = "postback"
	KindUnsend      = "unsend"
	KindFutureThing = "futureThing"
)

// Kinds lists every kind a mix may name, in report order.
var Kinds = []string{KindText, KindSticker, KindImage, KindFollow, KindUnfollow, KindPostback, KindUnsend, KindFutureThing}

// ErrInvalidConfig is wrapped by every Validate and parse failure, so a
// command can tell a usage error from a run failure.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// Channel is one LINE channel the generator signs webhooks for.
type Channel struct {
	ID     string
	Secret string
}

// Mix is the relative weight of each event kind. Weights need not sum to
// 100; a kind's share is its weight over the total.
type Mix map[string]int

// DefaultMix is mostly text, with every other kind present, including a
// type LINE has not released yet, because ingest must accept those too.
func DefaultMix() Mix {
	m, _ := ParseMix(defaultMixSpecification)
	return m
}

// Config describes one load run. The zero value of every optional field
// means its default; call Validate (Run does) to apply them.
type Config struct {
	// BaseURL is where ingest listens; requests go to
	// {BaseURL}/webhook/{channelID}. Required.
	BaseURL string
	// Channels are signed for round-robin, one channel per request. Required.
	Channels []Channel

	// Rate is the offered load in requests per second, paced open loop:
	// requests start on schedule whether or not earlier ones have
	// answered, so a slow server cannot lower the load it is offered.
	// Exclusive with Concurrency.
	Rate float64
	// Concurrency is the number of closed-loop senders, each starting its
	// next request when the previous first attempt has answered. Used
	// when Rate is 0; default DefaultConcurrency.
	Concurrency int

	// Duration bounds how long new requests are started (redeliveries of
	// earlier ones still finish). Default DefaultDuration when Requests is
	// also 0; with Requests set, 0 means no time bound.
	Duration time.Duration
	// Requests bounds how many webhook requests are generated (not
	// counting redeliveries). 0 means no count bound.
	Requests int

	// EventsPerRequest is how many events each webhook carries; LINE
	// batches events of different users into one request. Default
	// DefaultEventsPerRequest.
	EventsPerRequest int
	// Mix weights the event kinds. Default DefaultMix().
	Mix Mix
	// Users is the number of distinct user IDs events come from. Default
	// DefaultUsers.
	Users int
	// GroupShare is the fraction of message and postback events that come
	// from a group chat rather than a 1:1 chat. Default DefaultGroupShare;
	// set a negative value for none.
	GroupShare float64

	// Retries is how many redeliveries a request gets after its first
	// attempt fails (non-2xx, transport error or timeout), like LINE with
	// webhook redelivery on. Default DefaultRetries; negative means none.
	Retries int
	// Backoff is the delay before the first redelivery; it doubles for each
	// later one up to MaxBackoff, with jitter. Defaults DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds each attempt, as LINE waits 2 s for an answer.
	// Default DefaultTimeout.
	Timeout time.Duration

	// UnsendPool bounds the set of accepted messages unsends pick from, so
	// memory stays flat on long runs. Default DefaultUnsendPool.
	UnsendPool int
	// MaxInFlight bounds concurrent attempts in rate mode. A scheduled
	// request that finds the bound reached is not sent and is counted as
	// dropped: the generator, not the server, has fallen behind. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxConns bounds TCP connections to the server. Default DefaultMaxConns.
	MaxConns int

	// RecordWriter, when set, receives the audit record as JSON lines
	// (see RecordEntry) while the run goes on.
	RecordWriter io.Writer
	// DiscardRecord drops the in-memory audit record (Report.Record), for
	// long runs whose record would not fit in memory.
	DiscardRecord bool

	// Client, when set, sends the requests instead of one built from
	// Timeout and MaxConns. Timeout still bounds each attempt.
	Client *http.Client
	// Now is the clock for event timestamps and ULIDs. Latency and
	// elapsed time always use the monotonic wall clock. Default time.Now.
	Now func() time.Time
	// Seed seeds the generator's randomness (IDs, mix, users, jitter) so
	// a run's choices can be reproduced. 0 means seeded from the clock.
	Seed uint64
	// ReplyTokens, when set, issues the reply tokens of generated events,
	// so a LINE emulator honours the replies a bot sends to them. Default:
	// random tokens, which no LINE would accept.
	ReplyTokens ReplyTokens
}

// ReplyTokens is what issues reply tokens: in practice a LINE emulator.
type ReplyTokens interface {
	// Issue returns a fresh reply token for an event on channelID.
	Issue(channelID string) string
	// Redelivered is called just before a redelivery carrying token is
	// sent: LINE gives a redelivered event's token a fresh lifetime.
	Redelivered(token string)
}

// Validate applies defaults and checks the config. It is called by Run;
// callers may call it first to report usage errors early.
func (c *Config) Validate() error {
	c.applyDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base URL %q must be an absolute http or https URL", c.BaseURL)
	}
	if len(c.Channels) == 0 {
		bad("at least one channel is required")
	}
	for i, ch := range c.Channels {
		if !validChannelID(ch.ID) {
			bad("channel %d id %q: want %s", i, ch.ID, channelIDPatternExplains)
		}
		if ch.Secret == "" {
			bad("channel %q has an empty secret", ch.ID)
		}
	}
	if c.Rate < 0 || c.Concurrency < 0 || c.Duration < 0 || c.Requests < 0 {
		bad("rate, concurrency, duration and requests must not be negative")
	}
	if c.Rate > 0 && c.Concurrency > 0 {
		bad("set either rate (open loop) or concurrency (closed loop), not both")
	}
	if c.EventsPerRequest < 1 || c.EventsPerRequest > MaxEventsPerRequest {
		bad("events per request %d: want 1..%d", c.EventsPerRequest, MaxEventsPerRequest)
	}
	if err := c.Mix.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.GroupShare > 1 {
		bad("group share %v: want at most 1", c.GroupShare)
	}
	if c.Backoff <= 0 || c.MaxBackoff < c.Backoff || c.Timeout <= 0 {
		bad("backoff, max backoff and timeout must be positive, max backoff >= backoff")
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Rate == 0 && c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = DefaultDuration
	}
	if c.EventsPerRequest == 0 {
		c.EventsPerRequest = DefaultEventsPerRequest
	}
	if len(c.Mix) == 0 {
		c.Mix = DefaultMix()
	}
	if c.Users <= 0 {
		c.Users = DefaultUsers
	}
	// Negative GroupShare and Retries mean "none" and are kept negative,
	// so applying defaults twice (Validate, then Run) changes nothing.
	if c.GroupShare == 0 {
		c.GroupShare = DefaultGroupShare
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UnsendPool <= 0 {
		c.UnsendPool = DefaultUnsendPool
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Seed == 0 {
		c.Seed = uint64(c.Now().UnixNano())
	}
}

// validChannelID mirrors the channels table's check, so a typo fails here
// rather than as a stream of 404s.
func validChannelID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

func (m Mix) validate() error {
	total := 0
	for k, w := range m {
		if !knownKind(k) {
			return fmt.Errorf("%w: mix names unknown kind %q (known: %s)", ErrInvalidConfig, k, strings.Join(Kinds, ", "))
		}
		if w < 0 {
			return fmt.Errorf("%w: mix weight of %q is negative", ErrInvalidConfig, k)
		}
		total += w
	}
	if total == 0 {
		return fmt.Errorf("%w: mix weights sum to zero", ErrInvalidConfig)
	}
	return nil
}

func knownKind(k string) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// String renders the mix as ParseMix reads it, in Kinds order.
func (m Mix) String() string {
	var parts []string
	for _, k := range Kinds {
		if w, ok := m[k]; ok {
			parts = append(parts, k+"="+strconv.Itoa(w))
		}
	}
	return strings.Join(parts, ",")
}

// ParseMix reads "text=60,sticker=10,..." into a Mix.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil {
			return nil, fmt.Errorf("%w: mix entry %q: want kind=weight", ErrInvalidConfig, part)
		}
		m[strings.TrimSpace(k)] = w
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseChannels reads "id:secret,id:secret" into channels. The secrets are
// never echoed in errors.
func ParseChannels(s string) ([]Channel, error) {
	var out []Channel
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, secret, ok := strings.Cut(part, ":")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("%w: channel entry %d: want id:secret", ErrInvalidConfig, i)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: channel %q listed twice", ErrInvalidConfig, id)
		}
		seen[id] = true
		out = append(out, Channel{ID: id, Secret: secret})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no channels given", ErrInvalidConfig)
	}
	return out, nil
}

// sortedKinds is m's kinds with positive weight, in Kinds order, so a
// seeded run picks the same kinds whatever the map iteration order.
func (m Mix) sortedKinds() []string {
	var ks []string
	for _, k := range Kinds {
		if m[k] > 0 {
			ks = append(ks, k)
		}
	}
	return ks
}
