package worker

import "bytes"

// An unsend event names the message it takes back (unsend.messageId)
// and, as LINE sends it, carries nothing of that message. An event of
// type unsend that also holds a message object (or anything under a key
// the worker reads as "message") would keep that text in its own
// events row, which the scrub of the message's events leaves alone
// (they are found by message id and type). Such an unsend is scrubbed
// like the message's events, in the same transaction.

// longS is "ſ" (U+017F) in UTF-8: Go's decoder folds it to "s", so
// "meſſage" is a message key.
var longS = []byte("\u017f")

// mayHoldMessageKey reports whether an unsend event's bytes could hold a
// key the worker reads as "message" besides the "messageId" every
// unsend holds. It errs towards yes: the scrub itself (in Postgres)
// decides precisely and writes only what changes, and an unsend as LINE
// sends it, without escapes or a second "message", costs nothing.
func mayHoldMessageKey(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 || bytes.Contains(raw, longS) {
		return true // an escaped or folded spelling of the key
	}
	return countFold(raw, "message") > 1
}

// countFold counts the ASCII case-insensitive occurrences of word (lower
// case ASCII) in b.
func countFold(b []byte, word string) int {
	n := 0
	for i := 0; i+len(word) <= len(b); i++ {
		j := 0
		for j < len(word) && b[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			n++
			i += len(word) - 1
		}
	}
	return n
}
