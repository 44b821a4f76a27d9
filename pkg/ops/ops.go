// Package ops is what every linepipe service shares to be operated: the
// zap logger, the /healthz, /readyz and /metrics endpoints (with
// linepipe_build_info), HTTP servers with timeouts set that bind at start
// so a bad address stops the service at once, and shutdown on SIGTERM.
package ops

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/linepipe/linepipe/pkg/buildinfo"
)

// NewLogger builds a JSON production logger at level ("debug", "info",
// "warn", "error") writing to stderr. Services never log secrets, tokens
// or message text; the logger itself cannot know, so the rule is kept at
// each call site.
//
// Lines are buffered and written at least every second (see
// buffered): one write(2) per line was 5–8 % of ingest's and the
// sender's CPU, which log every webhook and every API call.
func NewLogger(level, service string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL=%q: %w", level, err)
	}
	log, _ := newLogger(lvl, service, os.Stderr)
	return log, nil
}

// NewRegistry is a Prometheus registry with the Go and process
// collectors and linepipe_build_info.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector(buildinfo.Get()))
	return reg
}

// buildInfoCollector is the gauge linepipe_build_info{version,commit,
// goversion} = 1, so a dashboard can tell which release each replica runs
// during a rolling deploy.
func buildInfoCollector(in buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "linepipe_build_info",
		Help: "Always 1; the labels say which linepipe build this process runs.",
	}, []string{"version", "commit", "goversion"})
	g.WithLabelValues(in.Version, in.Commit, in.GoVersion).Set(1)
	return g
}

// ReadyFunc reports whether the service can do its work now. Return
// NotReady errors: /readyz shows only their component, never the cause.
type ReadyFunc func(ctx context.Context) error

// NotReadyError names the dependency that is not ready. Its cause stays
// in the process (logs, errors.Unwrap); /readyz is often reachable by
// more people than the logs, so it shows only "not ready: <component>".
type NotReadyError struct {
	Component string // e.g. "database", "schema", "nats", "stream"
	Err       error
}

func (e *NotReadyError) Error() string {
	if e.Err == nil {
		return e.Component + " not ready"
	}
	return e.Component + ": " + e.Err.Error()
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// NotReady wraps err as component's readiness failure.
func NotReady(component string, err error) error {
	return &NotReadyError{Component: component, Err: err}
}

// ReadyBody is the /readyz answer for err: "ready", "not ready:
// <component>", or "not ready" when err names no component.
func ReadyBody(err error) string {
	if err == nil {
		return "ready"
	}
	var nr *NotReadyError
	if errors.As(err, &nr) && nr.Component != "" {
		return "not ready: " + nr.Component
	}
	return "not ready"
}

// Mount adds /healthz (the process is alive), /readyz (ready answers nil
// within two seconds) and /metrics to mux. A failed readiness answers 503
// with a fixed body: the reason (hostnames, driver errors) stays out of
// reach of whoever can reach the port.
func Mount(mux *http.ServeMux, ready ReadyFunc, reg *prometheus.Registry) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, ReadyBody(err), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// ServerConfig is an HTTP server's address, optional TLS and timeouts.
type ServerConfig struct {
	Addr     string
	CertFile string // with KeyFile, serve TLS 1.2 or newer
	KeyFile  string
	// ReadTimeout bounds reading a whole request. LINE waits 2 s for an
	// answer, so anything slower is already lost.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// Listener, when set, wraps the listener Start opens: the emulator's
	// takes each request's arrival time from the kernel.
	Listener func(net.Listener) net.Listener
}

// NewServer builds an http.Server with every timeout set, so a slow or
// stuck client cannot hold a connection open.
func NewServer(cfg ServerConfig, h http.Handler, log *zap.Logger) *http.Server {
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	if cfg.CertFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return srv
}

// Listen binds cfg.Addr now, so a port that is taken or an address that
// is wrong stops the service at start with a message naming it, instead
// of surfacing only when the server is shut down.
func Listen(cfg ServerConfig) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %q: %w", cfg.Addr, err)
	}
	return ln, nil
}

// Start binds srv's address (see Listen) and serves it in the background
// until ctx ends, then shuts it down gracefully: in-flight requests finish
// (up to grace). A bind failure is returned at once. The channel yields
// exactly one value when serving has ended: nil after a graceful
// shutdown, or the error that stopped the server, which a service must
// treat as fatal.
func Start(ctx context.Context, srv *http.Server, cfg ServerConfig, grace time.Duration) (<-chan error, error) {
	if cfg.CertFile != "" {
		// Load the pair now: a bad certificate is a start-up error too.
		if _, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("loading TLS certificate for %q: %w", cfg.Addr, err)
		}
	}
	ln, err := Listen(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Listener != nil {
		ln = cfg.Listener(ln)
	}
	served := make(chan error, 1)
	go func() {
		var err error
		if cfg.CertFile != "" {
			err = srv.ServeTLS(ln, cfg.CertFile, cfg.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("serving %q: %w", cfg.Addr, err)
		}
		served <- err
	}()
	done := make(chan error, 1)
	go func() {
		select {
		case err := <-served:
			done <- err
			return
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			<-served
			done <- fmt.Errorf("shutting down http server: %w", err)
			return
		}
		done <- <-served
	}()
	return done, nil
}

// Serve is Start followed by waiting for the server to end.
func Serve(ctx context.Context, srv *http.Server, cfg ServerConfig, grace time.Duration) error {
	done, err := Start(ctx, srv, cfg, grace)
	if err != nil {
		return err
	}
	return <-done
}

// SignalContext is cancelled on SIGTERM or SIGINT: the start of a graceful
// shutdown.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
