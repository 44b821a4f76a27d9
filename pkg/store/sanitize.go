package store

import (
	"strings"
	"unicode/utf8"
)

// SanitizeText makes s storable in a text column and bounded: NUL
// characters (which Postgres text cannot hold) are removed, invalid UTF-8
// (which Postgres refuses) becomes U+FFFD, and the result is cut to at
// most max bytes at a character boundary, marked with "…" when cut. Error
// bodies from the network and error messages quoting input go through it
// before they are written, so one odd byte cannot make the write itself
// fail (a completion carrying a NUL would fail, and its row be resent once
// per lease), and a huge body cannot bloat a row. max <= 0 means no cap.
func SanitizeText(s string, max int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if max <= 0 || len(s) <= max {
		return s
	}
	const mark = "…"
	if max < 2*len(mark) {
		// No room for the mark: cut plainly.
		return s[:runeStart(s, max)]
	}
	return s[:runeStart(s, max-len(mark))] + mark
}

// runeStart is the largest i <= n at which a character of s starts.
func runeStart(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// MaxErrorText is how much of an error linepipe keeps in a row (2 KiB):
// enough for any message it writes itself and the start of a remote body.
const MaxErrorText = 2048
