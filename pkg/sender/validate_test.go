package sender

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidateRow(t *testing.T) {
	user := "U" + strings.Repeat("a", 32)
	msg := func(text string) string { return fmt.Sprintf(`{"type":"text","text":%q}`, text) }
	msgs := func(n int) string { return strings.TrimSuffix(strings.Repeat(msg("x")+",", n), ",") }
	users := func(n int) string { return strings.TrimSuffix(strings.Repeat(`"`+user+`",`, n), ",") }
	cases := []struct {
		name, endpoint, body string
		scrubbed             bool
		wantErr              string // "" = valid
	}{
		{"push ok", "push", `{"to":"` + user + `","messages":[` + msgs(5) + `]}`, false, ""},
		{"push to group", "push", `{"to":"C` + strings.Repeat("0", 32) + `","messages":[` + msgs(1) + `]}`, false, ""},
		{"six messages", "push", `{"to":"` + user + `","messages":[` + msgs(6) + `]}`, false, "6 messages"},
		{"text at limit", "push", `{"to":"` + user + `","messages":[` + msg(strings.Repeat("😀", 2500)) + `]}`, false, ""},
		{"text over limit", "push", `{"to":"` + user + `","messages":[` + msg(strings.Repeat("😀", 2500)+"a") + `]}`, false, "5001 UTF-16"},
		{"empty text", "push", `{"to":"` + user + `","messages":[` + msg("") + `]}`, false, "empty"},
		{"upper hex id", "push", `{"to":"U` + strings.Repeat("A", 32) + `","messages":[` + msgs(1) + `]}`, false, "32 hex"},
		{"multicast 500", "multicast", `{"to":[` + users(500) + `],"messages":[` + msgs(1) + `]}`, false, ""},
		{"multicast 501", "multicast", `{"to":[` + users(501) + `],"messages":[` + msgs(1) + `]}`, false, "501 user ids"},
		{"multicast empty", "multicast", `{"to":[],"messages":[` + msgs(1) + `]}`, false, "non-empty"},
		{"reply ok", "reply", `{"replyToken":"abc","messages":[` + msgs(1) + `]}`, false, ""},
		{"reply no token", "reply", `{"messages":[` + msgs(1) + `]}`, false, "replyToken"},
		{"broadcast ok", "broadcast", `{"messages":[{"type":"sticker","packageId":"1","stickerId":"1"}]}`, false, ""},
		{"narrowcast ok", "narrowcast", `{"messages":[` + msgs(1) + `],"recipient":{"type":"audience","audienceGroupId":1}}`, false, ""},
		{"message without type", "broadcast", `{"messages":[{}]}`, false, "with a type"},
		{"unknown endpoint", "bulk", `{"messages":[` + msgs(1) + `]}`, false, "unknown endpoint"},
		{"scrubbed", "push", `{}`, true, "scrubbed"},
		{"not an object", "push", `"hi"`, false, "JSON object"},
		{"too big", "broadcast", `{"messages":[` + msg(strings.Repeat("a", MaxBodyBytes)) + `]}`, false, "2MB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := validateRow(c.endpoint, []byte(c.body), c.scrubbed)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("valid row refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want ErrInvalid mentioning %q", err, c.wantErr)
			}
		})
	}
}
