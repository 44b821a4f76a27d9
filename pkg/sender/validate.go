package sender

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/linepipe/linepipe/pkg/store"
)

// LINE's request limits (Messaging API reference and OpenAPI).
const (
	MaxBodyBytes        = 2_000_000 // larger requests get 413; LINE's "2MB" read as 10^6 bytes, the stricter
	MaxMessages         = 5         // message objects per request
	MaxTextUTF16        = 5000      // text message length in UTF-16 code units
	MaxMulticastTargets = 500
)

var (
	// recipientPattern: user, group or room id. User ids are documented
	// as U + 32 hex; group and room ids follow the same form in LINE's
	// examples.
	recipientPattern = regexp.MustCompile(`^[UCR][0-9a-f]{32}$`)
	userPattern      = regexp.MustCompile(`^U[0-9a-f]{32}$`)
)

// ErrInvalid marks a row LINE would refuse: it fails without a call.
var ErrInvalid = errors.New("invalid outbox row")

type requestBody struct {
	To         json.RawMessage   `json:"to"`
	ReplyToken *string           `json:"replyToken"`
	Messages   []json.RawMessage `json:"messages"`
}

type messageObject struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// typedBody is requestBody with its messages read in the same pass: one
// decode for a row that is well formed. A body it cannot read goes
// through requestBody, whose errors say which message is wrong.
type typedBody struct {
	To         json.RawMessage `json:"to"`
	ReplyToken *string         `json:"replyToken"`
	Messages   []messageObject `json:"messages"`
}

// validateRow checks what LINE checks and answers 4xx for, so a row that
// cannot succeed fails at once with a readable reason. The stored bytes
// are never modified: they are what is sent.
func validateRow(endpoint string, body []byte) error {
	_, err := checkBody(endpoint, body)
	return err
}

// checkRow is validateRow that also counts the body's message objects in
// the same decode; for a body it rejects, the count is messageCount's.
func checkRow(endpoint string, body []byte) (int, error) {
	n, err := checkBody(endpoint, body)
	if err != nil {
		return messageCount(body), err
	}
	return n, nil
}

// checkBody is validateRow that also returns the number of message
// objects of a body it accepts.
func checkBody(endpoint string, body []byte) (int, error) {
	if !store.KnownEndpoint(endpoint) {
		return 0, fmt.Errorf("%w: unknown endpoint %q (want reply, push, multicast, narrowcast or broadcast)", ErrInvalid, endpoint)
	}
	if len(body) > MaxBodyBytes {
		return 0, fmt.Errorf("%w: body is %d bytes, LINE accepts at most 2MB", ErrInvalid, len(body))
	}
	var b typedBody
	if err := json.Unmarshal(body, &b); err != nil {
		var raw requestBody
		if err := json.Unmarshal(body, &raw); err != nil {
			return 0, fmt.Errorf("%w: body is not a JSON object: %v", ErrInvalid, err)
		}
		if err := validateRawMessages(raw.Messages); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: body is not a LINE request: %v", ErrInvalid, err)
	}
	if err := validateMessages(b.Messages); err != nil {
		return 0, err
	}
	switch endpoint {
	case store.EndpointReply:
		if b.ReplyToken == nil || *b.ReplyToken == "" {
			return 0, fmt.Errorf("%w: reply body has no replyToken", ErrInvalid)
		}
	case store.EndpointPush:
		var to string
		if err := json.Unmarshal(b.To, &to); err != nil || !recipientPattern.MatchString(to) {
			return 0, fmt.Errorf("%w: push \"to\" must be a user, group or room id (U, C or R + 32 hex)", ErrInvalid)
		}
	case store.EndpointMulticast:
		var to []string
		if err := json.Unmarshal(b.To, &to); err != nil || len(to) == 0 {
			return 0, fmt.Errorf("%w: multicast \"to\" must be a non-empty array of user ids", ErrInvalid)
		}
		if len(to) > MaxMulticastTargets {
			return 0, fmt.Errorf("%w: multicast \"to\" has %d user ids, at most %d", ErrInvalid, len(to), MaxMulticastTargets)
		}
		for i, u := range to {
			if !userPattern.MatchString(u) {
				return 0, fmt.Errorf("%w: multicast to[%d] is not a user id (U + 32 hex)", ErrInvalid, i)
			}
		}
	}
	return len(b.Messages), nil
}

func validateMessages(msgs []messageObject) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: body has no messages", ErrInvalid)
	}
	if len(msgs) > MaxMessages {
		return fmt.Errorf("%w: body has %d messages, at most %d", ErrInvalid, len(msgs), MaxMessages)
	}
	for i, m := range msgs {
		if m.Type == "" {
			return fmt.Errorf("%w: messages[%d] is not a message object with a type", ErrInvalid, i)
		}
		if m.Type != "text" {
			continue
		}
		if m.Text == nil || *m.Text == "" {
			return fmt.Errorf("%w: messages[%d].text is empty", ErrInvalid, i)
		}
		if n := utf16Len(*m.Text); n > MaxTextUTF16 {
			return fmt.Errorf("%w: messages[%d].text is %d UTF-16 code units, at most %d", ErrInvalid, i, n, MaxTextUTF16)
		}
	}
	return nil
}

// validateRawMessages is validateMessages for messages that did not
// decode together: it finds the first that is not a message object.
func validateRawMessages(msgs []json.RawMessage) error {
	typed := make([]messageObject, len(msgs))
	for i, raw := range msgs {
		if err := json.Unmarshal(raw, &typed[i]); err != nil {
			return fmt.Errorf("%w: messages[%d] is not a message object with a type", ErrInvalid, i)
		}
	}
	return validateMessages(typed)
}

// utf16Len is the length of s in UTF-16 code units, as LINE counts a
// text's characters: two for a rune outside the Basic Multilingual
// Plane, one for any other (an invalid byte is one U+FFFD).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// messageCount is the number of message objects in body (for the
// per-recipient cap); 1 when it cannot be read.
func messageCount(body []byte) int {
	var b requestBody
	if json.Unmarshal(body, &b) != nil || len(b.Messages) == 0 {
		return 1
	}
	return len(b.Messages)
}
