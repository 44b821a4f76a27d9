package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// refEvent and parseWebhookRef are how linepipe split a webhook before
// the hand walk: encoding/json decoding the body, then each event again
// for its id and redelivery flag (ingest's eventMsgs). They are the
// reference the walk is tested and fuzzed against, and the "old" side of
// BenchmarkParseWebhook.
type refEvent struct {
	WebhookEventID  string `json:"webhookEventId"`
	DeliveryContext struct {
		IsRedelivery bool `json:"isRedelivery"`
	} `json:"deliveryContext"`
}

func parseWebhookRef(body []byte) (*Webhook, error) {
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
	out := &Webhook{Destination: w.Destination, Events: make([]WebhookEvent, len(*w.Events))}
	for i, ev := range *w.Events {
		var ids refEvent
		_ = json.Unmarshal(ev, &ids)
		out.Events[i] = WebhookEvent{Raw: ev, WebhookEventID: ids.WebhookEventID, Redelivery: ids.DeliveryContext.IsRedelivery}
	}
	return out, nil
}

// sameParse reports how ParseWebhook's result differs from the
// reference's, or "" when it does not: same acceptance and error text,
// same destination, the same events byte for byte with the same ids.
func sameParse(got *Webhook, gotErr error, want *Webhook, wantErr error) string {
	switch {
	case (gotErr == nil) != (wantErr == nil):
		return fmt.Sprintf("error %v, reference %v", gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		return fmt.Sprintf("error %q, reference %q", gotErr, wantErr)
	case gotErr != nil:
		return ""
	case got.Destination != want.Destination:
		return fmt.Sprintf("destination %q, reference %q", got.Destination, want.Destination)
	case len(got.Events) != len(want.Events):
		return fmt.Sprintf("%d events, reference %d", len(got.Events), len(want.Events))
	}
	for i, g := range got.Events {
		w := want.Events[i]
		if !bytes.Equal(g.Raw, w.Raw) || g.WebhookEventID != w.WebhookEventID || g.Redelivery != w.Redelivery {
			return fmt.Sprintf("events[%d] = %s %q %v, reference %s %q %v",
				i, g.Raw, g.WebhookEventID, g.Redelivery, w.Raw, w.WebhookEventID, w.Redelivery)
		}
	}
	return ""
}
