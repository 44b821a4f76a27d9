package linefake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
)

// Settings is what the linefake command reads from its environment.
type Settings struct {
	Config   Config
	HTTP     ops.ServerConfig
	LogLevel string
}

// SettingsFromEnv reads the LINEFAKE_* variables. Unset variables take
// LINE's own values (rates, TTLs) and no faults; every bad value is
// reported at once.
func SettingsFromEnv(env *config.Env) (Settings, error) {
	var s Settings
	var errs []error
	s.HTTP.Addr = env.String("LINEFAKE_ADDR", ":8090")
	s.LogLevel = env.String("LOG_LEVEL", "info")
	chs, err := ParseChannels(env.String("LINEFAKE_CHANNELS", ""))
	if err != nil {
		errs = append(errs, fmt.Errorf("LINEFAKE_CHANNELS: %w", err))
	}
	c := Config{Channels: chs, Seed: uint64(env.Int("LINEFAKE_SEED", 0))}
	c.Faults = Faults{
		FailRate:         env.Float("LINEFAKE_FAIL_RATE", 0),
		DropRate:         env.Float("LINEFAKE_DROP_RATE", 0),
		AcceptedFailRate: env.Float("LINEFAKE_ACCEPTED_FAIL_RATE", 0),
		TooManyRate:      env.Float("LINEFAKE_429_RATE", 0),
		Latency:          env.Duration("LINEFAKE_LATENCY", 0),
		LatencyJitter:    env.Duration("LINEFAKE_LATENCY_JITTER", 0),
	}
	c.ContentFaults = Faults{
		FailRate:    env.Float("LINEFAKE_CONTENT_FAIL_RATE", 0),
		DropRate:    env.Float("LINEFAKE_CONTENT_DROP_RATE", 0),
		TooManyRate: env.Float("LINEFAKE_CONTENT_429_RATE", 0),
	}
	c.ContentPreparing = env.Duration("LINEFAKE_CONTENT_PREPARING", 0)
	c.ReplyTokenTTL = env.Duration("LINEFAKE_REPLY_TOKEN_TTL", DefaultReplyTokenTTL)
	c.RetryKeyWindow = env.Duration("LINEFAKE_RETRY_KEY_WINDOW", DefaultRetryKeyWindow)
	limits := []struct {
		key string
		dst *Limit
	}{
		{"LINEFAKE_RATE_PUSH", &c.RateLimits.Push}, {"LINEFAKE_RATE_REPLY", &c.RateLimits.Reply},
		{"LINEFAKE_RATE_MULTICAST", &c.RateLimits.Multicast}, {"LINEFAKE_RATE_NARROWCAST", &c.RateLimits.Narrowcast},
		{"LINEFAKE_RATE_BROADCAST", &c.RateLimits.Broadcast}, {"LINEFAKE_RATE_OTHER", &c.RateLimits.Other},
	}
	for _, l := range limits {
		if v := env.String(l.key, ""); v != "" {
			if *l.dst, err = ParseLimit(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l.key, err))
			}
		}
	}
	if v := env.String("LINEFAKE_USER_CAP", "off"); v != "off" {
		l, err := ParseLimit(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LINEFAKE_USER_CAP: %w", err))
		}
		c.UserCap = UserCap{Messages: l.Requests, Per: l.Per}
	}
	errs = append(errs, env.Err(), c.Validate())
	s.Config = c
	return s, errors.Join(errs...)
}

// Run serves the emulator, with /readyz and /metrics beside it, until ctx
// ends, then shuts down gracefully.
func Run(ctx context.Context, s Settings, log *zap.Logger) error {
	s.Config.Log = log
	fake := New(s.Config)
	mux := http.NewServeMux()
	ops.Mount(mux, func(context.Context) error { return nil }, ops.NewRegistry())
	mux.Handle("/", fake)
	// Rate limits time a request by when it reached the host (arrival.go).
	s.HTTP.Listener = ArrivalListener
	srv := ops.NewServer(s.HTTP, mux, log)
	srv.ConnContext = ConnContext
	log.Info("linefake listening", zap.String("addr", s.HTTP.Addr), zap.Int("channels", len(s.Config.Channels)))
	if err := ops.Serve(ctx, srv, s.HTTP, 10*time.Second); err != nil {
		return fmt.Errorf("serving linefake: %w", err)
	}
	return nil
}
