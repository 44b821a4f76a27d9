package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "bad gateway", 2048, "bad gateway"},
		{"NUL removed", "a\x00b\x00", 2048, "ab"},
		{"invalid UTF-8 replaced", "a\xffb\xc3", 2048, "a\uFFFDb\uFFFD"},
		{"cut with mark", "abcdefghij", 8, "abcde…"},
		{"cut never splits a character", "ああああ", 8, "あ…"},
		{"no cap", strings.Repeat("x", 5000), 0, strings.Repeat("x", 5000)},
		{"tiny cap", "abcdef", 2, "ab"},
		{"exact fit", "abcd", 4, "abcd"},
	}
	for _, c := range cases {
		got := SanitizeText(c.in, c.max)
		if got != c.want {
			t.Errorf("%s: SanitizeText(%q, %d) = %q, want %q", c.name, c.in, c.max, got, c.want)
		}
	}
}

// Whatever goes in, what comes out is valid UTF-8, free of NUL and within
// the cap.
func FuzzSanitizeText(f *testing.F) {
	for _, s := range []string{"", "\x00", "\xed\xa0\x80", "😀😀😀", strings.Repeat("é", 3000)} {
		f.Add(s, 7)
		f.Add(s, MaxErrorText)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		got := SanitizeText(s, max)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("SanitizeText(%q, %d) = %q: not storable", s, max, got)
		}
		if max > 0 && len(got) > max {
			t.Fatalf("SanitizeText(%q, %d) is %d bytes", s, max, len(got))
		}
	})
}
