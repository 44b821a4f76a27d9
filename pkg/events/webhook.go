package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is returned for a body that is not a webhook object. Callers
// answer 400: the signature was valid, so LINE sent it, but it cannot be
// split into events.
var ErrMalformed = errors.New("events: malformed webhook body")

// ErrTooManyEvents is returned by ParseWebhookLimit for a webhook with more
// events than its limit. Each event costs its reader memory beyond its
// bytes, so a body within any byte limit could otherwise hold enough tiny
// events to exhaust it.
var ErrTooManyEvents = errors.New("events: too many events in one webhook")

// Webhook is a verified webhook body split into its events.
type Webhook struct {
	Destination string
	Events      []WebhookEvent
}

// WebhookEvent is one event of a webhook: the exact bytes LINE sent, so
// storage never loses a field, and the two fields ingest names and flags
// its stream message with, read during the split so ingest does not decode
// the event a second time.
type WebhookEvent struct {
	// Raw is a sub-slice of the body passed to ParseWebhook, not a copy:
	// the body must not change while the event is in use.
	Raw json.RawMessage
	// WebhookEventID is the event's "webhookEventId", "" when it is
	// missing or not a string.
	WebhookEventID string
	// Redelivery is the event's "deliveryContext"."isRedelivery".
	Redelivery bool
}

// ParseWebhook splits a webhook body. It requires an object whose "events"
// is an array of objects; every other property is tolerated, and an empty
// array (LINE's URL verification) is valid.
//
// The split runs on every webhook ingest receives, so it costs one
// validity scan (validJSON, valid.go) and one hand walk of the body (webhook_scan.go)
// instead of encoding/json decoding the body and then each event again.
// It accepts, rejects and reads exactly what encoding/json does with the
// shape below: keys match case-insensitively, the last duplicate wins, a
// null or wrongly typed id or flag leaves the value read before it.
func ParseWebhook(body []byte) (*Webhook, error) { return ParseWebhookLimit(body, 0) }

// ParseWebhookLimit is ParseWebhook refusing, with ErrTooManyEvents, a
// webhook whose events array holds more than maxEvents elements (0: no
// limit). The walk stops keeping events at the limit, so a refused body
// costs no more memory than an accepted one. A body that is also
// malformed is reported as malformed.
func ParseWebhookLimit(body []byte, maxEvents int) (*Webhook, error) {
	if !validJSON(body) {
		return nil, decodeError(body)
	}
	w, shape := walkWebhook(body, maxEvents)
	switch {
	case shape == shapeTypeError:
		return nil, decodeError(body)
	case shape == shapeNoEvents:
		return nil, fmt.Errorf("%w: no events array", ErrMalformed)
	case shape >= 0:
		return nil, fmt.Errorf("%w: events[%d] is not an object", ErrMalformed, shape)
	case shape == shapeTooMany:
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyEvents, maxEvents)
	}
	return w, nil
}

// decodeError explains a body the walk rejected for its syntax or a
// wrongly typed "destination" or "events" (or a body that is not an
// object): encoding/json's own error for the shape ParseWebhook has always
// decoded, so the reason logged is the same it always was. Only rejected
// bodies pay for it.
func decodeError(body []byte) error {
	var w struct {
		Destination string             `json:"destination"`
		Events      *[]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("%w: not a webhook object", ErrMalformed) // unreachable while the walk agrees with encoding/json
}

// MalformedReason says why a webhook body was refused, for ingest's answer
// and log line, without quoting the body: encoding/json's syntax errors
// quote the character they stopped at, which may be a user's text, so
// they are given by offset; the other reasons name only fields and types.
func MalformedReason(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return fmt.Sprintf("%s is a JSON %s, not the type a webhook has there", field, typ.Value)
	case errors.Is(err, ErrMalformed):
		if _, why, ok := strings.Cut(err.Error(), ErrMalformed.Error()+": "); ok {
			return why
		}
	}
	return "not a webhook"
}
