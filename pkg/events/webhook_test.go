package events

import (
	"errors"
	"testing"
)

func TestParseWebhookKeepsEventBytes(t *testing.T) {
	t.Parallel()
	ev0 := `{"type":"futureThing","zeta":1,  "alpha":{"nested":[1,2,3]},"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR"}`
	ev1 := `{"type":"message","message":{"id":"1","type":"text","text":"hé \u00e9 😀","newField":true}}`
	body := `{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","futureTop":"x","events":[` + ev0 + `,` + ev1 + `]}`
	w, err := ParseWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if w.Destination != "U8e742f61d673b39c7fff3cecb7536ef0" {
		t.Errorf("destination = %q", w.Destination)
	}
	if len(w.Events) != 2 || string(w.Events[0].Raw) != ev0 || string(w.Events[1].Raw) != ev1 {
		t.Fatalf("events not kept byte for byte: %+v", w.Events)
	}
}

func TestParseWebhookVerificationRequest(t *testing.T) {
	t.Parallel()
	w, err := ParseWebhook([]byte(`{"destination":"xxxxxxxxxx","events":[]}`))
	if err != nil || len(w.Events) != 0 {
		t.Fatalf("empty events: %v, %v", w, err)
	}
}

func TestParseWebhookRejectsMalformed(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":          `{"events":[`,
		"array":             `[{"type":"message"}]`,
		"no events":         `{"destination":"U1"}`,
		"events null":       `{"destination":"U1","events":null}`,
		"events not array":  `{"events":{"type":"message"}}`,
		"event not object":  `{"events":["message"]}`,
		"event number":      `{"events":[1]}`,
		"empty":             ``,
		"destination array": `{"destination":[],"events":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseWebhook([]byte(body)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseWebhook(%s) = %v, want ErrMalformed", body, err)
			}
		})
	}
}

func TestDecodeToleratesUnknown(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"type":"brandNew","mode":"active","timestamp":1462629479859,"source":{"type":"space","spaceId":"S1"},
		"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR","deliveryContext":{"isRedelivery":true},"brandNew":{"x":[1]}}`)
	e, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "brandNew" || e.Source.Type != "space" || !e.DeliveryContext.IsRedelivery || e.Time().UnixMilli() != 1462629479859 {
		t.Fatalf("decoded %+v", e)
	}
	if e.MessageID() != "" {
		t.Fatalf("unknown event has message id %q", e.MessageID())
	}
}

func TestDecodeMessageKeepsRawObject(t *testing.T) {
	t.Parallel()
	msg := `{"id":"325708","type":"text","text":"Hello","quoteToken":"q","unknownProp":{"a":1}}`
	e, err := Decode([]byte(`{"type":"message","message":` + msg + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.MessageID() != "325708" || e.Message.Text != "Hello" || string(e.Message.Raw) != msg {
		t.Fatalf("message %+v raw %s", e.Message, e.Message.Raw)
	}
	u, _ := Decode([]byte(`{"type":"unsend","unsend":{"messageId":"325708"}}`))
	if u.MessageID() != "325708" {
		t.Fatalf("unsend target %q", u.MessageID())
	}
}

func TestDedupID(t *testing.T) {
	t.Parallel()
	if got := DedupID("c", "01FZ", []byte("x")); got != "01FZ" {
		t.Fatalf("with webhookEventId: %q", got)
	}
	a, b := DedupID("c1", "", []byte(`{"a":1}`)), DedupID("c2", "", []byte(`{"a":1}`))
	if a == b || a != DedupID("c1", "", []byte(`{"a":1}`)) {
		t.Fatalf("digest ids must be stable per channel and bytes: %q %q", a, b)
	}
}

func TestMetaHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	m := Meta{ChannelID: "1234", Destination: "U1", Redelivery: true, WebhookID: "w"}
	h := map[string][]string{}
	m.SetHeaders(h)
	got := MetaFromHeaders(h, m.ReceivedAt)
	if got.ChannelID != "1234" || got.Destination != "U1" || !got.Redelivery || got.WebhookID != "w" {
		t.Fatalf("round trip: %+v", got)
	}
}

// TestParseWebhookLimit checks the events limit: a webhook of exactly the
// limit is split whole, one more event is ErrTooManyEvents, a malformed
// body stays malformed, and, as encoding/json takes the last of
// duplicated keys, only the events array that counts is held to it.
func TestParseWebhookLimit(t *testing.T) {
	t.Parallel()
	events := func(n int) string {
		s := ""
		for i := 0; i < n; i++ {
			if i > 0 {
				s += ","
			}
			s += `{"a":1}`
		}
		return "[" + s + "]"
	}
	for name, c := range map[string]struct {
		body string
		want error
		n    int
	}{
		"at the limit":        {`{"events":` + events(3) + `}`, nil, 3},
		"one over":            {`{"events":` + events(4) + `}`, ErrTooManyEvents, 0},
		"over and malformed":  {`{"events":` + events(4)[:len(events(4))-1] + `,1]}`, ErrMalformed, 0},
		"later array within":  {`{"events":` + events(9) + `,"events":` + events(2) + `}`, nil, 2},
		"later array over":    {`{"events":` + events(1) + `,"events":` + events(5) + `}`, ErrTooManyEvents, 0},
		"verification (none)": {`{"events":[]}`, nil, 0},
	} {
		w, err := ParseWebhookLimit([]byte(c.body), 3)
		switch {
		case !errors.Is(err, c.want):
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		case err == nil && len(w.Events) != c.n:
			t.Errorf("%s: %d events, want %d", name, len(w.Events), c.n)
		}
	}
	if w, err := ParseWebhookLimit([]byte(`{"events":`+events(50)+`}`), 0); err != nil || len(w.Events) != 50 {
		t.Errorf("no limit: %v events, %v", w, err)
	}
}
