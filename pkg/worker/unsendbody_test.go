package worker

import "testing"

// Every spelling of a message key the worker's decoder reads must make
// an unsend a candidate for the scrub; an unsend as LINE sends it must
// not, so that it costs nothing.
func TestMayHoldMessageKey(t *testing.T) {
	t.Parallel()
	const env = `{"type":"unsend","mode":"active","timestamp":1,"source":{"type":"user","userId":"U1"},` +
		`"webhookEventId":"01H","deliveryContext":{"isRedelivery":false},"unsend":{"messageId":"325708"}`
	cases := map[string]struct {
		raw  string
		want bool
	}{
		"as LINE sends it":     {env + `}`, false},
		"an unknown field":     {env + `,"things":{"a":1}}`, false},
		"a message object":     {env + `,"message":{"id":"325708","type":"text","text":"secret"}}`, true},
		"a message in upper":   {env + `,"MESSAGE":{"TEXT":"secret"}}`, true},
		"a message as a value": {env + `,"message":"secret"}`, true},
		"a folded key":         {env + `,"meſſage":{"text":"secret"}}`, true},
		"an escaped key":       {env + `,"\u006dessage":{"text":"secret"}}`, true},
		"nested deeper":        {env + `,"x":{"message":{"text":"secret"}}}`, true},
		"no unsend object":     {`{"type":"unsend","message":{"id":"1","text":"secret"}}`, true},
		"a message before it":  {`{"type":"unsend","message":{"id":"1","text":"secret"},"unsend":{"messageId":"1"}}`, true},
		"messageId twice":      {`{"type":"unsend","unsend":{"messageId":"1","MESSAGEID":"1"}}`, false},
		"cut short":            {`{"type":"unsend","unsend":{"messageI`, true},
	}
	for name, c := range cases {
		if got := mayHoldMessageKey([]byte(c.raw)); got != c.want {
			t.Errorf("%s: mayHoldMessageKey = %v, want %v", name, got, c.want)
		}
	}
}
