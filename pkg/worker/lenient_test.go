package worker

import (
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
