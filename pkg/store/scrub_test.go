package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/tests/testenv"
)

// The scrub's fast path (migrations/0009, its number guard 0010) skips
// the exception blocks only where the cast to jsonb cannot fail: on
// every input below, at and around the guard's limits, the scrub must
// neither fail nor keep the message text, and where the cast succeeds
// its result must be the one the cast gives (0004's first attempt).
func TestScrubFastPathAgreesWithTheCast(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	event := func(text, extra string) string {
		return `{"type":"message","n":` + extra + `,"message":{"id":"9","type":"text","text":"` + text + `"}}`
	}
	// pad makes a fractional number that brings the event to size bytes.
	pad := func(size int, exp string) string {
		base := len(event("secret", "0.e"+exp))
		return "0." + strings.Repeat("7", size-base) + "e" + exp
	}
	cases := map[string]string{
		"plain":                         event("secret", "1"),
		"exponent of three digits":      event("secret", "1e999"),
		"negative exponent":             event("secret", "1.5E-999"),
		"exponent of four digits":       event("secret", "1e1000"),
		"at the size limit":             event("secret", pad(15000, "-999")),
		"past the size limit":           event("secret", pad(15001, "-999")),
		"NUL escape":                    event(`sec\u0000ret`, "1"),
		"lone surrogate":                event(`sec\ud800ret`, "1"),
		"escaped backslash and u":       event(`sec\\uret`, "1"),
		"non-ASCII text":                event("秘密のsecret", "1"),
		"number numeric cannot hold":    event("secret", "1e999999"),
		"such a number in an array":     event("secret", "[1e999999]"),
		"such a number after a comma":   event("secret", "[0,-2.5E+99999]"),
		"such a number after spaces":    event("secret", "\n\t 1e999999"),
		"such a number alone":           "1e999999",
		"id that looks like a number":   event("secret", `"U3e12345"`),
		"text that looks like a number": event("secret:1e12345", "1"),
		"digits numeric cannot hold":    event("secret", pad(17000, "-999")),
		"uppercase message key":         `{"MESSAGE":{"id":"9","TEXT":"secret"},"n":1}`,
		"message key twice":             `{"message":{"text":"secret"},"message":{"id":"9","text":"secret"}}`,
		"string where message belongs":  `{"message":"secret"}`,
	}
	for name, raw := range cases {
		var scrubbed string
		if err := db.Pool.QueryRow(ctx, `SELECT linepipe_scrub_event($1::json, 'message', 'ev', '9')::text`, raw).Scan(&scrubbed); err != nil {
			t.Fatalf("%s: scrub failed: %v", name, err)
		}
		if strings.Contains(scrubbed, "secret") {
			t.Fatalf("%s: scrub kept the text: %.200s", name, scrubbed)
		}
		var cast *string
		err := db.Pool.QueryRow(ctx, `SELECT CASE WHEN s = j THEN raw::text ELSE s::text END
			FROM (SELECT $1::json AS raw, $1::jsonb AS j, linepipe_scrub_message_jsonb($1::jsonb) AS s) x`, raw).Scan(&cast)
		if err != nil {
			continue // the cast fails: only the guarded path can scrub it, checked above
		}
		if cast != nil && scrubbed != *cast {
			t.Fatalf("%s: scrub gave %.200s, the cast's scrub %.200s", name, scrubbed, *cast)
		}
	}
}
