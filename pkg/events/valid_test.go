package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are the edges of JSON's grammar where a hand validator can
// part from json.Valid: escapes, control bytes, number forms, literals,
// separators, trailing bytes, whitespace and nesting depth.
var validCases = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e+5`, `1E-05`, `-1.5e3`, `1.e3`, `+1`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `True`, "\t\r\n null \n", "null\v", "\u00a0null",
	`""`, `"`, `"\"`, `"\\"`, `"\/"`, `"\x"`, `"\u00e9"`, `"\u00E"`, `"\u00eg"`, `"\ud83d"`, "\"a\x1fb\"",
	"\"a\x7fb\"", "\"\xff\xfe\"", "\"\xc3\xa9\"", `"a"b`, `"abc`,
	`[]`, `[`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`, ` [ 1 , [ ] ] `, `[]]`,
	`{}`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1}`, `{"a" : [ {"b":null} ] }`,
	`{"a":1}}`, `{"a":1}{}`, `1 2`, `{"\u0061":"\n"}`, "{\"a\":\"\n\"}",
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
	strings.Repeat("[", maxDepth+1),
}

func TestValidJSONIsJSONValid(t *testing.T) {
	t.Parallel()
	for _, c := range append(validCases, typicalWebhook(1), typicalWebhook(5)) {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

// FuzzValidJSON holds validJSON to json.Valid on any bytes.
func FuzzValidJSON(f *testing.F) {
	for _, c := range validCases[:len(validCases)-5] {
		f.Add([]byte(c))
	}
	f.Add([]byte(typicalWebhook(2)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON compares validJSON with json.Valid on a text
// webhook of five events.
func BenchmarkValidJSON(b *testing.B) {
	body := []byte(typicalWebhook(5))
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{{"json.Valid", json.Valid}, {"validJSON", validJSON}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !v.valid(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
