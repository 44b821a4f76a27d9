package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
)

// Settings is the sender service's whole configuration.
type Settings struct {
	Sender      Config
	DatabaseURL string // DATABASE_URL
	Addr        string // SENDER_ADDR: /healthz, /readyz, /metrics
	LogLevel    string // LOG_LEVEL
	// Channel, when LINE_CHANNEL_ID is set, seeds channels at start when
	// the row is absent, so a single-channel deployment needs no SQL. Once
	// the row exists it wins: a rotated secret or token is never reverted
	// by a restart. channels stays the one place tokens are read from.
	Channel store.Channel
	// Keys (LINEPIPE_SECRET_KEY) seal a seeded channel's credentials and
	// open sealed ones; nil stores and reads plaintext.
	Keys *secretbox.Keyring
	// Grace bounds the HTTP server's shutdown.
	Grace time.Duration
	// DBMaxConns (SENDER_DB_MAX_CONNS) caps the pool. Each attempt holds
	// a connection only for its one completion statement, so a few serve
	// hundreds of requests in flight; Postgres connections are scarce.
	DBMaxConns int
	// Content is the content fetcher role (see content.go).
	Content ContentSettings
}

// SettingsFromEnv reads the service's environment.
func SettingsFromEnv(env *config.Env) (Settings, error) {
	cfg, rateErr := FromEnv(env)
	s := Settings{
		Sender:      cfg,
		DatabaseURL: env.String("DATABASE_URL", ""),
		Addr:        env.String("SENDER_ADDR", ":8082"),
		LogLevel:    env.String("LOG_LEVEL", "info"),
		Channel: store.Channel{
			ID:          env.String("LINE_CHANNEL_ID", ""),
			Secret:      env.String("LINE_CHANNEL_SECRET", ""),
			AccessToken: env.String("LINE_CHANNEL_ACCESS_TOKEN", ""),
		},
		Grace:      env.Duration("SHUTDOWN_GRACE", 10*time.Second),
		DBMaxConns: env.Int("SENDER_DB_MAX_CONNS", 8),
	}
	keys, keyErr := secretbox.FromEnv(env)
	s.Keys = keys
	s.Sender.Keys = keys
	chk := cfg
	chk.setDefaults()
	var contentErr error
	s.Content, contentErr = contentSettingsFromEnv(env)
	errs := []error{env.Err(), rateErr, keyErr, chk.Validate(), contentErr}
	if s.DBMaxConns < 2 {
		errs = append(errs, errors.New("SENDER_DB_MAX_CONNS must be at least 2"))
	}
	if s.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if s.Channel.ID != "" && s.Channel.Secret == "" {
		errs = append(errs, errors.New("LINE_CHANNEL_SECRET is required with LINE_CHANNEL_ID"))
	}
	return s, errors.Join(errs...)
}

// RunService runs the sender and its ops endpoints until ctx ends.
func RunService(ctx context.Context, st Settings, log *zap.Logger) error {
	pool, err := store.OpenService(ctx, st.DatabaseURL, int32(st.DBMaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	if !st.Keys.Enabled() {
		log.Warn("LINEPIPE_SECRET_KEY is not set: channel credentials are stored in plaintext")
	}
	if st.Channel.ID != "" {
		sealed, err := st.Channel.Sealed(st.Keys)
		if err != nil {
			return err
		}
		seeded, err := store.SeedChannel(ctx, pool, sealed)
		if err != nil {
			return err
		}
		log.Info("channel from environment", zap.String("channel", st.Channel.ID), zap.Bool("seeded", seeded))
	}
	reg := ops.NewRegistry()
	cfg := st.Sender
	cfg.Log, cfg.Registerer = log, reg
	snd, err := New(cfg, pool)
	if err != nil {
		return err
	}
	runContent, closeContent, err := startContent(st.Content, snd, reg, log)
	if err != nil {
		return fmt.Errorf("content fetcher: %w", err)
	}
	defer closeContent()
	var schema store.SchemaCheck
	ready := func(ctx context.Context) error {
		if err := snd.Ready(ctx); err != nil {
			return ops.NotReady("database", err)
		}
		if err := schema.Ready(ctx, pool); err != nil {
			return ops.NotReady("schema", err)
		}
		return nil
	}
	mux := http.NewServeMux()
	ops.Mount(mux, ready, reg)
	srvCfg := ops.ServerConfig{Addr: st.Addr}
	srv := ops.NewServer(srvCfg, mux, log)

	// The ops server outlives the sender's drain so /healthz answers
	// while in-flight sends finish. It binds before the first claim: a
	// taken port stops the sender at start.
	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	srvErr, err := ops.Start(srvCtx, srv, srvCfg, st.Grace)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var failed error
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// The ops server ends before stopSrv only if it failed: stop
		// sending rather than run on unseen.
		select {
		case err := <-srvErr:
			if err == nil {
				err = errors.New("stopped")
			}
			failed = fmt.Errorf("ops server: %w", err)
			stopRun()
		case <-runCtx.Done():
		}
	}()

	log.Info("sender started", zap.String("addr", st.Addr), zap.String("api", config.RedactURL(cfg.BaseURL)))
	contentErr := make(chan error, 1)
	go func() {
		// Should the fetcher end with an error (it cannot go on), stop
		// the sender too, so it is restarted and seen, rather than
		// send on with no content fetched.
		err := runContent(runCtx)
		if err != nil {
			log.Error("content fetcher stopped; stopping the sender", zap.Error(err))
			stopRun()
		}
		contentErr <- err
	}()
	runErr := snd.Run(runCtx)
	stopRun()
	if err := <-contentErr; err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("content fetcher: %w", err))
	}
	<-watched
	if failed != nil {
		return failed
	}
	stopSrv()
	if err := <-srvErr; err != nil && runErr == nil {
		return fmt.Errorf("ops server: %w", err)
	}
	return runErr
}
