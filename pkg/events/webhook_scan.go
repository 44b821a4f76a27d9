package events

import (
	"encoding/json"
	"strings"
)

// The hand walk behind ParseWebhook. It runs only on a body validJSON
// accepted, so it checks no syntax: it steps over whitespace, strings and
// nested values, and looks at the few members ingest reads ("destination",
// "events", and per event "webhookEventId" and
// "deliveryContext"."isRedelivery"). It exists because decoding the body
// with encoding/json and then each event again was four scans of every
// webhook, a measurable share of ingest's CPU.
//
// It follows encoding/json's rules for the struct shapes ParseWebhook and
// ingest used to decode into: a key matches a field case-insensitively
// (Unicode simple folding, after unescaping), the last of duplicated keys
// wins, null leaves a string, bool or struct as it was (and sets the
// events pointer to nil), and a value of the wrong type leaves an id or
// flag as it was while making a wrong "destination" or "events" an error.

// Results of walkWebhook besides the index (>= 0) of the first element of
// "events" that is not an object.
const (
	shapeOK        = -1 // a webhook object
	shapeNoEvents  = -2 // null, or an object without an "events" array
	shapeTypeError = -3 // encoding/json reports a type error
	shapeTooMany   = -4 // the events array holds more than the limit
)

// Lowercase names of the members read, for matching keys case-insensitively.
const (
	keyDestination     = "destination"
	keyEvents          = "events"
	keyWebhookEventID  = "webhookeventid"
	keyDeliveryContext = "deliverycontext"
	keyIsRedelivery    = "isredelivery"
)

// walkWebhook splits a body validJSON accepted, keeping at most maxEvents
// events (0: all). w is meaningful only when shape is shapeOK.
func walkWebhook(body []byte, maxEvents int) (w *Webhook, shape int) {
	s := scanner{b: body}
	s.space()
	switch s.peek() {
	case 'n':
		return nil, shapeNoEvents
	case '{':
	default:
		return nil, shapeTypeError
	}
	s.i++
	w = &Webhook{}
	var evs []WebhookEvent
	haveEvents, typeErr, tooMany, bad := false, false, false, -1
	for {
		key, plain, ok := s.key()
		if !ok {
			break
		}
		switch {
		case keyIs(key, plain, keyDestination):
			switch s.peek() {
			case '"':
				w.Destination = s.stringValue()
			case 'n':
				s.skip()
			default:
				typeErr = true
				s.skip()
			}
		case keyIs(key, plain, keyEvents):
			switch s.peek() {
			case '[':
				evs, bad, tooMany = s.events(evs[:0], maxEvents)
				haveEvents = true
			case 'n':
				haveEvents = false
				s.skip()
			default:
				typeErr = true
				s.skip()
			}
		default:
			s.skip()
		}
	}
	switch {
	case typeErr:
		return nil, shapeTypeError
	case !haveEvents:
		return nil, shapeNoEvents
	case bad >= 0:
		return nil, bad
	case tooMany:
		return nil, shapeTooMany
	}
	if evs == nil {
		evs = []WebhookEvent{}
	}
	w.Events = evs
	return w, shapeOK
}

// events reads the array at s.i into evs, returning the index of its first
// element that is not an object, or -1, and whether it held more than max
// elements (0: no limit), of which it kept only max.
func (s *scanner) events(evs []WebhookEvent, max int) ([]WebhookEvent, int, bool) {
	s.i++ // [
	bad, tooMany := -1, false
	for n := 0; ; n++ {
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
		case ']', 0:
			s.i++
			return evs, bad, tooMany
		}
		if s.peek() != '{' {
			if bad < 0 {
				bad = n
			}
			s.skip()
			continue
		}
		if max > 0 && n >= max {
			tooMany = true
			s.skip()
			continue
		}
		evs = append(evs, s.event())
	}
}

// event reads the object at s.i.
func (s *scanner) event() WebhookEvent {
	start := s.i
	s.i++ // {
	var ev WebhookEvent
	for {
		key, plain, ok := s.key()
		if !ok {
			break
		}
		switch {
		case keyIs(key, plain, keyWebhookEventID) && s.peek() == '"':
			ev.WebhookEventID = s.stringValue()
		case keyIs(key, plain, keyDeliveryContext) && s.peek() == '{':
			s.deliveryContext(&ev.Redelivery)
		default:
			s.skip()
		}
	}
	ev.Raw = s.b[start:s.i]
	return ev
}

// deliveryContext reads the object at s.i, updating redelivery for each
// boolean "isRedelivery".
func (s *scanner) deliveryContext(redelivery *bool) {
	s.i++ // {
	for {
		key, plain, ok := s.key()
		if !ok {
			return
		}
		if keyIs(key, plain, keyIsRedelivery) {
			switch s.peek() {
			case 't':
				*redelivery = true
			case 'f':
				*redelivery = false
			}
		}
		s.skip()
	}
}

// keyIs reports whether the quoted key tok names the member whose
// lowercase name is lower, as encoding/json matches a struct field's name.
// plain says tok holds only ASCII and no escape, the case of every key
// LINE sends; any other key is unescaped by encoding/json and compared
// with Unicode simple folding, as encoding/json's folded names are.
func keyIs(tok []byte, plain bool, lower string) bool {
	if !plain {
		var k string
		return json.Unmarshal(tok, &k) == nil && strings.EqualFold(k, lower)
	}
	if len(tok) != len(lower)+2 {
		return false
	}
	for i := 0; i < len(lower); i++ {
		c := tok[i+1]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
