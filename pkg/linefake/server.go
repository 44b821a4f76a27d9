// Package linefake emulates the parts of the LINE Platform linepipe talks
// to: the Messaging API send endpoints (reply, push, multicast,
// narrowcast, broadcast) with LINE's authentication, validation limits,
// retry-key semantics, reply-token rules and rate limits; the stateless
// channel access token endpoint; and LINE's webhook sender. Tests,
// benchmarks and chaos runs use it in place of LINE, so it is strict where
// LINE is documented and takes the safe reading, marked UNCONFIRMED, where
// LINE is silent. It records every send it accepts, so a test can prove
// that a client never sent a message twice and never exceeded a rate.
//
// Where LINE's documentation is silent the emulator takes the strict or
// safe reading, each marked UNCONFIRMED at its code:
//   - a non-UUID X-Line-Retry-Key is 400; an empty one counts as absent
//     (the official Go SDK sends it empty when given no key);
//   - a second request with a key still in flight waits for the first and
//     then gets 409, or runs as new if the first was not accepted;
//   - group and room ids are C or R plus 32 lowercase hex, like user ids;
//   - error texts other than LINE's documented ones are the emulator's own.
//
// The ledger of accepted sends keeps every body and grows for the life of
// the process (Reset clears it). The admin API under /linefake/ is
// unauthenticated: never expose the emulator beyond a test network.
package linefake

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Endpoint names, as used in Delivery.Endpoint, Stats and RateWindow.
const (
	EndpointReply      = "reply"
	EndpointPush       = "push"
	EndpointMulticast  = "multicast"
	EndpointNarrowcast = "narrowcast"
	EndpointBroadcast  = "broadcast"
	EndpointToken      = "token"

	epReply      = EndpointReply
	epPush       = EndpointPush
	epMulticast  = EndpointMulticast
	epNarrowcast = EndpointNarrowcast
	epBroadcast  = EndpointBroadcast
	epToken      = EndpointToken
)

// API paths LINE serves and the emulator answers.
const (
	PathReply      = "/v2/bot/message/reply"
	PathPush       = "/v2/bot/message/push"
	PathMulticast  = "/v2/bot/message/multicast"
	PathNarrowcast = "/v2/bot/message/narrowcast"
	PathBroadcast  = "/v2/bot/message/broadcast"
	PathToken      = "/oauth2/v3/token"
)

var apiPaths = map[string]string{
	PathReply: epReply, PathPush: epPush, PathMulticast: epMulticast,
	PathNarrowcast: epNarrowcast, PathBroadcast: epBroadcast, PathToken: epToken,
}

// dataPatterns are the data API's routes, counted in Stats like the
// send endpoints.
var dataPatterns = map[string]string{
	"GET " + PathContent: EndpointContent, "GET " + PathTranscoding: EndpointTranscoding,
}

// Server is the emulator. It is an http.Handler; mount it at the root of
// a listener and point LINE_API_BASE_URL at it.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	channels *channels
	replies  *replyTokens
	keys     *retryKeys
	limiter  *limiter
	chaos    *chaos
	ledger   *ledger
	content  *contents
	msgSeq   atomic.Uint64
	// stamped: the clock is the wall clock, so requests' kernel arrival
	// stamps can time them (rateClock).
	stamped bool
	// beforeDeliver, when set by a test, runs while a request holds its
	// retry key, so tests can hold a request in flight.
	beforeDeliver func(sendCall)
}

// New builds a Server. It panics if cfg does not validate: the
// configuration is the caller's code, and a broken emulator must not
// pass for LINE. Services reading the environment call cfg.Validate first.
func New(cfg Config) *Server {
	wallClock := cfg.Clock == nil
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("linefake: invalid config: %v", err))
	}
	s := &Server{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		channels: newChannels(cfg.StatelessTokenTTL),
		replies:  newReplyTokens(cfg.ReplyTokenTTL, cfg.RedeliveredReplyLimit),
		keys:     newRetryKeys(cfg.RetryKeyWindow),
		limiter:  newLimiter(cfg.RateLimits, cfg.UserCap),
		chaos:    newChaos(cfg.Faults, cfg.Seed),
		ledger:   newLedger(),
		content:  newContents(cfg.ContentFaults, cfg.Seed),
		stamped:  wallClock,
	}
	// Message ids look like LINE's: 18-digit decimal strings.
	s.msgSeq.Store(500000000000000000)
	for _, ch := range cfg.Channels {
		s.channels.add(ch)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	for path, ep := range apiPaths {
		if ep == epToken {
			continue
		}
		s.mux.HandleFunc("POST "+path, s.send(ep))
	}
	s.mux.HandleFunc("POST "+PathToken, s.issueToken)
	s.mux.HandleFunc("GET "+PathContent, s.serveContent)
	s.mux.HandleFunc("GET "+PathTranscoding, s.serveTranscoding)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	s.adminRoutes()
}

func (s *Server) now() time.Time { return s.cfg.Clock() }

// rateClock is the clock r's rate limit and one-second counts are read
// from: when r's bytes reached this host plus the network delay injected
// before it was handled, if its connection was accepted by
// ArrivalListener (and the clock is the wall clock, which the kernel's
// stamps are on), else the clock when asked.
func (s *Server) rateClock(r *http.Request, delay time.Duration) func() time.Time {
	if s.stamped {
		if at, ok := arrivedAt(r); ok {
			at = at.Add(delay)
			return func() time.Time { return at }
		}
	}
	return s.now
}

type requestIDKey struct{}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// ServeHTTP gives every response a fresh x-line-request-id, as LINE does
// for every request including errors, then counts and logs it once.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := uuid.NewString()
	w.Header().Set(RequestIDHeader, id)
	rec := &recorder{ResponseWriter: w}
	req := r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	// Deferred so that an aborted handler (panic(http.ErrAbortHandler))
	// is still counted and logged.
	defer func() {
		status := rec.statusText()
		ep, ok := apiPaths[r.URL.Path]
		if !ok {
			// The data API's paths hold the message id: the mux's
			// pattern names the endpoint.
			ep, ok = dataPatterns[req.Pattern]
		}
		if ok && !rec.counted {
			s.ledger.count(ep, status)
		}
		// Never the Authorization header, the body or its text.
		fields := []zap.Field{zap.String("requestId", id), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Int("status", rec.code()),
			zap.Duration("duration", time.Since(start))}
		if rec.outcome != "" {
			fields = append(fields, zap.String("outcome", rec.outcome))
		}
		s.cfg.Log.Info("request", fields...)
	}()
	s.mux.ServeHTTP(rec, req)
}

// recorder remembers the status for counting and logging. Unwrap lets
// http.ResponseController reach the connection's Hijacker.
type recorder struct {
	http.ResponseWriter
	status  int
	outcome string // "dropped" or "canceled" when no status was sent
	counted bool   // already counted in the stats
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// code is the status sent, 0 when the connection was dropped or the
// client went away first.
func (r *recorder) code() int {
	if r.status == 0 && r.outcome == "" {
		return http.StatusOK
	}
	return r.status
}

func (r *recorder) statusText() string {
	switch {
	case r.outcome != "":
		return r.outcome
	case r.status == 0:
		return "200"
	}
	return fmt.Sprint(r.status)
}

func setOutcome(w http.ResponseWriter, o string) {
	if rec, ok := w.(*recorder); ok {
		rec.outcome = o
	}
}

// AddChannel registers a channel, or replaces one with the same id.
func (s *Server) AddChannel(ch Channel) error {
	if err := ch.validate(); err != nil {
		return err
	}
	s.channels.add(ch)
	return nil
}

// Channel returns a registered channel, with its defaulted BotUserID.
func (s *Server) Channel(id string) (Channel, bool) { return s.channels.get(id) }

// IssueAccessToken returns a stateless token for a registered channel, as
// POST /oauth2/v3/token would.
func (s *Server) IssueAccessToken(channelID string) (string, error) {
	ch, ok := s.channels.get(channelID)
	if !ok {
		return "", fmt.Errorf("issuing token for %q: %w", channelID, ErrUnknownChannel)
	}
	return s.channels.issue(ch.ID, ch.Secret, s.now())
}

// IssueReplyToken registers a fresh reply token for channelID, valid for
// ReplyTokenTTL from now, as if carried by a webhook sent now.
func (s *Server) IssueReplyToken(channelID string) string {
	now := s.now()
	t := s.randomToken(16, hexEncoding)
	s.replies.add(t, channelID, now, now)
	return t
}

// SetFaults replaces the injected faults at once.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.chaos.set(f)
	return nil
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults { return s.chaos.get() }

// Accepted returns every send accepted so far, in order.
func (s *Server) Accepted() []Delivery {
	ds, _ := s.ledger.snapshot()
	return ds
}

// AcceptedCount is len(Accepted()) without the copy: cheap enough to
// poll while a client is being timed.
func (s *Server) AcceptedCount() int { return s.ledger.accepted() }

// Stats returns request counts by endpoint and status, and the rate maxima.
func (s *Server) Stats() Stats {
	_, st := s.ledger.snapshot()
	st.RateWindows = s.limiter.rateWindows()
	return st
}

// Reset forgets deliveries, counts, retry keys, reply tokens and rate
// buckets. Channels and faults stay.
func (s *Server) Reset() {
	s.ledger.reset()
	s.keys.reset()
	s.replies.reset()
	s.limiter.reset()
}

func (s *Server) nextMessageID() string {
	return fmt.Sprint(s.msgSeq.Add(1))
}

type tokenEncoding int

const (
	hexEncoding tokenEncoding = iota
	b64Encoding
)

func (s *Server) randomToken(n int, enc tokenEncoding) string {
	b := make([]byte, n)
	s.chaos.bytes(b)
	if enc == hexEncoding {
		return fmt.Sprintf("%x", b)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
