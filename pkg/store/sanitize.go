package store

import (
	"strings"
	"unicode/utf8"
)

// SanitizeText makes text from the network safe for a text column: NUL
// (which Postgres text cannot hold, so a completion carrying one would
// fail and the row be resent once per lease) and invalid UTF-8 are
// replaced, and the result is cut to at most limit bytes on a rune
// boundary, marked with "…".
func SanitizeText(s string, limit int) string {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	}
	if limit > 0 && len(s) > limit {
		cut := limit - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:max(cut, 0)] + "…"
	}
	return s
}
