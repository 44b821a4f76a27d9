package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseWebhook checks ParseWebhook against the encoding/json
// reference (webhook_ref_test.go) on any body, and on the input as the
// single event of a webhook, so objects the fuzzer finds reach the event
// walk: same acceptance and error, same destination, same events byte
// for byte, same ids.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"destination":"U1","events":[]}`,
		typicalWebhook(1), typicalWebhook(2),
		`{"events":[{"webhookEventI\u0064":"a\"b","deliveryContext":{"isRedelivery":true},"deliveryContext":null}]}`,
		`{"Events":[{"WEBHOOKEVENTID":1,"webhookEventId":"x","deliverycontext":{"IsRedelivery":"true"}}],"deſtination":"U"}`,
		`{"events":[{"s":"}{\\\"][","n":[-1e5,true,null,{}],"webhookEventId":{"webhookEventId":"x"}}],"events":null}`,
		`{"events":[1],"destination":2}`, `{"events":[{},null]}`, `null`, `[]`, `{`, ``,
		`{"deliveryContext":{"isRedelivery":false,"isRedelivery":true},"webhookEventId":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, b := range [][]byte{body, append(append([]byte(`{"destination":"U","events":[`), body...), "]}"...)} {
			got, err := ParseWebhook(b)
			want, wantErr := parseWebhookRef(b)
			if d := sameParse(got, err, want, wantErr); d != "" {
				t.Fatalf("%q: %s", b, d)
			}
		}
	})
}

// BenchmarkParseWebhook compares the split of a text webhook with one and
// with five events: "old" is encoding/json decoding the body and then each
// event for its ids, as ingest did; "new" is ParseWebhook.
func BenchmarkParseWebhook(b *testing.B) {
	for _, n := range []int{1, 5} {
		body := []byte(typicalWebhook(n))
		b.Run(fmt.Sprintf("events=%d/old", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := parseWebhookRef(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("events=%d/new", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParseWebhook(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// typicalWebhook is a webhook of n text message events as LINE sends them.
func typicalWebhook(n int) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"type":"message","message":{"type":"text","id":"46878957789826253%d",`+
			`"quoteToken":"q3Plxr4AgKd4fFwEOo1ldtMsxBa1X0ooEaqB4qGMkTDe9SLGLbVldvNGPWvQN2fH6aT3cs6mnA1UvoeTPp0f3cQ8d5CpdfZRcDnjxqM3Ow",`+
			`"text":%s},"webhookEventId":"01H810YECXQQZ37VAXPF6H9E6%d","deliveryContext":{"isRedelivery":false},`+
			`"timestamp":1692251666727,"source":{"type":"user","userId":"U4af4980629c0c8b6c0d6f2a1b2c3d4e5"},`+
			`"replyToken":"38ef843bde154d9b91c21320ffd17a0f","mode":"active"}`, i, quote("Hello, world! お元気ですか 😀"), i)
	}
	return `{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[` + strings.Join(evs, ",") + `]}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
