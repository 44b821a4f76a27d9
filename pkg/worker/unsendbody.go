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
// key the worker reads as "message": any "message" (in any ASCII case)
// other than the start of the "messageId" every unsend holds. It errs
// towards yes: Postgres decides precisely (store.QueueScrubUnsendEvents)
// and writes only an unsend that holds a message key, and an unsend as
// LINE sends it, without escapes or a "message" of its own, costs
// nothing.
func mayHoldMessageKey(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 || bytes.Contains(raw, longS) {
		return true // an escaped or folded spelling of the key
	}
	const word, id = "message", `id"`
	for rest := raw; ; {
		i := indexFold(rest, word)
		if i < 0 {
			return false
		}
		if rest = rest[i+len(word):]; !hasPrefixFold(rest, id) {
			return true
		}
	}
}

// indexFold is the index of the first ASCII case-insensitive occurrence
// of word (lower case) in b, or -1.
func indexFold(b []byte, word string) int {
	for i := 0; i+len(word) <= len(b); i++ {
		if hasPrefixFold(b[i:], word) {
			return i
		}
	}
	return -1
}

// hasPrefixFold reports whether b starts with word (lower case ASCII
// letters and punctuation), ignoring the case of b's letters.
func hasPrefixFold(b []byte, word string) bool {
	if len(b) < len(word) {
		return false
	}
	for j := 0; j < len(word); j++ {
		c := b[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[j] {
			return false
		}
	}
	return true
}
