package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

// NoopHandler answers webhooks the way ingest does up to the point where
// ingest would publish: POST /webhook/{channelID}, body read (at most
// NoopMaxBodyBytes, else 413), signature verified (401 if bad),
// then 200. It publishes nothing. Driven by the same generator in the same
// run, it is the HTTP ceiling that ingest's throughput is compared with.
type NoopHandler struct {
	secrets  map[string]string
	mux      *http.ServeMux
	accepted atomic.Int64
	rejected atomic.Int64
}

// NewNoopHandler serves the given channels; other channel IDs get 404.
func NewNoopHandler(channels []Channel) *NoopHandler {
	h := &NoopHandler{secrets: map[string]string{}, mux: http.NewServeMux()}
	for _, c := range channels {
		h.secrets[c.ID] = c.Secret
	}
	h.mux.HandleFunc("POST /webhook/{channelID}", h.webhook)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return h
}

func (h *NoopHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Accepted and Rejected count requests answered 200 and otherwise.
func (h *NoopHandler) Accepted() int64 { return h.accepted.Load() }
func (h *NoopHandler) Rejected() int64 { return h.rejected.Load() }

func (h *NoopHandler) webhook(w http.ResponseWriter, r *http.Request) {
	secret, ok := h.secrets[r.PathValue("channelID")]
	if !ok {
		h.fail(w, http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, NoopMaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, http.StatusRequestEntityTooLarge)
			return
		}
		h.fail(w, http.StatusBadRequest)
		return
	}
	if events.VerifySignature(secret, r.Header.Get(events.SignatureHeader), body) != nil {
		h.fail(w, http.StatusUnauthorized)
		return
	}
	h.accepted.Add(1)
	w.WriteHeader(http.StatusOK)
}

func (h *NoopHandler) fail(w http.ResponseWriter, code int) {
	h.rejected.Add(1)
	http.Error(w, http.StatusText(code), code)
}

// NoopServer is a running no-op reference server.
type NoopServer struct {
	// URL is the base URL to give Config.BaseURL, e.g. http://127.0.0.1:39221.
	URL     string
	Handler *NoopHandler
	srv     *http.Server
	done    chan error
}

// StartNoopServer listens on addr (":0" picks a free port) and serves a
// NoopHandler for channels until Close. Timeouts match a production
// server's, so a stuck client cannot hold it.
func StartNoopServer(addr string, channels []Channel) (*NoopServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("noop server: listening on %s: %w", addr, err)
	}
	h := NewNoopHandler(channels)
	s := &NoopServer{
		URL:     "http://" + ln.Addr().String(),
		Handler: h,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      15 * time.Second,
			IdleTimeout:       90 * time.Second,
		},
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Close shuts the server down gracefully, waiting for in-flight requests
// until ctx ends.
func (s *NoopServer) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("noop server: shutting down: %w", err)
	}
	return <-s.done
}
