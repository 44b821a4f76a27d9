// Package ingest is linepipe's webhook endpoint. It is deliberately thin:
// verify x-line-signature over the raw bytes, split the webhook into its
// events, publish each to JetStream, and answer 200 only once JetStream
// has acknowledged every one. Everything else happens in the worker.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
}

// ServeHTTP handles one webhook and writes exactly one log line for it,
// with the fields LINE's guideline asks to keep: sender IP, time, method,
// path and status.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.Now()
	out := h.serve(r, start)
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
	if out.webhookID != "" {
		fields = append(fields, zap.String("webhook_id", out.webhookID), zap.Int("duplicates", out.dups))
	}
	if out.status == http.StatusOK {
		h.Log.Info("webhook", fields...)
	} else {
		h.Log.Warn("webhook", append(fields, zap.String("reason", out.reason))...)
	}
}

func (h *Handler) serve(r *http.Request, start time.Time) outcome {
	if r.Method != http.MethodPost {
		return outcome{status: http.StatusMethodNotAllowed, reason: "only POST is accepted"}
	}
	if !h.enter() {
		return outcome{status: http.StatusServiceUnavailable, reason: "too many webhooks in flight; retry later"}
	}
	defer h.leave()
	channel := r.PathValue("channelID")
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

	// Read at most MaxBodyBytes: a larger body is refused before it is
	// buffered, so a hostile client cannot exhaust memory.
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.Config.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		out.status, out.reason = http.StatusRequestEntityTooLarge, "body too large"
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

	wh, err := events.ParseWebhook(body)
	if err != nil {
		out.status, out.reason = http.StatusBadRequest, "malformed webhook body"
		return out
	}
	out.events = len(wh.Events)
	out.webhookID = uuid.NewString()
	return h.publish(r, start, wh, out)
}

// publish stores the events within the publish budget. Each event carries
// the webhook's log record, so the common webhook costs one round trip;
// the record travels alone only when no event of the webhook was new
// (LINE's verification request has none, and a redelivery may bring only
// events already stored).
func (h *Handler) publish(r *http.Request, start time.Time, wh *events.Webhook, out outcome) outcome {
	ctx, cancel := context.WithTimeout(r.Context(), h.Config.PublishTimeout)
	defer cancel()
	meta := events.Meta{ChannelID: out.channel, Destination: wh.Destination, ReceivedAt: start, WebhookID: out.webhookID}
	msgs, redelivery := eventMsgs(h.Stream, meta, wh.Events)
	rec, _ := json.Marshal(events.WebhookLog{WebhookID: out.webhookID, ChannelID: out.channel, RemoteIP: h.remoteIP(r),
		ReceivedAt: start, Method: r.Method, Path: r.URL.Path, Status: http.StatusOK,
		EventCount: len(wh.Events), Redelivery: redelivery})
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

// enter counts a webhook in, unless Config.MaxInFlight are already being
// handled: then it counts the webhook shed and reports false, and the
// webhook is answered before its body is read.
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
