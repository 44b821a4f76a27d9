package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event types linepipe acts on. Any other type is stored as it came.
const (
	TypeMessage       = "message"
	TypeMessageEdited = "messageEdited"
	TypeUnsend        = "unsend"
	TypeFollow        = "follow"
	TypeUnfollow      = "unfollow"
	TypeJoin          = "join"
	TypeLeave         = "leave"
	TypeMemberJoined  = "memberJoined"
	TypeMemberLeft    = "memberLeft"
)

// Source is where an event came from. Fields LINE omits stay empty.
type Source struct {
	Type    string `json:"type"`
	UserID  string `json:"userId,omitempty"`
	GroupID string `json:"groupId,omitempty"`
	RoomID  string `json:"roomId,omitempty"`
}

// ChatID is the group or room id for a group or room source, "" otherwise.
func (s Source) ChatID() string {
	if s.GroupID != "" {
		return s.GroupID
	}
	return s.RoomID
}

// Member is one entry of memberJoined.joined.members or memberLeft.left.members.
type Member struct {
	Type   string `json:"type"`
	UserID string `json:"userId"`
}

// Event is the part of a webhook event linepipe routes on. It is decoded
// from the raw event and never re-encoded: storage keeps the raw bytes.
// Each field is optional, because a future or partial event may lack it.
type Event struct {
	Type            string `json:"type"`
	Mode            string `json:"mode"`
	Timestamp       int64  `json:"timestamp"`
	WebhookEventID  string `json:"webhookEventId"`
	ReplyToken      string `json:"replyToken"`
	Source          Source `json:"source"`
	DeliveryContext struct {
		IsRedelivery bool `json:"isRedelivery"`
	} `json:"deliveryContext"`
	Message *Message `json:"message"`
	Unsend  *struct {
		MessageID string `json:"messageId"`
	} `json:"unsend"`
	Joined *struct {
		Members []Member `json:"members"`
	} `json:"joined"`
	Left *struct {
		Members []Member `json:"members"`
	} `json:"left"`
}

// Message is the message object of a message or messageEdited event:
// the id and type linepipe indexes, the text it may hold, and every field
// as sent (Raw), for the content column.
type Message struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Text string `json:"text"`
	Raw  json.RawMessage
}

// UnmarshalJSON keeps the message's raw bytes next to the decoded fields.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*m = Message(p)
	m.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// Decode reads the routing fields of one raw event. It fails only when the
// bytes are not a JSON object of compatible shape (for example "timestamp"
// as a string); unknown types and fields are not errors.
func Decode(raw []byte) (*Event, error) {
	if validJSON(raw) {
		if e, ok := walkEvent(raw); ok {
			return e, nil
		}
	}
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	return &e, nil
}

// Time is the event's occurrence time. LINE sends Unix milliseconds.
func (e *Event) Time() time.Time {
	return time.UnixMilli(e.Timestamp).UTC()
}

// MessageID returns the message id an event is about: the message of a
// message or messageEdited event, or the target of an unsend.
func (e *Event) MessageID() string {
	switch {
	case e.Message != nil:
		return e.Message.ID
	case e.Unsend != nil:
		return e.Unsend.MessageID
	}
	return ""
}

// DedupID is the id linepipe deduplicates an event on: its webhookEventId,
// or, for an event that lacks one, a digest of its channel and bytes, so a
// byte-identical resend still deduplicates.
func DedupID(channelID string, webhookEventID string, raw []byte) string {
	if webhookEventID != "" {
		return webhookEventID
	}
	h := sha256.New()
	h.Write([]byte(channelID))
	h.Write([]byte{0})
	h.Write(raw)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
