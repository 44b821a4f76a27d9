package linefake

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestValidationLimits(t *testing.T) {
	t.Parallel()
	users := func(n int, bad map[int]string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("U%032x", i)
			if v, ok := bad[i]; ok {
				out[i] = v
			}
		}
		return out
	}
	emoji := "\U0001F600" // two UTF-16 code units
	cases := []struct {
		name     string
		path     string
		body     any
		status   int
		property string // expected details[].property on 400
	}{
		{"5 messages ok", PathPush, push(userA, texts(5)...), 200, ""},
		{"6 messages", PathPush, push(userA, texts(6)...), 400, "messages"},
		{"no messages", PathPush, map[string]any{"to": userA}, 400, "messages"},
		{"empty messages", PathPush, push(userA), 400, "messages"},
		{"text 5000 ascii ok", PathPush, push(userA, text(strings.Repeat("a", 5000))), 200, ""},
		{"text 5001 ascii", PathPush, push(userA, text(strings.Repeat("a", 5001))), 400, "messages[0].text"},
		{"text 2500 emoji = 5000 units ok", PathPush, push(userA, text(strings.Repeat(emoji, 2500))), 200, ""},
		{"text 2500 emoji + 1", PathPush, push(userA, text(strings.Repeat(emoji, 2500)+"a")), 400, "messages[0].text"},
		{"5000 BMP kana ok", PathPush, push(userA, text(strings.Repeat("あ", 5000))), 200, ""},
		{"empty text", PathPush, push(userA, text("")), 400, "messages[0].text"},
		{"unknown message type", PathPush, push(userA, map[string]any{"type": "hologram"}), 400, "messages[0].type"},
		{"second message bad", PathPush, push(userA, text("ok"), map[string]any{"type": "text"}), 400, "messages[1].text"},
		{"push to group ok", PathPush, push(groupC, text("hi")), 200, ""},
		{"push to room ok", PathPush, push(roomR, text("hi")), 200, ""},
		{"push to bad id", PathPush, push("U123", text("hi")), 400, "to"},
		{"push to uppercase hex", PathPush, push(strings.ToUpper(userA), text("hi")), 400, "to"},
		{"push without to", PathPush, map[string]any{"messages": texts(1)}, 400, "to"},
		{"multicast 500 ok", PathMulticast, map[string]any{"to": users(500, nil), "messages": texts(1)}, 200, ""},
		{"multicast 501", PathMulticast, map[string]any{"to": users(501, nil), "messages": texts(1)}, 400, "to"},
		{"multicast empty to", PathMulticast, map[string]any{"to": []string{}, "messages": texts(1)}, 400, "to"},
		{"multicast group id", PathMulticast, map[string]any{"to": users(3, map[int]string{1: groupC}), "messages": texts(1)}, 400, "to[1]"},
		{"multicast room id", PathMulticast, map[string]any{"to": users(2, map[int]string{0: roomR}), "messages": texts(1)}, 400, "to[0]"},
		{"broadcast ok", PathBroadcast, map[string]any{"messages": texts(2)}, 200, ""},
		{"broadcast 6", PathBroadcast, map[string]any{"messages": texts(6)}, 400, "messages"},
		{"narrowcast ok is 202", PathNarrowcast, map[string]any{"messages": texts(1)}, 202, ""},
		{"narrowcast 6", PathNarrowcast, map[string]any{"messages": texts(6)}, 400, "messages"},
		{"reply without token", PathReply, map[string]any{"messages": texts(1)}, 400, "replyToken"},
		// Property names match as LINE's definitions spell them.
		{"To in capitals", PathPush, map[string]any{"To": userA, "messages": texts(1)}, 400, "to"},
		{"Messages in capitals", PathPush, map[string]any{"to": userA, "Messages": texts(1)}, 400, "messages"},
		{"Type in capitals", PathPush, push(userA, map[string]any{"Type": "text", "text": "hi"}), 400, "messages[0].type"},
		{"Text in capitals", PathPush, push(userA, map[string]any{"type": "text", "Text": "hi"}), 400, "messages[0].text"},
		// Each message type's required properties, from messaging-api.yml.
		{"image ok", PathPush, push(userA, map[string]any{"type": "image", "originalContentUrl": "https://x/a.jpg", "previewImageUrl": "https://x/p.jpg"}), 200, ""},
		{"image without preview", PathPush, push(userA, map[string]any{"type": "image", "originalContentUrl": "https://x/a.jpg"}), 400, "messages[0].previewImageUrl"},
		{"sticker ok", PathPush, push(userA, map[string]any{"type": "sticker", "packageId": "446", "stickerId": "1988"}), 200, ""},
		{"sticker without id", PathPush, push(userA, map[string]any{"type": "sticker", "packageId": "446"}), 400, "messages[0].stickerId"},
		{"flex without altText", PathPush, push(userA, map[string]any{"type": "flex", "contents": map[string]any{"type": "bubble"}}), 400, "messages[0].altText"},
		{"location with null title", PathPush, push(userA, map[string]any{"type": "location", "title": nil, "address": "a", "latitude": 1, "longitude": 2}), 400, "messages[0].title"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			r := b.send(c.path, c.body, "")
			wantStatus(t, r, c.status)
			accepted := len(b.srv.Accepted())
			if c.status >= 300 {
				if accepted != 0 {
					t.Fatalf("an invalid request was accepted")
				}
				e := r.errorBody(t)
				if !strings.HasPrefix(e.Message, "The request body has ") {
					t.Fatalf("message %q, want LINE's error count message", e.Message)
				}
				found := false
				for _, d := range e.Details {
					found = found || (d.Property == c.property && d.Message != "")
				}
				if !found {
					t.Fatalf("details %+v lack property %q", e.Details, c.property)
				}
				return
			}
			if accepted != 1 {
				t.Fatalf("accepted %d, want 1", accepted)
			}
		})
	}
}

func TestSuccessBodies(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.send(PathPush, push(userA, text("a"), map[string]any{"type": "sticker", "packageId": "1", "stickerId": "1"},
		map[string]any{"type": "location", "title": "t", "address": "a", "latitude": 1, "longitude": 2}), "")
	wantStatus(t, r, 200)
	sent := r.sent(t)
	if len(sent) != 3 {
		t.Fatalf("sentMessages %+v, want one per message", sent)
	}
	ids := map[string]bool{}
	for i, m := range sent {
		if m.ID == "" || ids[m.ID] {
			t.Fatalf("message %d id %q empty or repeated", i, m.ID)
		}
		ids[m.ID] = true
	}
	// Text and sticker can be quoted; a location cannot, so LINE omits it.
	if sent[0].QuoteToken == "" || sent[1].QuoteToken == "" || sent[2].QuoteToken != "" {
		t.Fatalf("quote tokens %+v, want text and sticker only", sent)
	}
	for _, p := range []string{PathMulticast, PathBroadcast} {
		body := map[string]any{"to": []string{userA}, "messages": texts(1)}
		if p == PathBroadcast {
			delete(body, "to")
		}
		r := b.send(p, body, "")
		wantStatus(t, r, 200)
		if got := strings.TrimSpace(string(r.body)); got != "{}" {
			t.Fatalf("%s body %q, want {}", p, got)
		}
	}
	d := b.srv.Accepted()
	if len(d) != 3 || d[1].Endpoint != "multicast" || d[1].Recipients[0] != userA || d[2].Endpoint != "broadcast" {
		t.Fatalf("bookkeeping %+v", d)
	}
	if d[0].Recipients[0] != userA || len(d[0].SentMessages) != 3 || d[0].SentMessages[0] != sent[0] {
		t.Fatalf("push bookkeeping %+v does not match the response %+v", d[0], sent)
	}
}

func TestMalformedAndOversizedBodies(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	for name, body := range map[string][]byte{
		"not json":     []byte("to=U1"),
		"truncated":    []byte(`{"to":"` + userA + `","messages":[`),
		"two objects":  []byte(`{} {}`),
		"array":        []byte(`[]`),
		"empty":        nil,
		"wrong shapes": []byte(`{"to":5,"messages":"x"}`),
	} {
		r := b.must(http.MethodPost, PathPush, body, auth)
		if r.status != http.StatusBadRequest || r.errorBody(t).Message == "" {
			t.Errorf("%s: status %d body %s, want 400 with a message", name, r.status, r.body)
		}
	}
	// Just over 2 MiB of valid JSON (a long string field) is 413.
	big := append([]byte(`{"to":"`+userA+`","messages":[{"type":"text","text":"x"}],"pad":"`), bytes.Repeat([]byte("a"), DefaultMaxBodyBytes)...)
	big = append(big, `"}`...)
	r := b.must(http.MethodPost, PathPush, big, auth)
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	if len(b.srv.Accepted()) != 0 {
		t.Fatal("an invalid or oversized body was accepted")
	}
	// Just under the limit is accepted.
	ok := append([]byte(`{"to":"`+userA+`","messages":[{"type":"text","text":"x"}],"pad":"`), bytes.Repeat([]byte("a"), DefaultMaxBodyBytes-200)...)
	ok = append(ok, `"}`...)
	wantStatus(t, b.must(http.MethodPost, PathPush, ok, auth), http.StatusOK)
}
