// Package stream owns linepipe's JetStream topology: the connection, the
// one stream every inbound event passes through, and its subjects.
//
// The stream keeps its messages (limits retention) and the worker purges
// them in bulk once they are committed to Postgres, normally within a
// fraction of a second (see the worker's purger). Nothing that was stored
// lingers on the stream, which is what lets an unsend leave no readable
// copy behind. A stream made earlier with work-queue retention is kept
// as it is: NATS cannot change a stream's retention in place. It targets
// NATS Server 2.9 or newer.
package stream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Defaults for Config.
const (
	DefaultURL           = "nats://127.0.0.1:4222"
	DefaultStream        = "LINEPIPE"
	DefaultSubjectPrefix = "linepipe"
	DefaultReplicas      = 1
	// DefaultDuplicates is how long JetStream remembers a Nats-Msg-Id.
	// LINE does not disclose how long it redelivers; a day covers the
	// redeliveries seen in practice, and Postgres' unique key covers the rest.
	DefaultDuplicates = 24 * time.Hour
)

// Config names the stream and how it is stored.
type Config struct {
	// URL of the NATS server(s), comma-separated. Default DefaultURL.
	URL string
	// Stream name. Default DefaultStream.
	Stream string
	// SubjectPrefix of every subject on the stream. Default DefaultSubjectPrefix.
	SubjectPrefix string
	// Replicas of the stream in a NATS cluster (1, 3 or 5). Default 1.
	Replicas int
	// Duplicates is the Nats-Msg-Id deduplication window. Default DefaultDuplicates.
	Duplicates time.Duration
	// Auth is how the service proves who it is to NATS, and optional TLS.
	Auth Auth
}

// Auth is a service's NATS identity: a user and password, a credentials
// file (JWT and nkey, NATS_CREDS) or an nkey seed file; and TLS settings.
// Credentials are never logged.
type Auth struct {
	User         string // NATS_USER
	Password     string // NATS_PASSWORD or NATS_PASSWORD_FILE
	CredsFile    string // NATS_CREDS
	NKeySeedFile string // NATS_NKEY_SEED_FILE
	TLSCA        string // NATS_TLS_CA: verify the server against this CA
	TLSCert      string // NATS_TLS_CERT, with NATS_TLS_KEY: client certificate
	TLSKey       string
}

// Validate reports combinations that cannot work.
func (a Auth) Validate() error {
	n := 0
	for _, set := range []bool{a.User != "", a.CredsFile != "", a.NKeySeedFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("NATS_USER, NATS_CREDS and NATS_NKEY_SEED_FILE: set one")
	case a.Password != "" && a.User == "":
		return errors.New("NATS_PASSWORD needs NATS_USER")
	case (a.TLSCert == "") != (a.TLSKey == ""):
		return errors.New("NATS_TLS_CERT and NATS_TLS_KEY go together")
	}
	return nil
}

func (a Auth) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_SEED_FILE: %w", err)
		}
		opts = append(opts, o)
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	return c
}

// Validate reports a config the server would reject or misroute.
func (c Config) Validate() error {
	if !tokenRE.MatchString(c.Stream) {
		return fmt.Errorf("stream name %q: use letters, digits, - and _", c.Stream)
	}
	if !tokenRE.MatchString(c.SubjectPrefix) {
		return fmt.Errorf("subject prefix %q: use letters, digits, - and _", c.SubjectPrefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas)
	}
	return c.Auth.Validate()
}

// EventSubject is where ingest publishes the events of one channel.
func (c Config) EventSubject(channelID string) string {
	return c.SubjectPrefix + ".event." + channelID
}

// WebhookLogSubject is where ingest publishes the record of an accepted webhook.
func (c Config) WebhookLogSubject(channelID string) string {
	return c.SubjectPrefix + ".webhook." + channelID
}

// BundleSubject is where ingest publishes bundles: the events of several
// webhooks, of any channels, in one stream message (events.EncodeBundle).
func (c Config) BundleSubject() string { return c.SubjectPrefix + ".bundle" }

// AllSubjects matches every subject on the stream.
func (c Config) AllSubjects() string { return c.SubjectPrefix + ".>" }

// ValidChannelID reports whether id is safe as a subject token (and a
// channels.channel_id). LINE channel ids are decimal digits.
func ValidChannelID(id string) bool { return len(id) <= 64 && tokenRE.MatchString(id) }

// Connect dials NATS with unlimited reconnects, so a service rides out a
// NATS restart, and logs connection changes on log.
func Connect(cfg Config, name string, log *zap.Logger, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	authOpts, err := cfg.Auth.options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(cfg.URL, append(authOpts,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Closing or draining the connection ourselves (every service
		// does at shutdown) is no disconnect worth a warning: it runs no
		// callbacks. A connection lost or closed by the server still does.
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if err == nil { // the server closed it; say why
				err = c.LastError()
			}
			log.Warn("nats disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted()))
		}),
		// A permission violation (a subject this user may not use) is
		// a deployment error worth seeing, not a silent drop.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats error", zap.Error(err))
		}),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to nats: %w", err)
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("creating jetstream context: %w", err)
	}
	return nc, js, nil
}

// StreamConfig is the stream every stage expects.
func (c Config) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "linepipe inbound webhook events (purged by the worker once stored)",
		Subjects:    []string{c.AllSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.Duplicates,
		Discard:     jetstream.DiscardOld,
	}
}

// configFor is StreamConfig for the stream as it stands: one made with
// work-queue retention keeps it, because NATS refuses to change a
// stream's retention to or from work queue. Such a stream works as
// before; the worker warns that it is slower (README: Migrations and
// upgrades).
func configFor(ctx context.Context, js jetstream.JetStream, cfg Config) jetstream.StreamConfig {
	want := cfg.StreamConfig()
	if s, err := js.Stream(ctx, cfg.Stream); err == nil && s.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		want.Retention = jetstream.WorkQueuePolicy
		want.Description = "linepipe inbound webhook events (work queue: removed once stored)"
	}
	return want
}

// Ensure creates the stream or updates it to StreamConfig. Whichever stage
// starts first does it; the call is idempotent. It retries until ctx ends,
// because at start-up NATS may still be coming up.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	for {
		s, err := js.CreateOrUpdateStream(ctx, configFor(ctx, js, cfg))
		if err == nil {
			return s, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || ctx.Err() != nil {
			return nil, fmt.Errorf("ensuring stream %s: %w", cfg.Stream, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ensuring stream %s: %w", cfg.Stream, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// FromEnv reads the stream settings every stage shares.
func FromEnv(env interface {
	String(string, string) string
	Int(string, int) int
	Duration(string, time.Duration) time.Duration
}) Config {
	return Config{
		URL:           env.String("NATS_URL", DefaultURL),
		Stream:        env.String("NATS_STREAM", DefaultStream),
		SubjectPrefix: env.String("NATS_SUBJECT_PREFIX", DefaultSubjectPrefix),
		Replicas:      env.Int("NATS_REPLICAS", DefaultReplicas),
		Duplicates:    env.Duration("NATS_DUPLICATES_WINDOW", DefaultDuplicates),
		Auth: Auth{
			User:         env.String("NATS_USER", ""),
			Password:     env.String("NATS_PASSWORD", ""),
			CredsFile:    env.String("NATS_CREDS", ""),
			NKeySeedFile: env.String("NATS_NKEY_SEED_FILE", ""),
			TLSCA:        env.String("NATS_TLS_CA", ""),
			TLSCert:      env.String("NATS_TLS_CERT", ""),
			TLSKey:       env.String("NATS_TLS_KEY", ""),
		},
	}.WithDefaults()
}

// EnsureInBackground keeps trying to create or update the stream until it
// succeeds or ctx ends, and reports success by closing the returned
// channel. Services start serving at once and become ready when it closes,
// so a NATS outage at start-up delays readiness instead of crashing.
func EnsureInBackground(ctx context.Context, js jetstream.JetStream, cfg Config, log *zap.Logger) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for attempt := 0; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := js.CreateOrUpdateStream(actx, configFor(actx, js, cfg))
			cancel()
			if err == nil {
				close(done)
				return
			}
			if attempt%20 == 0 {
				log.Warn("stream not ready; retrying", zap.String("stream", cfg.Stream), zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return done
}
