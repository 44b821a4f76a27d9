package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformed is returned for a body that is not a webhook object. Callers
// answer 400: the signature was valid, so LINE sent it, but it cannot be
// split into events.
var ErrMalformed = errors.New("events: malformed webhook body")

// Webhook is a verified webhook body split into its events. Each event is
// kept as the exact bytes LINE sent, so storage never loses a field.
type Webhook struct {
	Destination string
	Events      []json.RawMessage
}

// ParseWebhook splits a webhook body. It requires an object whose "events"
// is an array of objects; every other property is tolerated, and an empty
// array (LINE's URL verification) is valid.
func ParseWebhook(body []byte) (*Webhook, error) {
	var w struct {
		Destination string             `json:"destination"`
		Events      *[]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.Events == nil {
		return nil, fmt.Errorf("%w: no events array", ErrMalformed)
	}
	for i, ev := range *w.Events {
		if t := bytes.TrimLeft(ev, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("%w: events[%d] is not an object", ErrMalformed, i)
		}
	}
	return &Webhook{Destination: w.Destination, Events: *w.Events}, nil
}
