package events

import (
	"encoding/json"
	"strconv"
	"time"
)

// The hand walks behind Decode and DecodeWebhookLog. Decoding an event
// with encoding/json was the largest share of the worker's CPU: it scans
// the bytes once to validate them and again to decode, and the message
// object a third time (Message.UnmarshalJSON). These walks run on bytes
// validJSON (valid.go) accepted and read the shapes LINE and ingest send. On
// anything else they give up, and encoding/json decodes as before, so
// their result is always the one encoding/json would have given:
//
//   - a key that is not plain ASCII, or that names a field twice;
//   - a field of the wrong JSON type, or null;
//   - a number an integer field cannot hold as encoding/json reads it;
//   - the members of memberJoined and memberLeft.
//
// Keys match fields case-insensitively (ASCII folding, which is
// encoding/json's rule for ASCII keys); strings with escapes or non-ASCII
// bytes are unquoted by encoding/json itself (scanner.stringValue).

// walkEvent is Decode's fast path; ok is false when encoding/json must
// decode raw instead.
func walkEvent(raw []byte) (e *Event, ok bool) {
	s := scanner{b: raw}
	s.space()
	e = &Event{}
	var seen fieldSet
	ok = s.object(func(key []byte) bool {
		switch {
		case keyIs(key, true, "type"):
			return seen.once(0) && s.text(&e.Type)
		case keyIs(key, true, "mode"):
			return seen.once(1) && s.text(&e.Mode)
		case keyIs(key, true, "timestamp"):
			return seen.once(2) && s.int64(&e.Timestamp)
		case keyIs(key, true, "webhookeventid"):
			return seen.once(3) && s.text(&e.WebhookEventID)
		case keyIs(key, true, "replytoken"):
			return seen.once(4) && s.text(&e.ReplyToken)
		case keyIs(key, true, "source"):
			return seen.once(5) && s.source(&e.Source)
		case keyIs(key, true, keyDeliveryContext):
			return seen.once(6) && s.onlyField(keyIsRedelivery, func() bool {
				return s.boolean(&e.DeliveryContext.IsRedelivery)
			})
		case keyIs(key, true, "message"):
			return seen.once(7) && s.message(&e.Message)
		case keyIs(key, true, "unsend"):
			e.Unsend = &struct {
				MessageID string `json:"messageId"`
			}{}
			return seen.once(8) && s.onlyField("messageid", func() bool { return s.text(&e.Unsend.MessageID) })
		case keyIs(key, true, "joined"), keyIs(key, true, "left"):
			return false
		}
		s.skip()
		return true
	})
	return e, ok
}

// source reads an event's source object at s.i.
func (s *scanner) source(src *Source) bool {
	var seen fieldSet
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, true, "type"):
			return seen.once(0) && s.text(&src.Type)
		case keyIs(key, true, "userid"):
			return seen.once(1) && s.text(&src.UserID)
		case keyIs(key, true, "groupid"):
			return seen.once(2) && s.text(&src.GroupID)
		case keyIs(key, true, "roomid"):
			return seen.once(3) && s.text(&src.RoomID)
		}
		s.skip()
		return true
	})
}

// message reads the message object at s.i, keeping its bytes as
// Message.UnmarshalJSON does.
func (s *scanner) message(dst **Message) bool {
	start := s.i
	m := &Message{}
	var seen fieldSet
	ok := s.object(func(key []byte) bool {
		switch {
		case keyIs(key, true, "id"):
			return seen.once(0) && s.text(&m.ID)
		case keyIs(key, true, "type"):
			return seen.once(1) && s.text(&m.Type)
		case keyIs(key, true, "text"):
			return seen.once(2) && s.text(&m.Text)
		}
		s.skip()
		return true
	})
	m.Raw = append(json.RawMessage(nil), s.b[start:s.i]...)
	*dst = m
	return ok
}

// walkWebhookLog is DecodeWebhookLog's fast path.
func walkWebhookLog(b []byte) (rec WebhookLog, ok bool) {
	s := scanner{b: b}
	s.space()
	var seen fieldSet
	ok = s.object(func(key []byte) bool {
		switch {
		case keyIs(key, true, "webhookid"):
			return seen.once(0) && s.text(&rec.WebhookID)
		case keyIs(key, true, "channelid"):
			return seen.once(1) && s.text(&rec.ChannelID)
		case keyIs(key, true, "remoteip"):
			return seen.once(2) && s.text(&rec.RemoteIP)
		case keyIs(key, true, "receivedat"):
			return seen.once(3) && s.time(&rec.ReceivedAt)
		case keyIs(key, true, "method"):
			return seen.once(4) && s.text(&rec.Method)
		case keyIs(key, true, "path"):
			return seen.once(5) && s.text(&rec.Path)
		case keyIs(key, true, "status"):
			return seen.once(6) && s.int(&rec.Status)
		case keyIs(key, true, "eventcount"):
			return seen.once(7) && s.int(&rec.EventCount)
		case keyIs(key, true, "redelivery"):
			return seen.once(8) && s.boolean(&rec.Redelivery)
		}
		s.skip()
		return true
	})
	return rec, ok
}

// fieldSet records which fields of one object a walk has set.
type fieldSet uint16

// once marks field i and reports whether it was not set before.
func (f *fieldSet) once(i uint) bool {
	if *f&(1<<i) != 0 {
		return false
	}
	*f |= 1 << i
	return true
}

// object walks the object at s.i, calling member with each plain key and
// s.i at its value; member must step over the value or return false. It
// reports false at anything that is not an object, a key that is not
// plain, or a member that gave up.
func (s *scanner) object(member func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	for {
		key, plain, ok := s.key()
		if !ok {
			return true
		}
		if !plain || !member(key) {
			return false
		}
	}
}

// onlyField walks an object of which one member is read: read reads the
// value of the member named name (lower case), at most once; every other
// member is stepped over.
func (s *scanner) onlyField(name string, read func() bool) bool {
	var seen fieldSet
	return s.object(func(key []byte) bool {
		if keyIs(key, true, name) {
			return seen.once(0) && read()
		}
		s.skip()
		return true
	})
}

// text reads a string value.
func (s *scanner) text(dst *string) bool {
	if s.peek() != '"' {
		return false
	}
	*dst = s.stringValue()
	return true
}

// boolean reads true or false.
func (s *scanner) boolean(dst *bool) bool {
	switch s.peek() {
	case 't':
		*dst = true
	case 'f':
		*dst = false
	default:
		return false
	}
	s.skip()
	return true
}

// int64 reads a number as encoding/json fills an int64: only an integer
// literal in range.
func (s *scanner) int64(dst *int64) bool {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return false
	}
	start := s.i
	s.skip()
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

// int reads a number into an int (64 bits wide wherever linepipe runs).
func (s *scanner) int(dst *int) bool {
	var n int64
	if !s.int64(&n) || int64(int(n)) != n {
		return false
	}
	*dst = int(n)
	return true
}

// time reads a timestamp string as time.Time's UnmarshalJSON does, which
// is what encoding/json calls for it.
func (s *scanner) time(dst *time.Time) bool {
	if s.peek() != '"' {
		return false
	}
	tok, _ := s.str()
	return dst.UnmarshalJSON(tok) == nil
}
