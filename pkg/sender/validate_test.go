package sender

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestValidateRow(t *testing.T) {
	user := "U" + strings.Repeat("a", 32)
	msg := func(text string) string { return fmt.Sprintf(`{"type":"text","text":%q}`, text) }
	msgs := func(n int) string { return strings.TrimSuffix(strings.Repeat(msg("x")+",", n), ",") }
	users := func(n int) string { return strings.TrimSuffix(strings.Repeat(`"`+user+`",`, n), ",") }
	cases := []struct {
		name, endpoint, body string
		wantErr              string // "" = valid
	}{
		{"push ok", "push", `{"to":"` + user + `","messages":[` + msgs(5) + `]}`, ""},
		{"push to group", "push", `{"to":"C` + strings.Repeat("0", 32) + `","messages":[` + msgs(1) + `]}`, ""},
		{"six messages", "push", `{"to":"` + user + `","messages":[` + msgs(6) + `]}`, "6 messages"},
		{"text at limit", "push", `{"to":"` + user + `","messages":[` + msg(strings.Repeat("😀", 2500)) + `]}`, ""},
		{"text over limit", "push", `{"to":"` + user + `","messages":[` + msg(strings.Repeat("😀", 2500)+"a") + `]}`, "5001 UTF-16"},
		{"empty text", "push", `{"to":"` + user + `","messages":[` + msg("") + `]}`, "empty"},
		{"upper hex id", "push", `{"to":"U` + strings.Repeat("A", 32) + `","messages":[` + msgs(1) + `]}`, "32 hex"},
		{"multicast 500", "multicast", `{"to":[` + users(500) + `],"messages":[` + msgs(1) + `]}`, ""},
		{"multicast 501", "multicast", `{"to":[` + users(501) + `],"messages":[` + msgs(1) + `]}`, "501 user ids"},
		{"multicast empty", "multicast", `{"to":[],"messages":[` + msgs(1) + `]}`, "non-empty"},
		{"reply ok", "reply", `{"replyToken":"abc","messages":[` + msgs(1) + `]}`, ""},
		{"reply no token", "reply", `{"messages":[` + msgs(1) + `]}`, "replyToken"},
		{"broadcast ok", "broadcast", `{"messages":[{"type":"sticker","packageId":"1","stickerId":"1"}]}`, ""},
		{"narrowcast ok", "narrowcast", `{"messages":[` + msgs(1) + `],"recipient":{"type":"audience","audienceGroupId":1}}`, ""},
		{"message without type", "broadcast", `{"messages":[{}]}`, "with a type"},
		{"second message not an object", "broadcast", `{"messages":[` + msg("x") + `,7]}`, "messages[1] is not a message object"},
		{"type not a string", "broadcast", `{"messages":[{"type":1}]}`, "messages[0] is not a message object"},
		{"unknown endpoint", "bulk", `{"messages":[` + msgs(1) + `]}`, "unknown endpoint"},
		{"not an object", "push", `"hi"`, "JSON object"},
		{"too big", "broadcast", `{"messages":[` + msg(strings.Repeat("a", MaxBodyBytes)) + `]}`, "2MB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := validateRow(c.endpoint, []byte(c.body))
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

// LINE counts a text's length in UTF-16 code units; utf16Len must agree
// with encoding the text, invalid bytes and all.
func TestUTF16LenAgreesWithEncode(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a", "ありがとう", "😀", "a😀b", "\xff\xfe", "\xed\xa0\x80", "\xf4\x90\x80\x80", strings.Repeat("😀", 2501)} {
		if got, want := utf16Len(s), len(utf16.Encode([]rune(s))); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}

// Every claim validates each row it reads: go test -bench ValidateRow.
func BenchmarkValidateRowPush(b *testing.B) {
	body := []byte(`{"to":"U0123456789abcdef0123456789abcdef","messages":[{"type":"text","text":"hello there, this is a push message number 12345"}]}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := validateRow("push", body); err != nil {
			b.Fatal(err)
		}
	}
}
