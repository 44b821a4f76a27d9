package events

import (
	"encoding/json"
	"fmt"
)

// ScrubMessage returns the raw event with its message object reduced to
// {"id","type"}. It is what linepipe keeps of a message its sender
// unsent: the event stays on record (who, when, which message) but its
// content, quote token and mark-as-read token are gone. Every other field
// of the event is kept as it came.
func ScrubMessage(raw []byte) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("scrubbing event: %w", err)
	}
	m, ok := obj["message"]
	if !ok {
		return raw, nil
	}
	var keep struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	// A message object of an unexpected shape is dropped whole: the safe
	// reading when the aim is that no content survives.
	_ = json.Unmarshal(m, &keep)
	b, err := json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	obj["message"] = b
	return json.Marshal(obj)
}
