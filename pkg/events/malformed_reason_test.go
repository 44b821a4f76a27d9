package events

import (
	"strings"
	"testing"
)

// TestMalformedReasonSaysWhyWithoutQuotingTheBody: a refused webhook's
// reason, given in ingest's answer and log line, says what is wrong with
// the body, never what it holds: a syntax error is given by offset, not by
// the character encoding/json quotes, which may be a user's text.
func TestMalformedReasonSaysWhyWithoutQuotingTheBody(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"events":[{"message":{"text":"secret"}}]Zsecret`: "not valid JSON at byte 42",
		`{"events":{"secret":1}}`:                          "events is a JSON object",
		`{"destination":"U1"}`:                             "no events array",
		`{"events":[{"type":"message"},"secret"]}`:         "events[1] is not an object",
		`["secret"]`: "the body is a JSON array",
	} {
		_, err := ParseWebhookLimit([]byte(body), 100)
		if err == nil {
			t.Fatalf("%s parsed", body)
		}
		got := MalformedReason(err)
		if !strings.Contains(got, want) || strings.Contains(got, "secret") || strings.Contains(got, "'Z'") {
			t.Errorf("%s: reason %q, want it to say %q and quote nothing of the body", body, got, want)
		}
	}
}
