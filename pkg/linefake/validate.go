package linefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"unicode/utf16"

	"github.com/linepipe/linepipe/pkg/linefake/openapi"
)

// LINE's request limits, read from the in-repo copy of LINE's
// messaging-api.yml (OAPI minItems/maxItems) or, where the file is silent,
// from the one place that records what LINE documents in prose.
var (
	limits = openapi.MustLoad()
	// MaxMessages is the messages array bound of a push request; every
	// send endpoint is checked against its own schema's bound.
	MaxMessages         = limits.Messages[epPush].Max
	MaxTextUTF16        = openapi.TextMaxUTF16
	MaxMulticastTargets = limits.MulticastTo.Max
)

// User ids are documented as U + 32 lowercase hex. Group and room id
// formats are UNCONFIRMED; LINE's examples start with C and R and have the
// same length, which is what the emulator requires.
var (
	userIDPattern = regexp.MustCompile(`^U[0-9a-f]{32}$`)
	chatIDPattern = regexp.MustCompile(`^[CR][0-9a-f]{32}$`)
)

// messageTypes are the send-side message object types in the OpenAPI
// definition (Message discriminator).
var messageTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range limits.MessageTypes {
		m[t] = true
	}
	return m
}()

// quotable types get a quoteToken in sentMessages: LINE includes it only
// for message objects that can be quoted (text, sticker, image, video).
var quotable = map[string]bool{"text": true, "textV2": true, "sticker": true, "image": true, "video": true}

// ErrorDetail and ErrorBody are LINE's error response (OAPI ErrorResponse).
type ErrorDetail struct {
	Message  string `json:"message,omitempty"`
	Property string `json:"property,omitempty"`
}

// ErrorBody is the JSON body of every non-2xx send response.
type ErrorBody struct {
	Message      string        `json:"message"`
	Details      []ErrorDetail `json:"details,omitempty"`
	SentMessages []SentMessage `json:"sentMessages,omitempty"`
}

// sendRequest is what the emulator needs from a valid send body.
type sendRequest struct {
	replyToken   string
	recipients   []string // push: one id; multicast: the user ids
	messageTypes []string
}

// validate checks body against LINE's rules for endpoint ep. It returns
// the error body to answer 400 with, or nil. Property names match
// exactly, as LINE's definitions name them: "To" is not "to" (Go's
// decoder would take either, and so hide a body LINE refuses).
func validate(ep string, body []byte) (*sendRequest, *ErrorBody) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || dec.More() || raw == nil {
		return nil, &ErrorBody{Message: "The request body could not be parsed as JSON"}
	}
	var req sendRequest
	var details []ErrorDetail
	add := func(prop, msg string) { details = append(details, ErrorDetail{Message: msg, Property: prop}) }

	switch ep {
	case epReply:
		if err := json.Unmarshal(raw["replyToken"], &req.replyToken); err != nil || req.replyToken == "" {
			add("replyToken", "must be specified")
		}
	case epPush:
		var to string
		if err := json.Unmarshal(raw["to"], &to); err != nil || to == "" {
			add("to", "must be specified")
		} else if !userIDPattern.MatchString(to) && !chatIDPattern.MatchString(to) {
			add("to", "The property, 'to', in the request body is invalid")
		}
		req.recipients = []string{to}
	case epMulticast:
		req.recipients, details = validateMulticastTo(raw["to"], details)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(raw["messages"], &msgs); err != nil {
		msgs = nil
	}
	req.messageTypes, details = validateMessages(limits.Messages[ep], msgs, details)
	if len(details) > 0 {
		return nil, &ErrorBody{Message: fmt.Sprintf("The request body has %d error(s)", len(details)), Details: details}
	}
	return &req, nil
}

func validateMulticastTo(raw json.RawMessage, details []ErrorDetail) ([]string, []ErrorDetail) {
	var to []string
	if err := json.Unmarshal(raw, &to); err != nil || to == nil {
		return nil, append(details, ErrorDetail{Message: "must be specified", Property: "to"})
	}
	if r := limits.MulticastTo; len(to) < r.Min || len(to) > r.Max {
		return nil, append(details, ErrorDetail{Message: fmt.Sprintf("Size must be between %d and %d", r.Min, r.Max), Property: "to"})
	}
	for i, id := range to {
		// Multicast is for users only; group and room ids are a 400.
		if !userIDPattern.MatchString(id) {
			details = append(details, ErrorDetail{Message: "Invalid user ID", Property: fmt.Sprintf("to[%d]", i)})
		}
	}
	return to, details
}

func validateMessages(size openapi.Range, msgs []json.RawMessage, details []ErrorDetail) ([]string, []ErrorDetail) {
	if len(msgs) < size.Min || len(msgs) > size.Max {
		return nil, append(details, ErrorDetail{Message: fmt.Sprintf("Size must be between %d and %d", size.Min, size.Max), Property: "messages"})
	}
	types := make([]string, len(msgs))
	for i, m := range msgs {
		prop := fmt.Sprintf("messages[%d]", i)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
			details = append(details, ErrorDetail{Message: "must be an object", Property: prop})
			continue
		}
		var typ string
		_ = json.Unmarshal(obj["type"], &typ)
		types[i] = typ
		if !messageTypes[typ] {
			details = append(details, ErrorDetail{Message: "Invalid message type", Property: prop + ".type"})
			continue
		}
		for _, name := range limits.Required[typ] {
			if !present(obj[name]) {
				details = append(details, ErrorDetail{Message: "must be specified", Property: prop + "." + name})
			}
		}
		if typ != "text" && typ != "textV2" {
			continue
		}
		var text string
		switch raw := obj["text"]; {
		case !present(raw): // reported with the required properties
		case json.Unmarshal(raw, &text) != nil || text == "":
			details = append(details, ErrorDetail{Message: "must be specified", Property: prop + ".text"})
		case utf16Len(text) > MaxTextUTF16:
			details = append(details, ErrorDetail{Message: fmt.Sprintf("Length must be between 0 and %d", MaxTextUTF16), Property: prop + ".text"})
		}
	}
	return types, details
}

// present reports a property given with a value: LINE reads null as absent.
func present(v json.RawMessage) bool { return v != nil && string(v) != "null" }

// utf16Len counts UTF-16 code units, the unit of LINE's 5,000 limit: an
// emoji outside the BMP counts twice.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if utf16.RuneLen(r) == 2 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
