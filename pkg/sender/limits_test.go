package sender

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/pkg/linefake/openapi"
	"github.com/linepipe/linepipe/pkg/store"
)

// TestLimitsMatchLINEDefinition: the validator's limits are LINE's, as
// stated by the in-repo copy of LINE's messaging-api.yml (or, for what the
// file leaves out, by the one place recording LINE's prose). Typed twice
// by hand, the sender and the emulator could agree on a wrong value.
func TestLimitsMatchLINEDefinition(t *testing.T) {
	t.Parallel()
	l, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{store.EndpointReply, store.EndpointPush, store.EndpointMulticast,
		store.EndpointNarrowcast, store.EndpointBroadcast} {
		r, ok := l.Messages[ep]
		if !ok {
			t.Fatalf("messaging-api.yml has no request schema for %s", ep)
		}
		if MaxMessages != r.Max || r.Min != 1 {
			t.Errorf("%s: MaxMessages = %d, messaging-api.yml says %d..%d", ep, MaxMessages, r.Min, r.Max)
		}
	}
	if MaxMulticastTargets != l.MulticastTo.Max || l.MulticastTo.Min != 1 {
		t.Errorf("MaxMulticastTargets = %d, messaging-api.yml says %d..%d", MaxMulticastTargets, l.MulticastTo.Min, l.MulticastTo.Max)
	}
	if MaxTextUTF16 != openapi.TextMaxUTF16 {
		t.Errorf("MaxTextUTF16 = %d, LINE documents %d", MaxTextUTF16, openapi.TextMaxUTF16)
	}
	if MaxBodyBytes != openapi.MaxBodyBytes {
		t.Errorf("MaxBodyBytes = %d, LINE documents %d", MaxBodyBytes, openapi.MaxBodyBytes)
	}
}

// TestValidatorEnforcesDefinitionBounds: the validator accepts a request
// exactly at each of the definition's bounds and refuses one past it, so
// its checks, not only its constants, follow the file.
func TestValidatorEnforcesDefinitionBounds(t *testing.T) {
	t.Parallel()
	l := openapi.MustLoad()
	text := func(s string) string {
		b, _ := json.Marshal(map[string]string{"type": "text", "text": s})
		return string(b)
	}
	msgs := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat(text("x")+",", n), ",") + "]" }
	users := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%q", fmt.Sprintf("U%032x", i+1))
		}
		return "[" + strings.Join(ids, ",") + "]"
	}
	push := func(m string) string { return `{"to":"U` + strings.Repeat("a", 32) + `","messages":` + m + `}` }
	maxM := l.Messages[store.EndpointPush].Max
	cases := []struct {
		name, endpoint, body string
		ok                   bool
	}{
		{"messages at max", "push", push(msgs(maxM)), true},
		{"messages past max", "push", push(msgs(maxM + 1)), false},
		{"text at max", "push", push("[" + text(strings.Repeat("a", openapi.TextMaxUTF16)) + "]"), true},
		{"text past max", "push", push("[" + text(strings.Repeat("a", openapi.TextMaxUTF16+1)) + "]"), false},
		{"multicast at max", "multicast", `{"to":` + users(l.MulticastTo.Max) + `,"messages":` + msgs(1) + `}`, true},
		{"multicast past max", "multicast", `{"to":` + users(l.MulticastTo.Max+1) + `,"messages":` + msgs(1) + `}`, false},
	}
	for _, c := range cases {
		err := validateRow(c.endpoint, []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: validateRow = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
