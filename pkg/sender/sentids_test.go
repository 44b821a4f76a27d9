package sender

import (
	"encoding/json"
	"slices"
	"testing"
)

var sentIDsCases = []string{
	`{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}`,
	` { "sentMessages" : [ { "quoteToken" : "q" , "id" : "1" } , {"id":"2"} ] } `,
	`{"sentMessages":[]}`,
	`{"sentMessages":[{"id":12345}]}`,
	`{"sentMessages":[{"id":0123}]}`,
	`{"sentMessages":[{"ID":"upper"}]}`,
	`{"sentMessages":[{"id":"a","id":"b"}]}`,
	`{"sentMessages":[{"id":"esc\"aped"}]}`,
	`{"sentMessages":[{"id":"1"}]}trailing`,
	`{"sentMessages":[{"id":"1"},]}`,
	`{"sentmessages":[{"id":"1"}]}`,
	`{"sentMessages":[{"id":"1","extra":{"nested":true}}]}`,
	`{"sentMessages":[{"quoteToken":"q"}]}`,
	`{"message":"The request body has 1 error(s)"}`,
	`not json`,
	``,
}

// Whatever the plain reader accepts, it reads as the full decode does.
func TestSentIDsPlainAgreesWithFullDecode(t *testing.T) {
	t.Parallel()
	plain := 0
	for _, c := range sentIDsCases {
		if got, ok := sentIDsPlain([]byte(c)); ok {
			plain++
			if want := sentIDsDecoded([]byte(c)); !slices.Equal(got, want) {
				t.Errorf("%s: plain %q, full decode %q", c, got, want)
			}
		}
		if got, want := sentMessageIDs([]byte(c)), sentIDsDecoded([]byte(c)); !slices.Equal(got, want) {
			t.Errorf("%s: sentMessageIDs %q, full decode %q", c, got, want)
		}
	}
	if plain < 4 {
		t.Fatalf("only %d cases took the plain path", plain)
	}
}

func FuzzSentIDsPlain(f *testing.F) {
	for _, c := range sentIDsCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := sentIDsPlain(body)
		if !ok {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("plain path accepted invalid JSON %q", body)
		}
		if want := sentIDsDecoded(body); !slices.Equal(got, want) {
			t.Fatalf("%q: plain %q, full decode %q", body, got, want)
		}
	})
}

func BenchmarkSentMessageIDs(b *testing.B) {
	body := []byte(`{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7bR0lHq1VhK0ynf8nQ7RmVf1jxnHi6sX5b_cJLjW1BWxPU9KiO7x1dXjZ3xAd8FGM0dDlAgF8hgaVaoLJ9xYvZ1rWdGhPt4b5"}]}`)
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			sentMessageIDs(body)
		}
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			sentIDsDecoded(body)
		}
	})
}
