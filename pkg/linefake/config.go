package linefake

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/linefake/openapi"
)

// Defaults, each taken from LINE's published behaviour (see the field docs
// on Config). They live here and nowhere else.
const (
	DefaultReplyTokenTTL         = time.Minute          // "within one minute" of the webhook
	DefaultRedeliveredReplyLimit = 20 * time.Minute     // redelivered tokens die 20 min after the event
	DefaultRetryKeyWindow        = 24 * time.Hour       // retry key management period
	DefaultStatelessTokenTTL     = 15 * time.Minute     // stateless token expires_in: 900
	DefaultMaxBodyBytes          = openapi.MaxBodyBytes // "Request larger than 2MB" -> 413
	DefaultWebhookTimeout        = 2 * time.Second      // "reply within 2 seconds", else request_timeout
)

// Limit is a token-bucket rate: a bucket of Requests tokens that refills
// completely over Per. The zero value means "LINE's default for this
// endpoint"; a negative Requests means no limit at all.
type Limit struct {
	Requests int           `json:"requests"`
	Per      time.Duration `json:"per"`
}

// Unlimited disables a rate limit.
var Unlimited = Limit{Requests: -1}

func (l Limit) String() string {
	if l.Requests < 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", l.Requests, l.Per)
}

// ParseLimit reads "N/duration" ("2000/1s", "60/1h") or "off".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "-1" {
		return Unlimited, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: want N/duration or off", s)
	}
	reqs, err := strconv.Atoi(n)
	if err != nil || reqs <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: bad request count", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: bad period", s)
	}
	return Limit{Requests: reqs, Per: d}, nil
}

// RateLimits are per channel and per endpoint, as LINE applies them.
// Zero fields take LINE's published rates: push and reply 2,000/s,
// multicast 200/s, narrowcast and broadcast 60/hour, and 2,000/s for
// "Other API endpoints".
type RateLimits struct {
	Push       Limit `json:"push"`
	Reply      Limit `json:"reply"`
	Multicast  Limit `json:"multicast"`
	Narrowcast Limit `json:"narrowcast"`
	Broadcast  Limit `json:"broadcast"`
	// Other is LINE's "Other API endpoints" row. Get content and get
	// transcoding status have no row of their own, so it applies to
	// them; LINE limits per endpoint, so each of the two has its own
	// bucket at this rate (a transcoding poll never spends a download's
	// budget).
	Other Limit `json:"other"`
}

// UserCap is the cap on messages pushed to one user. LINE answers push
// with 429 "A large number of messages were sent to the same user" but
// publishes no numbers, so the cap is off unless Messages > 0.
type UserCap struct {
	Messages int           `json:"messages"`
	Per      time.Duration `json:"per"`
}

// Channel is one LINE channel the emulator serves.
type Channel struct {
	// ID is the channel ID (client_id for the token endpoint).
	ID string `json:"id"`
	// Secret signs webhooks and authenticates token issue.
	Secret string `json:"secret"`
	// AccessTokens are static (long-lived style) tokens accepted as Bearer.
	AccessTokens []string `json:"accessTokens,omitempty"`
	// BotUserID is the webhook "destination". Default: "U" + 32 hex
	// derived from ID.
	BotUserID string `json:"botUserId,omitempty"`
}

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// Channels served from the start. More can be added with AddChannel.
	Channels []Channel
	// Clock is the time every LINE rule is judged by (token expiry, reply
	// token TTL, retry-key window, rate buckets). Default time.Now.
	// Injected latency is always real time, since it delays a real client.
	Clock func() time.Time
	// Seed seeds the random source behind faults, reply tokens, quote
	// tokens and webhook event ids. 0 picks a seed from the time.
	Seed uint64
	// RateLimits per channel and endpoint; zero fields are LINE's rates.
	RateLimits RateLimits
	// UserCap on pushes to the same user; off by default.
	UserCap UserCap
	// ReplyTokenTTL is how long an issued reply token works. Default 1m.
	ReplyTokenTTL time.Duration
	// RedeliveredReplyLimit: a redelivered event's token works only this
	// long after the event occurred. Default 20m.
	RedeliveredReplyLimit time.Duration
	// RetryKeyWindow is how long an accepted X-Line-Retry-Key is
	// remembered. Default 24h; after it a reused key is a new request.
	RetryKeyWindow time.Duration
	// StatelessTokenTTL is the life of a token from /oauth2/v3/token.
	// Default 15m.
	StatelessTokenTTL time.Duration
	// MaxBodyBytes above which a send gets 413. Default 2,000,000 (LINE's
	// "2MB", read strictly).
	MaxBodyBytes int64
	// Faults injected into send requests from the start.
	Faults Faults
	// ContentFaults are injected into the data API (content and
	// transcoding); DropRate there cuts a body half way.
	ContentFaults Faults
	// ContentPreparing is how long a video or audio answers 202 (and
	// transcoding "processing") after its webhook event. Default 0.
	ContentPreparing time.Duration
	// Log gets one line per request when set. Default: no logging.
	Log *zap.Logger
	// WebhookClient sends webhooks. Default: a client that gives up after
	// DefaultWebhookTimeout, as LINE counts a webhook not answered within
	// 2 s failed (request_timeout).
	WebhookClient *http.Client
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	defLimit(&c.RateLimits.Push, Limit{2000, time.Second})
	defLimit(&c.RateLimits.Reply, Limit{2000, time.Second})
	defLimit(&c.RateLimits.Multicast, Limit{200, time.Second})
	defLimit(&c.RateLimits.Narrowcast, Limit{60, time.Hour})
	defLimit(&c.RateLimits.Broadcast, Limit{60, time.Hour})
	defLimit(&c.RateLimits.Other, Limit{2000, time.Second})
	defDur(&c.ReplyTokenTTL, DefaultReplyTokenTTL)
	defDur(&c.RedeliveredReplyLimit, DefaultRedeliveredReplyLimit)
	defDur(&c.RetryKeyWindow, DefaultRetryKeyWindow)
	defDur(&c.StatelessTokenTTL, DefaultStatelessTokenTTL)
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.WebhookClient == nil {
		c.WebhookClient = &http.Client{Timeout: DefaultWebhookTimeout}
	}
}

func defLimit(l *Limit, def Limit) {
	if l.Requests == 0 {
		*l = def
	}
}

func defDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every setting that cannot work. New calls it after
// filling defaults.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, ch := range c.Channels {
		if err := ch.validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[ch.ID] {
			errs = append(errs, fmt.Errorf("channel %q listed twice", ch.ID))
		}
		seen[ch.ID] = true
	}
	for name, l := range map[string]Limit{"push": c.RateLimits.Push, "reply": c.RateLimits.Reply,
		"multicast": c.RateLimits.Multicast, "narrowcast": c.RateLimits.Narrowcast, "broadcast": c.RateLimits.Broadcast, "other": c.RateLimits.Other} {
		if l.Requests > 0 && l.Per <= 0 {
			errs = append(errs, fmt.Errorf("rate limit %s: period must be positive", name))
		}
	}
	if c.UserCap.Messages > 0 && c.UserCap.Per <= 0 {
		errs = append(errs, errors.New("user cap: period must be positive"))
	}
	for name, d := range map[string]time.Duration{"reply token TTL": c.ReplyTokenTTL,
		"retry key window": c.RetryKeyWindow, "stateless token TTL": c.StatelessTokenTTL,
		"redelivered reply limit": c.RedeliveredReplyLimit} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("max body bytes must not be negative"))
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ContentFaults.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("content %w", err))
	}
	if c.ContentPreparing < 0 {
		errs = append(errs, errors.New("content preparing period must not be negative"))
	}
	return errors.Join(errs...)
}

func (ch Channel) validate() error {
	if ch.ID == "" || ch.Secret == "" {
		return fmt.Errorf("channel %q: id and secret are required", ch.ID)
	}
	if ch.BotUserID != "" && !userIDPattern.MatchString(ch.BotUserID) {
		return fmt.Errorf("channel %q: bot user id must be U + 32 hex", ch.ID)
	}
	return nil
}

// ParseChannels reads "id:secret[:token],id2:secret2" as used by the
// LINEFAKE_CHANNELS variable.
func ParseChannels(s string) ([]Channel, error) {
	var out []Channel
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, ":")
		if len(f) < 2 || len(f) > 3 || f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("channel entry %d: want id:secret[:token]", len(out))
		}
		ch := Channel{ID: f[0], Secret: f[1]}
		if len(f) == 3 && f[2] != "" {
			ch.AccessTokens = []string{f[2]}
		}
		out = append(out, ch)
	}
	return out, nil
}
