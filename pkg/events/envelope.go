package events

import (
	"encoding/json"
	"strconv"
	"time"
)

// Headers ingest sets on every message it publishes, so the worker knows
// where and when an event arrived without parsing the webhook again. The
// message data is the event's raw bytes, exactly as LINE sent them.
const (
	HeaderChannel     = "Linepipe-Channel"
	HeaderDestination = "Linepipe-Destination"
	HeaderReceivedAt  = "Linepipe-Received-At"
	HeaderRedelivery  = "Linepipe-Redelivery"
	HeaderWebhookID   = "Linepipe-Webhook-Id"
	HeaderKind        = "Linepipe-Kind"
	// HeaderWebhookLog carries the webhook's log record (JSON WebhookLog)
	// on each of its events, so one publish stores both.
	HeaderWebhookLog = "Linepipe-Webhook-Log"
)

// Message kinds on the stream.
const (
	KindEvent      = "event"
	KindWebhookLog = "webhook-log"
	// KindBundle is one stream message carrying the messages of several
	// webhooks (see EncodeBundle).
	KindBundle = "bundle"
)

// Meta is what travels with an event besides its bytes.
type Meta struct {
	ChannelID   string
	Destination string
	ReceivedAt  time.Time
	Redelivery  bool
	WebhookID   string
}

// SetHeaders writes m into h. NATS header names are case-sensitive, so
// the map is written directly rather than through a canonicalising type.
func (m Meta) SetHeaders(h map[string][]string) {
	h[HeaderChannel] = []string{m.ChannelID}
	h[HeaderDestination] = []string{m.Destination}
	h[HeaderReceivedAt] = []string{m.ReceivedAt.UTC().Format(time.RFC3339Nano)}
	h[HeaderRedelivery] = []string{strconv.FormatBool(m.Redelivery)}
	h[HeaderWebhookID] = []string{m.WebhookID}
}

// HeaderValue is the first value of key in h, or "".
func HeaderValue(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// MetaFromHeaders reads what SetHeaders wrote. A missing or unreadable
// receive time falls back to fallback, so an odd header never poisons an
// event.
func MetaFromHeaders(h map[string][]string, fallback time.Time) Meta {
	m := Meta{
		ChannelID:   HeaderValue(h, HeaderChannel),
		Destination: HeaderValue(h, HeaderDestination),
		WebhookID:   HeaderValue(h, HeaderWebhookID),
		ReceivedAt:  fallback,
	}
	if t, err := time.Parse(time.RFC3339Nano, HeaderValue(h, HeaderReceivedAt)); err == nil {
		m.ReceivedAt = t
	}
	m.Redelivery, _ = strconv.ParseBool(HeaderValue(h, HeaderRedelivery))
	return m
}

// WebhookLog is the record of one accepted webhook, published by ingest
// and written to webhook_log by the worker. It follows LINE's logging
// guideline: sender IP, time, method, path and status. It never carries
// body content.
type WebhookLog struct {
	WebhookID  string    `json:"webhookId"`
	ChannelID  string    `json:"channelId"`
	RemoteIP   string    `json:"remoteIp"`
	ReceivedAt time.Time `json:"receivedAt"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	EventCount int       `json:"eventCount"`
	Redelivery bool      `json:"redelivery"`
}

// DecodeWebhookLog reads a webhook log record as encoding/json would,
// without its cost on the worker's path (event_scan.go).
func DecodeWebhookLog(b []byte) (WebhookLog, error) {
	if validJSON(b) {
		if rec, ok := walkWebhookLog(b); ok {
			return rec, nil
		}
	}
	var rec WebhookLog
	err := json.Unmarshal(b, &rec)
	return rec, err
}
