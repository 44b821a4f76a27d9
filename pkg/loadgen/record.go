package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Record is the audit trail of a run: what the server acknowledged and
// what was taken back, so a later check can prove nothing acknowledged was
// lost and nothing unsent survived.
type Record struct {
	// Accepted are the events whose request finally got a 2xx: the server
	// promised they are durable.
	Accepted []AcceptedEvent
	// Failed are the events whose request never got a 2xx after every
	// redelivery. The server may or may not have kept them.
	Failed []AcceptedEvent
	// Unsent are messages whose unsend event was accepted: their content
	// must be gone from the server's storage.
	Unsent []UnsentMessage
	// UnsendUnconfirmed are messages whose unsend was sent but never
	// acknowledged, so they may or may not have been scrubbed.
	UnsendUnconfirmed []UnsentMessage
}

// AcceptedEvent identifies one event the generator sent.
type AcceptedEvent struct {
	ChannelID      string `json:"channelId"`
	WebhookEventID string `json:"webhookEventId"`
	Type           string `json:"type"`
	// Kind is the generator's kind (text, sticker, ...), finer than Type.
	Kind       string `json:"kind,omitempty"`
	MessageID  string `json:"messageId,omitempty"`
	ReplyToken string `json:"replyToken,omitempty"`
}

// UnsentMessage is a message the generator unsent: the message, its text
// (empty for stickers and images) and both event IDs.
type UnsentMessage struct {
	ChannelID      string `json:"channelId"`
	MessageID      string `json:"messageId"`
	Text           string `json:"text,omitempty"`
	MessageEventID string `json:"messageEventId"`
	UnsendEventID  string `json:"unsendEventId"`
}

// Record entry kinds in the JSON-lines file.
const (
	EntryAccepted          = "accepted"
	EntryFailed            = "failed"
	EntryUnsent            = "unsent"
	EntryUnsendUnconfirmed = "unsend-unconfirmed"
)

// RecordEntry is one line of the JSON-lines record: Kind says which of
// Event or Unsent is set.
type RecordEntry struct {
	Kind   string         `json:"kind"`
	Event  *AcceptedEvent `json:"event,omitempty"`
	Unsent *UnsentMessage `json:"unsent,omitempty"`
}

// recorder keeps the record in memory and streams it as JSON lines.
type recorder struct {
	mu   sync.Mutex
	keep bool
	rec  Record
	w    *bufio.Writer
	enc  *json.Encoder
	err  error
}

func newRecorder(w io.Writer, keep bool) *recorder {
	r := &recorder{keep: keep}
	if w != nil {
		r.w = bufio.NewWriterSize(w, 64<<10)
		r.enc = json.NewEncoder(r.w)
	}
	return r
}

// webhookDone records the outcome of every event of w.
func (r *recorder) webhookDone(w *webhook, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range w.events {
		e := &w.events[i]
		ev := AcceptedEvent{ChannelID: w.channel.ID, WebhookEventID: e.wire.WebhookEventID, Type: e.wire.Type,
			Kind: e.kind, MessageID: e.messageID, ReplyToken: e.wire.ReplyToken}
		if ok {
			r.add(EntryAccepted, &ev, nil)
		} else {
			r.add(EntryFailed, &ev, nil)
		}
		if e.unsendOf == nil {
			continue
		}
		u := UnsentMessage{
			ChannelID: w.channel.ID, MessageID: e.unsendOf.messageID, Text: e.unsendOf.text,
			MessageEventID: e.unsendOf.eventID, UnsendEventID: e.wire.WebhookEventID,
		}
		if ok {
			r.add(EntryUnsent, nil, &u)
		} else {
			r.add(EntryUnsendUnconfirmed, nil, &u)
		}
	}
}

func (r *recorder) add(kind string, ev *AcceptedEvent, u *UnsentMessage) {
	if r.keep {
		switch kind {
		case EntryAccepted:
			r.rec.Accepted = append(r.rec.Accepted, *ev)
		case EntryFailed:
			r.rec.Failed = append(r.rec.Failed, *ev)
		case EntryUnsent:
			r.rec.Unsent = append(r.rec.Unsent, *u)
		case EntryUnsendUnconfirmed:
			r.rec.UnsendUnconfirmed = append(r.rec.UnsendUnconfirmed, *u)
		}
	}
	if r.enc != nil && r.err == nil {
		if err := r.enc.Encode(RecordEntry{Kind: kind, Event: ev, Unsent: u}); err != nil {
			r.err = fmt.Errorf("writing record: %w", err)
		}
	}
}

// close flushes the stream and returns the in-memory record (nil when not
// kept) and the first write error.
func (r *recorder) close() (*Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		if err := r.w.Flush(); err != nil {
			r.err = fmt.Errorf("flushing record: %w", err)
		}
	}
	if !r.keep {
		return nil, r.err
	}
	rec := r.rec
	return &rec, r.err
}

// ReadRecord reads a JSON-lines record written by a run back into a
// Record, for audits that run in another process.
func ReadRecord(rd io.Reader) (*Record, error) {
	var rec Record
	dec := json.NewDecoder(rd)
	for {
		var e RecordEntry
		if err := dec.Decode(&e); err == io.EOF {
			return &rec, nil
		} else if err != nil {
			return nil, fmt.Errorf("reading record: %w", err)
		}
		switch {
		case e.Kind == EntryAccepted && e.Event != nil:
			rec.Accepted = append(rec.Accepted, *e.Event)
		case e.Kind == EntryFailed && e.Event != nil:
			rec.Failed = append(rec.Failed, *e.Event)
		case e.Kind == EntryUnsent && e.Unsent != nil:
			rec.Unsent = append(rec.Unsent, *e.Unsent)
		case e.Kind == EntryUnsendUnconfirmed && e.Unsent != nil:
			rec.UnsendUnconfirmed = append(rec.UnsendUnconfirmed, *e.Unsent)
		default:
			return nil, fmt.Errorf("reading record: unknown entry kind %q", e.Kind)
		}
	}
}
