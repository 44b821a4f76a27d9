package worker

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// readEvent decodes an event's routing fields. The strict decoder reads
// LINE's documented shapes; an event it refuses but that is valid JSON (a
// fractional or string timestamp, a numeric message id, an object where a
// string belongs) is read field by field, so it is stored with the same
// routing, and above all the same message id, as a well-formed one: an
// unsend must find every stored copy of its message, however odd.
func readEvent(raw []byte) (*events.Event, bool) {
	if ev, err := events.Decode(raw); err == nil {
		return ev, true
	}
	if !json.Valid(raw) {
		return nil, false
	}
	return looseEvent(raw), true
}

// member is one name/value pair of a JSON object, in order.
type member struct {
	name  string
	value json.RawMessage
}

// members lists an object's pairs; nil for anything but an object.
func members(raw []byte) []member {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var ms []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ms
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ms
		}
		ms = append(ms, member{name, v})
	}
	return ms
}

// field is the value of name in ms, matched as encoding/json matches
// struct fields (ignoring case, the last match winning), so both decoders
// agree on which key is "the message".
func field(ms []member, name string) json.RawMessage {
	var v json.RawMessage
	for _, m := range ms {
		if strings.EqualFold(m.name, name) {
			v = m.value
		}
	}
	return v
}

// textOf is any JSON value as text: a string's contents, null or absent
// as "", and anything else (number, boolean, object, array) as its
// compact JSON. A message id of 123 and an unsend naming "123" meet.
func textOf(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) == nil {
		return buf.String()
	}
	return string(v)
}

// millisOf reads a timestamp sent as an integer, a fraction, or a string
// holding either; 0 when it is none of these or out of range.
func millisOf(v json.RawMessage) int64 {
	s := strings.TrimSpace(textOf(v))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxTimestampMillis {
		return 0
	}
	return int64(f)
}

// looseEvent reads every routing field that can be read, each on its own.
func looseEvent(raw []byte) *events.Event {
	ms := members(raw)
	ev := &events.Event{
		Type:           textOf(field(ms, "type")),
		Mode:           textOf(field(ms, "mode")),
		Timestamp:      millisOf(field(ms, "timestamp")),
		WebhookEventID: textOf(field(ms, "webhookEventId")),
		ReplyToken:     textOf(field(ms, "replyToken")),
	}
	if src := members(field(ms, "source")); src != nil {
		ev.Source = events.Source{Type: textOf(field(src, "type")), UserID: textOf(field(src, "userId")),
			GroupID: textOf(field(src, "groupId")), RoomID: textOf(field(src, "roomId"))}
	}
	if dc := members(field(ms, "deliveryContext")); dc != nil {
		ev.DeliveryContext.IsRedelivery = textOf(field(dc, "isRedelivery")) == "true"
	}
	if v := field(ms, "message"); v != nil {
		if m := members(v); m != nil {
			ev.Message = &events.Message{ID: textOf(field(m, "id")), Type: textOf(field(m, "type")),
				Text: textOf(field(m, "text")), Raw: append(json.RawMessage(nil), v...)}
		}
	}
	if u := members(field(ms, "unsend")); u != nil {
		ev.Unsend = &struct {
			MessageID string `json:"messageId"`
		}{MessageID: textOf(field(u, "messageId"))}
	}
	ev.Joined = looseMembers(field(ms, "joined"))
	ev.Left = looseMembers(field(ms, "left"))
	return ev
}

func looseMembers(v json.RawMessage) *struct {
	Members []events.Member `json:"members"`
} {
	obj := members(v)
	if obj == nil {
		return nil
	}
	var list []json.RawMessage
	_ = json.Unmarshal(field(obj, "members"), &list)
	out := &struct {
		Members []events.Member `json:"members"`
	}{}
	for _, e := range list {
		m := members(e)
		out.Members = append(out.Members, events.Member{Type: textOf(field(m, "type")), UserID: textOf(field(m, "userId"))})
	}
	return out
}

// messageIDOf is the message an event concerns: an unsend's target, or
// the message of any other event that carries one.
func messageIDOf(ev *events.Event) string {
	if ev.Type == events.TypeUnsend && ev.Unsend != nil {
		return ev.Unsend.MessageID
	}
	return ev.MessageID()
}

// storable makes raw bytes Postgres can hold in a json column: LINE sends
// UTF-8, and a byte that is not is replaced by U+FFFD rather than make
// the event unstorable.
func storable(raw []byte) []byte {
	if utf8.Valid(raw) {
		return raw
	}
	return bytes.ToValidUTF8(raw, []byte("\uFFFD"))
}

// sanitize makes the fields stored in text columns storable: JSON may
// carry \u0000, Postgres text cannot, and one odd character must not make
// an event unstorable. The raw event (type json) keeps it as sent. The
// message id of a message and of its unsend go through the same change,
// so they still meet.
func sanitize(ev *events.Event) {
	clean := func(s *string) { *s = store.SanitizeText(*s, 0) }
	for _, s := range []*string{&ev.Type, &ev.Mode, &ev.WebhookEventID, &ev.ReplyToken,
		&ev.Source.Type, &ev.Source.UserID, &ev.Source.GroupID, &ev.Source.RoomID} {
		clean(s)
	}
	if ev.Message != nil {
		for _, s := range []*string{&ev.Message.ID, &ev.Message.Type, &ev.Message.Text} {
			clean(s)
		}
	}
	if ev.Unsend != nil {
		clean(&ev.Unsend.MessageID)
	}
	for _, ms := range []*struct {
		Members []events.Member `json:"members"`
	}{ev.Joined, ev.Left} {
		if ms != nil {
			for i := range ms.Members {
				clean(&ms.Members[i].UserID)
			}
		}
	}
}
