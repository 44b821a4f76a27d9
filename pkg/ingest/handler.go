// Package ingest is linepipe's webhook endpoint. It is deliberately thin:
// verify x-line-signature over the raw bytes, split the webhook into its
// events, publish each to JetStream, and answer 200 only once JetStream
// has acknowledged every one. Everything else happens in the worker.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Handler serves POST /webhook/{channelID}.
type Handler struct {
	Config    Config
	Stream    stream.Config
	Secrets   *Secrets
	Publisher Publisher
	Metrics   *Metrics
	Log       *zap.Logger
	Now       func() time.Time
}

// outcome is what one request came to, for the log line and metrics.
type outcome struct {
	status    int
	reason    string
	channel   string
	events    int
	dups      int
	webhookID string
	// parsed: the body was read as a webhook, so redelivery is known.
	// A webhook answered 413 or 503 after that still records whether it
	// was LINE's redelivery, though it has no webhook_log row.
	parsed     bool
	redelivery bool
}

// ServeHTTP serves POST /webhook/{channelID} and answers any other path
// 404. It writes exactly one log line for every request, with the fields
// LINE's guideline asks to keep: sender IP, time, method, path and status.
// A mistyped webhook URL in the LINE Developers Console therefore shows in
// ingest's log and metrics too.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.Now()
	// began is the real clock's start (start is h.Now's, for the record):
	// the deadlines below count from it.
	began := time.Now()
	// The body must arrive within BodyReadTimeout of now. The connection's
	// own deadline (ops.ServerConfig.ReadTimeout) is longer; where the
	// ResponseWriter cannot set one (a test's recorder), that one holds.
	_ = http.NewResponseController(w).SetReadDeadline(began.Add(BodyReadTimeout))
	out := outcome{status: http.StatusNotFound, reason: "not found: webhooks go to POST /webhook/{channelID}"}
	if channel, ok := webhookChannel(r.URL.Path); ok {
		out = h.serveRecovering(w, r, channel, start, began.Add(h.Config.PublishTimeout))
	}
	if out.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(out.status)
	if out.status == http.StatusOK {
		_, _ = io.WriteString(w, "ok\n")
	} else {
		_, _ = io.WriteString(w, out.reason+"\n")
	}
	took := h.Now().Sub(start)
	h.Metrics.observeRequest(out.status, took)
	fields := []zap.Field{
		zap.String("remote_ip", h.remoteIP(r)),
		zap.Time("received_at", start),
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.Int("status", out.status),
		zap.Duration("took", took),
		zap.Int("events", out.events),
	}
	if out.parsed {
		fields = append(fields, zap.Bool("redelivery", out.redelivery))
	}
	if out.webhookID != "" {
		fields = append(fields, zap.String("webhook_id", out.webhookID), zap.Int("duplicates", out.dups))
	}
	if out.status == http.StatusOK {
		h.Log.Info("webhook", fields...)
	} else {
		h.Log.Warn("webhook", append(fields, zap.String("reason", out.reason))...)
	}
}

// serveRecovering is serve, with a panic in it answered 500 instead of
// being left to net/http, which would close the connection with no
// answer, no metrics and no log line. LINE redelivers a webhook answered
// 500 as one it got no answer to, and the webhook still gets its log line.
// Only the panic's type and stack are logged: its value may have been
// built from the body.
func (h *Handler) serveRecovering(w http.ResponseWriter, r *http.Request, channel string, start, answerBy time.Time) (out outcome) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		h.Log.Error("webhook handler panicked", zap.String("panic_type", fmt.Sprintf("%T", p)), zap.StackSkip("stack", 1))
		out = outcome{status: http.StatusInternalServerError, reason: "internal error; retry later", channel: channel}
	}()
	return h.serve(w, r, channel, start, answerBy)
}

// webhookChannel is the channel id of a /webhook/{channelID} path. The
// handler routes for itself rather than through a ServeMux, whose 404s
// and path-cleaning redirects would be answered without a log line.
func webhookChannel(path string) (string, bool) {
	channel, ok := strings.CutPrefix(path, "/webhook/")
	if !ok || strings.Contains(channel, "/") {
		return "", false
	}
	return channel, true
}

// serve handles one webhook. Only a webhook whose signature holds takes
// one of MaxInFlight places, so requests from anyone without the channel
// secret (however slowly they send their bodies) cannot keep LINE's
// webhooks out; while they are read, their bytes count against
// MaxBufferedBytes instead, and their read ends BodyReadTimeout after the
// request's handling began. Its events must be acknowledged by answerBy.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, channel string, start, answerBy time.Time) outcome {
	if r.Method != http.MethodPost {
		return outcome{status: http.StatusMethodNotAllowed, reason: "only POST is accepted"}
	}
	if h.full() {
		return outcome{status: http.StatusServiceUnavailable, reason: tooManyInFlight}
	}
	if !stream.ValidChannelID(channel) {
		return outcome{status: http.StatusNotFound, reason: "unknown channel"}
	}
	out := outcome{channel: channel}
	secret, err := h.Secrets.Secret(r.Context(), channel)
	switch {
	case errors.Is(err, ErrUnknownChannel):
		out.status, out.reason = http.StatusNotFound, "unknown channel"
		return out
	case err != nil:
		out.status, out.reason = http.StatusServiceUnavailable, "channel secrets unavailable; retry later"
		return out
	}

	body, held, err := h.readBody(r)
	defer h.Metrics.buffered.Add(-held)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		out.status, out.reason = http.StatusRequestEntityTooLarge, "body too large"
		return out
	case errors.Is(err, errBufferFull):
		h.Metrics.shed.Inc()
		out.status, out.reason = http.StatusServiceUnavailable, bufferFull
		return out
	case err != nil:
		out.status, out.reason = http.StatusBadRequest, "could not read body"
		return out
	}

	sig := r.Header.Get(events.SignatureHeader)
	if err := events.VerifySignature(secret, sig, body); err != nil {
		fresh, changed := h.Secrets.Recheck(r.Context(), channel, secret)
		if !changed || events.VerifySignature(fresh, sig, body) != nil {
			out.status, out.reason = http.StatusUnauthorized, "missing or invalid x-line-signature"
			return out
		}
	}

	if !h.enter() {
		out.status, out.reason = http.StatusServiceUnavailable, tooManyInFlight
		return out
	}
	defer h.leave()
	wh, err := events.ParseWebhookLimit(body, int(h.Config.MaxBufferedBytes/EventOverhead))
	switch {
	case errors.Is(err, events.ErrTooManyEvents):
		out.status, out.reason = http.StatusRequestEntityTooLarge, tooManyEvents
		return out
	case err != nil:
		out.status, out.reason = http.StatusBadRequest, "malformed webhook body: "+events.MalformedReason(err)
		return out
	}
	out.events = len(wh.Events)
	out.parsed, out.redelivery = true, redelivered(wh.Events)
	cost := int64(len(wh.Events)) * (EventOverhead + int64(len(wh.Destination)))
	if cost > h.Config.MaxBufferedBytes {
		out.status, out.reason = http.StatusRequestEntityTooLarge, tooManyEvents
		return out
	}
	if total := h.Metrics.buffered.Add(cost); total > h.Config.MaxBufferedBytes {
		h.Metrics.buffered.Add(-cost)
		h.Metrics.shed.Inc()
		out.status, out.reason = http.StatusServiceUnavailable, eventsFull
		return out
	}
	defer h.Metrics.buffered.Add(-cost)
	out.webhookID = uuid.NewString()
	return h.publish(r, start, answerBy, wh, out)
}

// BodyReadTimeout bounds reading a webhook's body, counted from when its
// handling began (its headers had arrived). LINE waits 2 s for the whole
// answer, so a body still arriving after that comes from no one LINE is
// waiting for.
const BodyReadTimeout = 2 * time.Second

const (
	tooManyInFlight = "too many webhooks in flight; retry later"
	bufferFull      = "too many webhook bodies being read; retry later"
	eventsFull      = "too many webhook events being handled; retry later"
	tooManyEvents   = "too many events in one webhook"
)

// EventOverhead is what ingest holds for each event of a webhook besides
// the body: the stream message, its headers and their encoding, about
// 1.2 KiB measured for a one-field event before bundling, plus the
// headers the bundle writes. Each signed webhook charges it per event,
// plus its destination (copied into every event's headers), to
// MaxBufferedBytes while it is handled, so a body of many tiny events
// cannot hold a hundred times its size: a webhook that could never fit
// gets 413, one that does not fit now 503.
const EventOverhead = 1536

// errBufferFull is a body read stopped because MaxBufferedBytes of bodies
// are already held.
var errBufferFull = errors.New("ingest: webhook body buffer full")

// readBody reads at most MaxBodyBytes: a larger body is refused before it
// is buffered. Every byte read counts against MaxBufferedBytes, shared by
// all requests, as it arrives, so a client holds only what it has sent.
// held is what the caller must give back once it no longer keeps the
// body, whatever the error.
func (h *Handler) readBody(r *http.Request) (body []byte, held int64, err error) {
	br := &budgetReader{r: r.Body, used: &h.Metrics.buffered, max: h.Config.MaxBufferedBytes}
	body, err = io.ReadAll(http.MaxBytesReader(nil, br, h.Config.MaxBodyBytes))
	return body, br.held, err
}

// budgetReader charges what it reads to used, and fails once used passes
// max (0: no bound).
type budgetReader struct {
	r    io.ReadCloser
	used *atomic.Int64
	max  int64
	held int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.held += int64(n)
		if total := b.used.Add(int64(n)); b.max > 0 && total > b.max {
			return n, errBufferFull
		}
	}
	return n, err
}

func (b *budgetReader) Close() error { return b.r.Close() }

// publish stores the events by answerBy: PublishTimeout after the
// request's handling began, not after its body arrived, so that a slow
// body or secret lookup cannot push the answer past LINE's 2 s (a body
// may take up to BodyReadTimeout). Each event carries
// the webhook's log record, so the common webhook costs one round trip;
// the record travels alone only when no event of the webhook was new
// (LINE's verification request has none, and a redelivery may bring only
// events already stored).
func (h *Handler) publish(r *http.Request, start, answerBy time.Time, wh *events.Webhook, out outcome) outcome {
	ctx, cancel := context.WithDeadline(r.Context(), answerBy)
	defer cancel()
	meta := events.Meta{ChannelID: out.channel, Destination: wh.Destination, ReceivedAt: start, WebhookID: out.webhookID}
	msgs := eventMsgs(h.Stream, meta, wh.Events)
	rec, _ := json.Marshal(events.WebhookLog{WebhookID: out.webhookID, ChannelID: out.channel, RemoteIP: h.remoteIP(r),
		ReceivedAt: start, Method: r.Method, Path: r.URL.Path, Status: http.StatusOK,
		EventCount: len(wh.Events), Redelivery: out.redelivery})
	logHeader := []string{string(rec)} // shared: headers are only read once built
	for _, m := range msgs {
		m.Header[events.HeaderWebhookLog] = logHeader
	}
	pubStart := h.Now()
	dups, err := h.Publisher.Publish(ctx, msgs)
	if err == nil && dups == len(msgs) {
		_, err = h.Publisher.Publish(ctx, []*nats.Msg{webhookLogMsg(h.Stream, out.channel, out.webhookID, rec)})
	}
	h.Metrics.observePublish(len(msgs), dups, h.Now().Sub(pubStart), err)
	out.dups = dups
	if err != nil {
		out.status, out.reason = http.StatusServiceUnavailable, "events not stored; retry later"
		return out
	}
	out.status = http.StatusOK
	return out
}

// full reports that MaxInFlight webhooks are already being handled, so
// one more can be answered 503 before its body is read. Only webhooks
// with a valid signature are counted (enter), so no one without the
// channel secret can make it true.
func (h *Handler) full() bool {
	if h.Config.MaxInFlight > 0 && h.Metrics.active.Load() >= int64(h.Config.MaxInFlight) {
		h.Metrics.shed.Inc()
		return true
	}
	return false
}

// enter counts a signed webhook in, unless Config.MaxInFlight are already
// being handled: then it counts the webhook shed and reports false.
func (h *Handler) enter() bool {
	if n := h.Metrics.active.Add(1); h.Config.MaxInFlight > 0 && n > int64(h.Config.MaxInFlight) {
		h.Metrics.active.Add(-1)
		h.Metrics.shed.Inc()
		return false
	}
	return true
}

func (h *Handler) leave() { h.Metrics.active.Add(-1) }

// remoteIP is the sender's address; see clientIP.
func (h *Handler) remoteIP(r *http.Request) string {
	nets := h.Config.TrustedProxies
	if nets == nil {
		nets = DefaultTrustedProxies
	}
	return clientIP(r, h.Config.TrustProxy, nets)
}
