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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	migrateBefore(t, db.Pool, "0011")
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

// migrateBefore applies the migrations numbered below version.
func migrateBefore(t *testing.T, db *pgxpool.Pool, version string) {
	t.Helper()
	before := fstest.MapFS{}
	all, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range all {
		if name < version {
			data, _ := fs.ReadFile(migrations.FS, name)
			before[name] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := store.MigrateFS(context.Background(), db, before); err != nil {
		t.Fatal(err)
	}
}

// unsendRaws are unsend events: without a message (as LINE sends them,
// and with escapes or a nested "message" that make the worker look), and
// carrying one under keys the worker reads as the message. %s is the
// secret.
var unsendRaws = map[string]struct {
	raw     string
	carries bool
}{
	"as LINE sends it": {`{"type":"unsend","source":{"type":"user","userId":"U%s"},"unsend":{"messageId":"9"}}`, false},
	"with an escape":   {`{"type":"unsend","source":{"type":"user","userId":"U\u0041%s"},"unsend":{"messageId":"9"}}`, false},
	"with a NUL":       {`{"type":"unsend", "source":{"type":"user","userId":"U\u0000%s"},"unsend":{"messageId":"9"}}`, false},
	"a nested message": {`{"type":"unsend","unsend":{"messageId":"9"},"x":{"message":"%s"}}`, false},
	"a message, NUL":   {`{"type":"unsend","unsend":{"messageId":"9"},"message":{"id":"9","type":"text","text":"\u0000%s"}}`, true},
	"a message":        {`{"type":"unsend","unsend":{"messageId":"9"},"message":{"id":"9","type":"text","text":"%s"}}`, true},
	"a folded key":     {`{"type":"unsend","unsend":{"messageId":"9"},"meſſage":{"id":"9","type":"text","text":"%s"}}`, true},
	"a message value":  {`{"type":"unsend","unsend":{"messageId":"9"},"Message":"%s"}`, true},
}

// insertUnsends stores unsendRaws as events rows and returns their ids
// and secrets by name.
func insertUnsends(t *testing.T, db *pgxpool.Pool) (ids map[string]int64, secrets map[string]string) {
	t.Helper()
	ids, secrets = map[string]int64{}, map[string]string{}
	for name, u := range unsendRaws {
		secret := "secret" + strings.ReplaceAll(name, " ", "-")
		var id int64
		if err := db.QueryRow(context.Background(), `INSERT INTO events (webhook_event_id, channel_id, type, message_id,
				event_time, received_at, raw) VALUES ($1, 'C', 'unsend', '9', now(), now(), $2::json) RETURNING id`,
			name, fmt.Sprintf(u.raw, secret)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[name], secrets[name] = id, secret
	}
	return ids, secrets
}

// checkUnsends asserts that an unsend carrying a message lost its text
// and is marked scrubbed, and that every other one is byte for byte as
// sent and not marked.
func checkUnsends(t *testing.T, db *pgxpool.Pool, ids map[string]int64, secrets map[string]string) {
	t.Helper()
	for name, u := range unsendRaws {
		var raw string
		var scrubbed bool
		if err := db.QueryRow(context.Background(), `SELECT raw::text, scrubbed_at IS NOT NULL FROM events WHERE id = $1`,
			ids[name]).Scan(&raw, &scrubbed); err != nil {
			t.Fatal(err)
		}
		if u.carries {
			if strings.Contains(raw, secrets[name]) || !scrubbed || !strings.Contains(raw, `"messageId"`) {
				t.Errorf("%s: after the scrub raw = %s, scrubbed %v; want the text gone, the unsend kept, the row marked", name, raw, scrubbed)
			}
		} else if want := fmt.Sprintf(u.raw, secrets[name]); raw != want || scrubbed {
			t.Errorf("%s: raw = %s, scrubbed %v; want %s as sent, not marked", name, raw, scrubbed, want)
		}
	}
}

// The worker scrubs the message an unsend carries (QueueScrubUnsendEvents)
// and leaves every other unsend as sent, even one it asked about.
func TestScrubUnsendEventsWritesOnlyWhatChanges(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	ids, secrets := insertUnsends(t, db.Pool)
	b := &pgx.Batch{}
	var all []int64
	for _, id := range ids {
		all = append(all, id)
	}
	store.QueueScrubUnsendEvents(b, all)
	if err := db.Pool.SendBatch(context.Background(), b).Close(); err != nil {
		t.Fatal(err)
	}
	checkUnsends(t, db.Pool, ids, secrets)
}

// Unsends stored before migration 0012 kept a message they carried: the
// migration scrubs them, and leaves every other unsend as sent.
func TestMigrationScrubsUnsendsThatCarriedAMessage(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	migrateBefore(t, db.Pool, "0012")
	ids, secrets := insertUnsends(t, db.Pool)
	if _, err := store.Migrate(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	checkUnsends(t, db.Pool, ids, secrets)
}
