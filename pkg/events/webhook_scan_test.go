package events

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// ev is an expected event: its raw bytes and the two fields read.
type ev struct {
	raw        string
	id         string
	redelivery bool
}

// TestParseWebhookWalk checks the hand walk on the shapes encoding/json
// has rules for, each case against what it should read and against the
// encoding/json reference (webhook_ref_test.go). err is a substring of the
// expected error; "" means the body is accepted.
func TestParseWebhookWalk(t *testing.T) {
	t.Parallel()
	text := `{"type":"message","message":{"id":"1","type":"text","text":"hi"},"webhookEventId":"01A","deliveryContext":{"isRedelivery":true}}`
	for _, c := range []struct {
		name, body string
		dest       string
		events     []ev
		err        string
	}{
		{name: "typical", body: `{"destination":"U1","events":[` + text + `]}`, dest: "U1", events: []ev{{text, "01A", true}}},
		{name: "events first", body: `{"events":[{"deliveryContext":{"isRedelivery":true},"webhookEventId":"x"}],"destination":"U1"}`,
			dest: "U1", events: []ev{{`{"deliveryContext":{"isRedelivery":true},"webhookEventId":"x"}`, "x", true}}},
		{name: "missing destination", body: `{"events":[{}]}`, events: []ev{{`{}`, "", false}}},
		{name: "empty events", body: `{"destination":"U1","events":[]}`, dest: "U1", events: []ev{}},
		{name: "empty events spaced", body: `{"events":[ ]}`, events: []ev{}},
		{name: "whitespace everywhere", body: " \r\n{ \"destination\" :\t\"U1\" ,\n\"events\" : [ { } ,\t{ \"webhookEventId\" : \"a\" , \"deliveryContext\" : { \"isRedelivery\" : true } }\n] }\n ",
			dest: "U1", events: []ev{{`{ }`, "", false}, {"{ \"webhookEventId\" : \"a\" , \"deliveryContext\" : { \"isRedelivery\" : true } }", "a", true}}},

		// Duplicated keys: the last wins, but null or a wrong type leaves
		// a string, bool or struct as it was.
		{name: "destination twice", body: `{"destination":"a","destination":"b","events":[]}`, dest: "b", events: []ev{}},
		{name: "destination then null", body: `{"destination":"a","destination":null,"events":[]}`, dest: "a", events: []ev{}},
		{name: "events twice", body: `{"events":[1],"events":[{"webhookEventId":"b"}]}`, events: []ev{{`{"webhookEventId":"b"}`, "b", false}}},
		{name: "events twice, last bad", body: `{"events":[{}],"events":[{},[]]}`, err: "events[1] is not an object"},
		{name: "events then null", body: `{"events":[{}],"events":null}`, err: "no events array"},
		{name: "null then events", body: `{"events":null,"events":[]}`, events: []ev{}},
		{name: "id twice", body: `{"events":[{"webhookEventId":"a","webhookEventId":"b"}]}`, events: []ev{{`{"webhookEventId":"a","webhookEventId":"b"}`, "b", false}}},
		{name: "id then number", body: `{"events":[{"webhookEventId":"a","webhookEventId":1}]}`, events: []ev{{`{"webhookEventId":"a","webhookEventId":1}`, "a", false}}},
		{name: "id then null", body: `{"events":[{"webhookEventId":"a","webhookEventId":null}]}`, events: []ev{{`{"webhookEventId":"a","webhookEventId":null}`, "a", false}}},
		{name: "context merged", body: `{"events":[{"deliveryContext":{"isRedelivery":true},"deliveryContext":{}}]}`,
			events: []ev{{`{"deliveryContext":{"isRedelivery":true},"deliveryContext":{}}`, "", true}}},
		{name: "context overwritten", body: `{"events":[{"deliveryContext":{"isRedelivery":true},"deliveryContext":{"isRedelivery":false}}]}`,
			events: []ev{{`{"deliveryContext":{"isRedelivery":true},"deliveryContext":{"isRedelivery":false}}`, "", false}}},
		{name: "context then null", body: `{"events":[{"deliveryContext":{"isRedelivery":true},"deliveryContext":null}]}`,
			events: []ev{{`{"deliveryContext":{"isRedelivery":true},"deliveryContext":null}`, "", true}}},
		{name: "flag then string", body: `{"events":[{"deliveryContext":{"isRedelivery":true,"isRedelivery":"false"}}]}`,
			events: []ev{{`{"deliveryContext":{"isRedelivery":true,"isRedelivery":"false"}}`, "", true}}},

		// Wrong types for the ids are ignored, as ingest's decode ignored them.
		{name: "id number", body: `{"events":[{"webhookEventId":123,"deliveryContext":{"isRedelivery":true}}]}`,
			events: []ev{{`{"webhookEventId":123,"deliveryContext":{"isRedelivery":true}}`, "", true}}},
		{name: "id object", body: `{"events":[{"webhookEventId":{"webhookEventId":"x"}}]}`, events: []ev{{`{"webhookEventId":{"webhookEventId":"x"}}`, "", false}}},
		{name: "id array", body: `{"events":[{"webhookEventId":["x"],"webhookEventId":true}]}`, events: []ev{{`{"webhookEventId":["x"],"webhookEventId":true}`, "", false}}},
		{name: "context array", body: `{"events":[{"deliveryContext":[{"isRedelivery":true}]}]}`, events: []ev{{`{"deliveryContext":[{"isRedelivery":true}]}`, "", false}}},
		{name: "context string", body: `{"events":[{"deliveryContext":"{\"isRedelivery\":true}"}]}`, events: []ev{{`{"deliveryContext":"{\"isRedelivery\":true}"}`, "", false}}},
		{name: "flag number", body: `{"events":[{"deliveryContext":{"isRedelivery":1}}]}`, events: []ev{{`{"deliveryContext":{"isRedelivery":1}}`, "", false}}},

		// Keys match as encoding/json matches field names: escapes,
		// any case, Unicode simple folding (ſ is s, the Kelvin sign is k).
		{name: "escaped keys", body: `{"destin\u0061tion":"U1","\u0065vents":[{"webhookEventI\u0064":"a","deliveryCont\u0065xt":{"isRedeliver\u0079":true}}]}`,
			dest: "U1", events: []ev{{`{"webhookEventI\u0064":"a","deliveryCont\u0065xt":{"isRedeliver\u0079":true}}`, "a", true}}},
		{name: "key case", body: `{"DESTINATION":"U1","Events":[{"WebhookEventID":"a","deliverycontext":{"ISREDELIVERY":true}}]}`,
			dest: "U1", events: []ev{{`{"WebhookEventID":"a","deliverycontext":{"ISREDELIVERY":true}}`, "a", true}}},
		{name: "key folding", body: `{"deſtination":"U1","events":[{"webhoo\u212aEventId":"a"}]}`,
			dest: "U1", events: []ev{{`{"webhoo\u212aEventId":"a"}`, "a", false}}},
		{name: "key not folding", body: `{"destİnation":"U1","events":[{"webhookEventİd":"a","webhookEventId ":"b"}]}`,
			events: []ev{{`{"webhookEventİd":"a","webhookEventId ":"b"}`, "", false}}},

		// Values: escapes unquoted, Unicode kept, invalid UTF-8 replaced.
		{name: "escaped values", body: `{"destination":"U\u0031\"\\\n","events":[{"webhookEventId":"a\"b\\c\u00e9\ud83d\ude00"}]}`,
			dest: "U1\"\\\n", events: []ev{{`{"webhookEventId":"a\"b\\c\u00e9\ud83d\ude00"}`, "a\"b\\cé😀", false}}},
		{name: "unicode", body: `{"destination":"Uñ😀","events":[{"type":"message","message":{"text":"こんにちは 😀"},"webhookEventId":"ü"}]}`,
			dest: "Uñ😀", events: []ev{{`{"type":"message","message":{"text":"こんにちは 😀"},"webhookEventId":"ü"}`, "ü", false}}},
		{name: "invalid utf-8", body: "{\"destination\":\"U\xff\",\"events\":[{\"webhookEventId\":\"a\xc3\"}]}",
			dest: "U\uFFFD", events: []ev{{"{\"webhookEventId\":\"a\xc3\"}", "a\uFFFD", false}}},

		// Nested values are stepped over, whatever they hold.
		{name: "nested", body: `{"events":[{"message":{"text":"}{][\"\\","webhookEventId":"inner","deliveryContext":{"isRedelivery":true}},` +
			`"list":[{"webhookEventId":"no"},"]",[[]],-1.5e+10,true,null],"s":"\\","webhookEventId":"outer","n":0}]}`,
			events: []ev{{`{"message":{"text":"}{][\"\\","webhookEventId":"inner","deliveryContext":{"isRedelivery":true}},` +
				`"list":[{"webhookEventId":"no"},"]",[[]],-1.5e+10,true,null],"s":"\\","webhookEventId":"outer","n":0}`, "outer", false}}},
		{name: "nested destination", body: `{"x":{"destination":"no","events":[]},"events":[],"y":["destination"]}`, events: []ev{}},
		{name: "literals last", body: `{"events":[{"a":1},{"b":true},{"c":null}],"z":false}`, events: []ev{{`{"a":1}`, "", false}, {`{"b":true}`, "", false}, {`{"c":null}`, "", false}}},

		// Rejected bodies.
		{name: "no events", body: `{"destination":"U1"}`, err: "no events array"},
		{name: "null body", body: ` null `, err: "no events array"},
		{name: "events object", body: `{"events":{"type":"message"}}`, err: "cannot unmarshal object"},
		{name: "events string", body: `{"events":"[]"}`, err: "cannot unmarshal string"},
		{name: "events number", body: `{"events":1}`, err: "cannot unmarshal number"},
		{name: "event string", body: `{"events":[{},"{}"]}`, err: "events[1] is not an object"},
		{name: "event null", body: `{"events":[null]}`, err: "events[0] is not an object"},
		{name: "event array", body: `{"events":[[{}]]}`, err: "events[0] is not an object"},
		{name: "type error first", body: `{"events":[1],"destination":2}`, err: "cannot unmarshal number"},
		{name: "destination object", body: `{"destination":{},"events":[]}`, err: "cannot unmarshal object"},
		{name: "destination bool", body: `{"destination":true,"events":[]}`, err: "cannot unmarshal bool"},
		{name: "body array", body: `[{"events":[]}]`, err: "cannot unmarshal array"},
		{name: "body string", body: `"{}"`, err: "cannot unmarshal string"},
		{name: "syntax", body: `{"events":[{}]`, err: "unexpected end of JSON input"},
		{name: "trailing", body: `{"events":[]} {}`, err: "invalid character"},
		{name: "empty", body: ``, err: "unexpected end of JSON input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(c.body)
			w, err := ParseWebhook(body)
			want, wantErr := parseWebhookRef(body)
			if d := sameParse(w, err, want, wantErr); d != "" {
				t.Errorf("differs from encoding/json: %s", d)
			}
			if c.err != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want ErrMalformed with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Destination != c.dest || len(w.Events) != len(c.events) || w.Events == nil {
				t.Fatalf("destination %q, %d events (%v), want %q, %d", w.Destination, len(w.Events), w.Events == nil, c.dest, len(c.events))
			}
			for i, e := range c.events {
				g := w.Events[i]
				if string(g.Raw) != e.raw || g.WebhookEventID != e.id || g.Redelivery != e.redelivery {
					t.Errorf("events[%d] = %s %q %v, want %s %q %v", i, g.Raw, g.WebhookEventID, g.Redelivery, e.raw, e.id, e.redelivery)
				}
				if off := bytes.Index(body, g.Raw); off < 0 || &body[off] != &g.Raw[0] {
					t.Errorf("events[%d] is not a sub-slice of the body", i)
				}
			}
		})
	}
}
