package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/linepipe/linepipe/migrations"
	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
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
		"folded message key":            `{"meſſage":{"id":"9","text":"secret"},"n":1}`,
		"folded message key, escaped":   `{"me\u017Fsage":{"id":"9","text":"secret"},"n":1}`,
		"message key twice":             `{"message":{"text":"secret"},"message":{"id":"9","text":"secret"}}`,
		"message key twice, last empty": `{"message":{"id":"9","text":"secret"},"message":{"id":"9","type":"text"}}`,
		"message id twice":              `{"message":{"id":"secret","id":"9","type":"text"}}`,
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
		err := db.Pool.QueryRow(ctx, `SELECT CASE WHEN s = j AND NOT linepipe_holds_message_key(j) THEN raw::text ELSE s::text END
			FROM (SELECT $1::json AS raw, $1::jsonb AS j, linepipe_scrub_message_jsonb($1::jsonb) AS s) x`, raw).Scan(&cast)
		if err != nil {
			continue // the cast fails: only the guarded path can scrub it, checked above
		}
		if cast != nil && scrubbed != *cast {
			t.Fatalf("%s: scrub gave %.200s, the cast's scrub %.200s", name, scrubbed, *cast)
		}
	}
}

// The scrub must find the message under every key the worker reads as
// the message: Go's decoder matches keys with Unicode simple case
// folding, so every spelling of "message" with a letter swapped for one
// of its folding partners (ſ for s, among others if Unicode adds them) is
// read as the message, and must be scrubbed, written as is or escaped.
func TestScrubMatchesKeysAsTheWorkerDoes(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ctx := context.Background()
	var keys []string
	for _, letter := range "mesag" {
		for r := unicode.SimpleFold(letter); r != letter; r = unicode.SimpleFold(r) {
			keys = append(keys, strings.ReplaceAll("message", string(letter), string(r)))
		}
	}
	if len(keys) < 6 { // each letter's upper case, and ſ
		t.Fatalf("folding partners of message's letters: %q", keys)
	}
	for _, key := range keys {
		name, _ := json.Marshal(key)
		escaped := ""
		for _, r := range key {
			escaped += fmt.Sprintf(`\u%04X`, r)
		}
		for _, k := range []string{string(name), `"` + escaped + `"`} {
			raw := `{"type":"message",` + k + `:{"id":"9","type":"text","text":"secret"},"n":1}`
			ev, err := events.Decode([]byte(raw))
			if err != nil || ev.Message == nil || ev.Message.Text != "secret" {
				t.Fatalf("%s: the worker's decoder does not read it as the message (%v): the case proves nothing", k, err)
			}
			var scrubbed string
			if err := db.Pool.QueryRow(ctx, `SELECT linepipe_scrub_event($1::json, 'message', 'ev', '9')::text`, raw).Scan(&scrubbed); err != nil {
				t.Fatalf("%s: scrub failed: %v", k, err)
			}
			if strings.Contains(scrubbed, "secret") {
				t.Errorf("%s: scrub kept the text: %s", k, scrubbed)
			}
		}
	}
}

// Rows scrubbed before migration 0011 may still hold a message under a
// folded key ("meſſage") or in an earlier copy of a repeated key: the
// migration scrubs them again, and leaves rows never scrubbed (messages
// not unsent) as they are.
func TestMigrationScrubsAgainWhatTheOldScrubKept(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	ctx := context.Background()
	before := fstest.MapFS{}
	all, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range all {
		if name < "0011" {
			data, _ := fs.ReadFile(migrations.FS, name)
			before[name] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := store.MigrateFS(ctx, db.Pool, before); err != nil {
		t.Fatal(err)
	}
	raws := map[string]string{
		"plain":    `{"type":"message","meſſage":{"id":"9","type":"text","text":"secret-%s"}}`,
		"escaped":  `{"type":"message","me\u017fsage":{"id":"9","type":"text","text":"secret-%s"}}`,
		"ESCAPED":  `{"type":"message","mes\u017Fage":{"id":"9","type":"text","text":"secret-%s"}}`,
		"repeated": `{"type":"message","message":{"id":"9","type":"text","text":"secret-%s"},"message":{"id":"9","type":"text"}}`,
	}
	for name, raw := range raws {
		for i, scrubbed := range []bool{true, false} {
			id := fmt.Sprintf("%s-%v", name, scrubbed)
			if _, err := db.Pool.Exec(ctx, `INSERT INTO events (webhook_event_id, channel_id, type, message_id, event_time,
					received_at, raw, scrubbed_at) VALUES ($1, 'C', 'message', $2, now(), now(), $3::json,
					CASE WHEN $4 THEN now() END)`, id, fmt.Sprint(i), fmt.Sprintf(raw, id), scrubbed); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, `INSERT INTO dead_letters (subject, stream_seq, deliveries, channel_id, message_id,
					data, error, scrubbed_at) VALUES ('s', 1, 1, 'C', $1, $2::bytea, 'e', CASE WHEN $3 THEN now() END)`,
				fmt.Sprint(i), []byte(fmt.Sprintf(raw, id)), scrubbed); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := store.Migrate(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	for name := range raws {
		for _, scrubbed := range []bool{true, false} {
			id := fmt.Sprintf("%s-%v", name, scrubbed)
			var inEvents, inDead int
			if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events WHERE strpos(raw::text, $1) > 0),
					(SELECT count(*) FROM dead_letters WHERE position(convert_to($1, 'UTF8') IN data) > 0)`,
				"secret-"+id).Scan(&inEvents, &inDead); err != nil {
				t.Fatal(err)
			}
			want := 0
			if !scrubbed {
				want = 1 // never unsent: its text stays
			}
			if inEvents != want || inDead != want {
				t.Errorf("%s: text in %d events rows and %d dead letters after migrating, want %d", id, inEvents, inDead, want)
			}
		}
	}
}
