package worker

import (
	"encoding/json"
	"strings"
	"testing"
)

// An event of unexpected shape is still routed by what can be read, and
// its message id, whatever its JSON type, is the same text its unsend
// names.
func TestReadEventOddShapes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, raw, wantID, wantType, wantText string
		wantMillis                            int64
	}{
		{"fractional timestamp", `{"type":"message","timestamp":1700000000000.5,"message":{"id":"77","type":"text","text":"hi"}}`, "77", "message", "hi", 1700000000000},
		{"string timestamp", `{"type":"message","timestamp":"1700000000000","message":{"id":"78","type":"text","text":"hi"}}`, "78", "message", "hi", 1700000000000},
		{"numeric id", `{"type":"message","timestamp":1,"message":{"id":12345678901234567890,"type":"text","text":"hi"}}`, "12345678901234567890", "message", "hi", 1},
		{"object id", `{"type":"message","message":{"id":{"b":1, "a":[2]},"type":"text"}}`, `{"b":1,"a":[2]}`, "message", "", 0},
		{"object text", `{"type":"message","message":{"id":"9","type":"text","text":{"x":"y"}}}`, "9", "message", `{"x":"y"}`, 0},
		{"keys in another case", `{"Type":"message","MESSAGE":{"ID":"10","Text":"hi"}}`, "10", "message", "hi", 0},
		{"NUL in id", `{"type":"message","message":{"id":"a\u0000b","type":"text"}}`, "ab", "message", "", 0},
		{"unsend with numeric id", `{"type":"unsend","unsend":{"messageId":12345678901234567890}}`, "12345678901234567890", "unsend", "", 0},
		{"type as object", `{"type":{"t":"message"},"message":{"id":"5","text":"hi"}}`, "5", `{"t":"message"}`, "hi", 0},
	}
	for _, c := range cases {
		ev, ok := readEvent([]byte(c.raw))
		if !ok {
			t.Fatalf("%s: refused", c.name)
		}
		sanitize(ev)
		if got := messageIDOf(ev); got != c.wantID {
			t.Errorf("%s: message id %q, want %q", c.name, got, c.wantID)
		}
		if ev.Type != c.wantType || ev.Timestamp != c.wantMillis {
			t.Errorf("%s: type %q timestamp %d", c.name, ev.Type, ev.Timestamp)
		}
		if ev.Message != nil && ev.Message.Text != c.wantText {
			t.Errorf("%s: text %q, want %q", c.name, ev.Message.Text, c.wantText)
		}
	}
	if _, ok := readEvent([]byte("{not json")); ok {
		t.Error("invalid JSON was accepted")
	}
}

// Any valid JSON is read without panicking, and a message id written in
// any JSON form meets the same id named by an unsend.
func FuzzReadEvent(f *testing.F) {
	for _, s := range []string{`{"type":"message","message":{"id":"1","text":"x"}}`, `{"timestamp":1.5}`, `[]`, `"x"`,
		`{"type":"message","message":{"id":{"a":[1,{"b":null}]},"text":"\u0000"}}`, `{"message":{"id":1e400}}`,
		`{"MESSAGE":{"Id":"\ud800"},"message":{"id":"2"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = storable(raw)
		ev, ok := readEvent(raw)
		if ok != json.Valid(raw) {
			t.Fatalf("readEvent(%q) ok=%v, valid=%v", raw, ok, json.Valid(raw))
		}
		if !ok {
			return
		}
		sanitize(ev)
		id := messageIDOf(ev)
		if ev.Message == nil || id == "" {
			return
		}
		// The unsend names the id by the same JSON value.
		var fields map[string]json.RawMessage
		var idRaw json.RawMessage
		if json.Unmarshal(raw, &fields) == nil {
			messages := 0
			for k := range fields {
				if strings.EqualFold(k, "message") {
					messages++
				}
			}
			if messages > 1 {
				return // case-variant "message" keys: which one wins is the decoder's choice
			}
			for k, v := range fields {
				if strings.EqualFold(k, "message") {
					var m map[string]json.RawMessage
					if json.Unmarshal(v, &m) == nil {
						ids := 0
						for mk, mv := range m {
							if strings.EqualFold(mk, "id") {
								idRaw = mv
								ids++
							}
						}
						if ids > 1 {
							return // case-variant "id" keys: likewise the decoder's choice
						}
					}
				}
			}
		}
		if idRaw == nil || len(fields) != len(members(raw)) {
			return // duplicate or case-variant keys: which one wins is checked above
		}
		u, ok := readEvent([]byte(`{"type":"unsend","unsend":{"messageId":` + string(idRaw) + `}}`))
		if !ok {
			t.Fatalf("unsend naming %s refused", idRaw)
		}
		sanitize(u)
		if got := messageIDOf(u); got != id {
			t.Fatalf("message id %q, its unsend names %q", id, got)
		}
	})
}
