package events_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/tests/fixture"
)

// fixtureEvents is one event of every type and message type LINE's
// webhook schema defines, as bytes.
func fixtureEvents(t testing.TB) map[string][]byte {
	at := time.UnixMilli(1692251666727)
	out := map[string][]byte{}
	add := func(name string, e fixture.E) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	for typ, e := range fixture.AllEvents(fixture.UserID(1), fixture.GroupID(1), at) {
		add(typ, e)
	}
	for typ, e := range fixture.MessageEvents(fixture.Room(fixture.RoomID(1), fixture.UserID(2)), at) {
		add("message/"+typ, e)
	}
	add("redelivered", fixture.Redelivered(fixture.Text(fixture.User(fixture.UserID(3)), at, "お元気ですか 😀 \"quoted\"\n")))
	return out
}

// ingestLog is a webhook log record as ingest encodes it.
func ingestLog(t testing.TB) []byte {
	b, err := json.Marshal(events.WebhookLog{WebhookID: "01J9ZQ4X7Y8W3V2T1S0R9Q8P7N", ChannelID: "1660000000",
		RemoteIP: "203.0.113.7", ReceivedAt: time.Date(2026, 11, 30, 8, 1, 2, 345678901, time.UTC),
		Method: "POST", Path: "/webhook/1660000000", Status: 200, EventCount: 3, Redelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeWalksWhatLINESends holds the fast path to the shapes it is
// for: every event type LINE sends but the two that carry members, and
// ingest's webhook log records, are read by the walk, not by
// encoding/json, and read as encoding/json reads them.
func TestDecodeWalksWhatLINESends(t *testing.T) {
	t.Parallel()
	for name, raw := range fixtureEvents(t) {
		got, ok := events.WalkEvent(raw)
		if name == "memberJoined" || name == "memberLeft" {
			if ok {
				t.Errorf("%s: walked, but the walk does not read members", name)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: the walk gave up on %s", name, raw)
			continue
		}
		var want events.Event
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: walked %+v, encoding/json %+v", name, *got, want)
		}
	}
	raw := ingestLog(t)
	got, ok := events.WalkWebhookLog(raw)
	var want events.WebhookLog
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("webhook log: walked %v (ok %v), encoding/json %+v", got, ok, want)
	}
}

// FuzzDecode checks Decode against encoding/json on any bytes: the same
// acceptance and the same fields, byte for byte. The seeds include every
// case the walk hands back to encoding/json.
func FuzzDecode(f *testing.F) {
	for _, raw := range fixtureEvents(f) {
		f.Add(raw)
	}
	for _, s := range []string{
		`{"type":"message","Type":"x"}`, `{"TYPE":"message","message":{"ID":"1","Text":"a","text":"b"}}`,
		`{"message":{"id":1}}`, `{"message":null}`, `{"message":"x"}`, `{"message":{"raw":"x","Raw":[1]}}`,
		`{"timestamp":1.5}`, `{"timestamp":1e3}`, `{"timestamp":"1"}`, `{"timestamp":-0}`,
		`{"timestamp":99999999999999999999}`, `{"timestamp":null}`,
		`{"source":{"type":"group","groupId":"C1","userId":"U1","type":"room"}}`, `{"source":[]}`,
		`{"deliveryContext":{"isRedelivery":true,"isRedelivery":false}}`, `{"deliveryContext":{"isRedelivery":1}}`,
		`{"unsend":{"messageId":"1"},"unsend":{"messageId":"2"}}`, `{"unsend":{"messageId":null}}`,
		`{"webhookEventI\u0064":"a\"b\u0000","replyToken":"\ud800"}`, `{"meſsage":{"id":"1"},"ſource":{}}`,
		`{"type":"memberJoined","joined":{"members":[{"type":"user","userId":"U1"}]}}`,
		`{"mode":"active","x":{"message":{"id":"2"}},"message":{"id":"3","quoteToken":"q"}}`,
		` {"type" : "message" , "message" : { "id" : "1" } } `, `[]`, `null`, `"x"`, `{`, ``, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := events.Decode(raw)
		var want events.Event
		wantErr := json.Unmarshal(raw, &want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: Decode error %v, encoding/json error %v", raw, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(*got, want) {
			t.Fatalf("%q: Decode %+v, encoding/json %+v", raw, *got, want)
		}
	})
}

// FuzzDecodeWebhookLog checks DecodeWebhookLog against encoding/json.
func FuzzDecodeWebhookLog(f *testing.F) {
	f.Add(ingestLog(f))
	for _, s := range []string{
		`{"webhookId":"w","receivedAt":"2026-11-30T08:00:00+09:00","status":200}`,
		`{"receivedAt":"2026-11-30T08:00:00"}`, `{"receivedAt":"24:00"}`, `{"receivedAt":null}`,
		`{"status":200.0}`, `{"status":"200"}`, `{"eventCount":9223372036854775808}`, `{"redelivery":"true"}`,
		`{"webhookId":"a","WebhookID":"b"}`, `{"method":"P\u004fST","path":"/é"}`, `null`, `{}`, `{"a":[}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := events.DecodeWebhookLog(raw)
		var want events.WebhookLog
		wantErr := json.Unmarshal(raw, &want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: DecodeWebhookLog error %v, encoding/json error %v", raw, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: DecodeWebhookLog %+v, encoding/json %+v", raw, got, want)
		}
	})
}

// BenchmarkDecode compares reading a text message event and a webhook
// log record: "old" is encoding/json, as the worker did; "new" is Decode
// and DecodeWebhookLog.
func BenchmarkDecode(b *testing.B) {
	raw := fixtureEvents(b)["message/text"]
	log := ingestLog(b)
	for _, c := range []struct {
		name   string
		decode func() error
	}{
		{"event/old", func() error { var e events.Event; return json.Unmarshal(raw, &e) }},
		{"event/new", func() error { _, err := events.Decode(raw); return err }},
		{"log/old", func() error { var rec events.WebhookLog; return json.Unmarshal(log, &rec) }},
		{"log/new", func() error { _, err := events.DecodeWebhookLog(log); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
