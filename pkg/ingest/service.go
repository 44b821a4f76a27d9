package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/stream"
)

// DefaultAdminAddr is where ingest serves /healthz, /readyz and /metrics.
// It is a separate listener from the webhook port so that a deployment
// publishes webhooks to the internet and nothing else.
const DefaultAdminAddr = ":9080"

// Settings is everything ingest reads from its environment.
type Settings struct {
	Handler         Config
	BundleMaxEvents int // events per bundle; 0 publishes each event as its own message
	Stream          stream.Config
	Server          ops.ServerConfig // webhooks only: the public port
	Admin           ops.ServerConfig // /healthz, /readyz, /metrics: never published
	DatabaseURL     string           // optional: the channels table
	ChannelID       string           // optional single channel configured by env
	ChannelSecret   string
	ChannelsRefresh time.Duration
	Keys            *secretbox.Keyring // LINEPIPE_SECRET_KEY: opens sealed channel secrets
	ShutdownGrace   time.Duration
	LogLevel        string
	GC              ops.GC
}

// SettingsFromEnv reads Settings; see the README's configuration table.
func SettingsFromEnv(env *config.Env) (Settings, error) {
	s := Settings{
		Handler: Config{
			MaxBodyBytes:     env.Bytes("INGEST_MAX_BODY_BYTES", DefaultMaxBodyBytes),
			PublishTimeout:   env.Duration("INGEST_PUBLISH_TIMEOUT", DefaultPublishTimeout),
			MaxInFlight:      env.Int("INGEST_MAX_IN_FLIGHT", DefaultMaxInFlight),
			MaxBufferedBytes: env.Bytes("INGEST_MAX_BUFFERED_BYTES", DefaultMaxBufferedBytes),
			TrustProxy:       env.Bool("INGEST_TRUST_PROXY", false),
		}.WithDefaults(),
		Admin:  ops.ServerConfig{Addr: env.String("INGEST_ADMIN_ADDR", DefaultAdminAddr)},
		Stream: stream.FromEnv(env),
		Server: ops.ServerConfig{
			Addr:     env.String("INGEST_ADDR", ":8080"),
			CertFile: env.String("TLS_CERT_FILE", ""),
			KeyFile:  env.String("TLS_KEY_FILE", ""),
		},
		BundleMaxEvents: env.Int("INGEST_BUNDLE_MAX_EVENTS", DefaultBundleMaxEvents),
		DatabaseURL:     env.String("DATABASE_URL", ""),
		ChannelID:       env.String("LINE_CHANNEL_ID", ""),
		ChannelSecret:   env.String("LINE_CHANNEL_SECRET", ""),
		ChannelsRefresh: env.Duration("INGEST_CHANNELS_REFRESH", 30*time.Second),
		ShutdownGrace:   env.Duration("SHUTDOWN_GRACE", 10*time.Second),
		LogLevel:        env.String("LOG_LEVEL", "info"),
	}
	gc, err := ops.GCFromEnv(env)
	if err != nil {
		return s, err
	}
	s.GC = gc
	if v := env.String("INGEST_TRUSTED_PROXIES", ""); v != "" {
		nets, err := ParseTrustedProxies(v)
		if err != nil {
			return s, fmt.Errorf("INGEST_TRUSTED_PROXIES: %w", err)
		}
		s.Handler.TrustedProxies = nets
	}
	keys, err := secretbox.FromEnv(env)
	if err != nil {
		return s, err
	}
	s.Keys = keys
	if err := env.Err(); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// Validate reports settings ingest cannot run with.
func (s Settings) Validate() error {
	var errs []error
	errs = append(errs, s.Handler.Validate(), s.Stream.Validate())
	if s.BundleMaxEvents < 0 {
		errs = append(errs, fmt.Errorf("INGEST_BUNDLE_MAX_EVENTS %d: 0 or more", s.BundleMaxEvents))
	}
	if (s.ChannelID == "") != (s.ChannelSecret == "") {
		errs = append(errs, errors.New("LINE_CHANNEL_ID and LINE_CHANNEL_SECRET go together"))
	}
	if s.ChannelID != "" && !stream.ValidChannelID(s.ChannelID) {
		errs = append(errs, fmt.Errorf("LINE_CHANNEL_ID %q: letters, digits, - and _ only", s.ChannelID))
	}
	if s.ChannelID == "" && s.DatabaseURL == "" {
		errs = append(errs, errors.New("no channel configured: set LINE_CHANNEL_ID and LINE_CHANNEL_SECRET, or DATABASE_URL for the channels table"))
	}
	if s.Admin.Addr == "" || s.Admin.Addr == s.Server.Addr {
		errs = append(errs, errors.New("INGEST_ADMIN_ADDR must be set and differ from INGEST_ADDR"))
	}
	if (s.Server.CertFile == "") != (s.Server.KeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together"))
	}
	return errors.Join(errs...)
}

// Run serves webhooks until ctx ends, then finishes in-flight requests and
// drains the NATS connection.
func Run(ctx context.Context, s Settings, log *zap.Logger) error {
	s.GC.Apply()
	nc, js, err := stream.Connect(s.Stream, "linepipe-ingest", log,
		jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = nc.Drain() }()
	streamReady := stream.EnsureInBackground(ctx, js, s.Stream, log)

	var secrets *Secrets
	static := map[string]string{}
	if s.ChannelID != "" {
		static[s.ChannelID] = s.ChannelSecret
	}
	if s.DatabaseURL != "" {
		pool, err := store.OpenService(ctx, s.DatabaseURL, 4)
		if err != nil {
			return err
		}
		defer pool.Close()
		if !s.Keys.Enabled() {
			log.Warn("LINEPIPE_SECRET_KEY is not set: channel credentials are stored in plaintext")
		}
		secrets = NewSecrets(pool, static, log, nil).WithKeys(s.Keys)
		go secrets.Run(ctx, s.ChannelsRefresh)
	} else {
		secrets = NewSecrets(nil, static, log, nil)
	}

	reg := ops.NewRegistry()
	metrics := NewMetrics(reg)
	var pub Publisher = JetStreamPublisher{JS: js}
	if s.BundleMaxEvents > 0 {
		bp := NewBundlePublisher(BundlePublisher{JS: js, Subject: s.Stream.BundleSubject(), Single: pub,
			MaxEvents: s.BundleMaxEvents, Timeout: s.Handler.PublishTimeout, Metrics: metrics, Log: log})
		// Bundles outlive the listener's graceful shutdown, so webhooks
		// still in flight then are stored; stopped before the drain.
		bctx, stopBundles := context.WithCancel(context.WithoutCancel(ctx))
		defer stopBundles()
		go bp.Run(bctx)
		pub = bp
	}
	h := &Handler{Config: s.Handler, Stream: s.Stream, Secrets: secrets, Publisher: pub,
		Metrics: metrics, Log: ops.AccessLog(log), Now: time.Now}
	admin := http.NewServeMux()
	ops.Mount(admin, readiness(nc, js, streamReady, s.Stream.Stream, secrets), reg)

	srv := ops.NewServer(s.Server, h, log)
	adminSrv := ops.NewServer(s.Admin, admin, log)
	log.Info("ingest listening", zap.String("addr", s.Server.Addr), zap.String("admin_addr", s.Admin.Addr),
		zap.Bool("tls", s.Server.CertFile != ""), zap.String("stream", s.Stream.Stream))
	// Both listeners stop together: a failed admin port is as fatal as a
	// failed webhook port, since an unready ingest is never sent traffic.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	// The server's max_payload is known once connected: NATS down at
	// start delays the check, and readiness, instead of failing it.
	fits := make(chan error, 1)
	go func() {
		err := awaitPayload(sctx, nc, s.Handler.FitsPayload)
		if err != nil {
			stop()
		}
		fits <- err
	}()
	adminErr := make(chan error, 1)
	go func() {
		err := ops.Serve(sctx, adminSrv, s.Admin, s.ShutdownGrace)
		stop()
		adminErr <- err
	}()
	err = ops.Serve(sctx, srv, s.Server, s.ShutdownGrace)
	stop()
	if aerr := <-adminErr; err == nil && aerr != nil {
		err = fmt.Errorf("admin listener: %w", aerr)
	}
	if ferr := <-fits; ferr != nil {
		err = ferr
	}
	return err
}

// payloadServer is what awaitPayload needs of the NATS connection.
type payloadServer interface {
	MaxPayload() int64
}

// awaitPayload checks the server's max_payload with fits once it is known:
// a connection that is still retrying its first server knows none (0).
// It returns fits' verdict, or nil if ctx ends first.
func awaitPayload(ctx context.Context, nc payloadServer, fits func(int64) error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if mp := nc.MaxPayload(); mp > 0 {
			return fits(mp)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readiness is ready only while JetStream answers, the stream exists and
// secrets has read the channels table once: without any of them every
// webhook would get 503. A replica started during a Postgres outage thus
// stays out of rotation, while those already serving keep their cached
// secrets.
func readiness(nc *nats.Conn, js jetstream.JetStream, streamReady <-chan struct{}, name string, secrets *Secrets) ops.ReadyFunc {
	return func(ctx context.Context) error {
		if !secrets.Read() {
			return ops.NotReady("channels", errors.New("channels table not read yet"))
		}
		select {
		case <-streamReady:
		default:
			return ops.NotReady("stream", errors.New("not created yet"))
		}
		if !nc.IsConnected() {
			return ops.NotReady("nats", errors.New("disconnected"))
		}
		if _, err := js.Stream(ctx, name); err != nil {
			return ops.NotReady("stream", err)
		}
		return nil
	}
}
