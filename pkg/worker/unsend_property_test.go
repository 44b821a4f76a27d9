package worker

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// The property: every message event that is stored, however odd, is
// unreadable once its unsend was processed — in every table (a pg_dump of
// the schema, bytea and json columns included), in the stream, and in the
// worker's logs — whatever the order of message, edit and unsend, and
// whether the message was stored or dead-lettered.

// unsendCase is one generated message with its edit and unsend.
type unsendCase struct {
	extra    string // fuzzed text around the secret
	idKind   uint8  // how the message id is written
	tsKind   uint8  // how the timestamps are written
	msgKind  uint8  // which message type carries the secret
	textKind uint8  // how the secret text is written
	order    uint8  // the order of message, edit and unsend
	dead     bool   // bot logic fails on the message: it is dead-lettered
	secret   string // in the message
	edited   string // in its edit
}

// Message types of LINE's webhook schema (MessageContent's discriminator).
var messageKinds = []string{"text", "image", "video", "audio", "file", "location", "sticker", "text (keys in other case)",
	"text (key folded: meſſage)", "text (message key repeated, the last without text)",
	"text (its unsend carries the message too)", "text (its unsend is the message object alone)"}

// carriedByUnsend and carriedAlone are the message kinds whose unsend
// event holds a copy of the message object, which LINE's unsend never
// does: beside its unsend object, or instead of it (the worker then
// takes the message's id as the one unsent).
const (
	carriedByUnsend = 10
	carriedAlone    = 11
)

func (c *unsendCase) String() string {
	return fmt.Sprintf("id=%d ts=%d type=%s text=%d order=%d dead=%v extra=%q", c.idKind%6, c.tsKind%6,
		messageKinds[int(c.msgKind)%len(messageKinds)], c.textKind%7, c.order%6, c.dead, truncateUTF16(c.extra, 40))
}

// jsonText is s as a JSON value written the way textKind says: plain,
// with NUL escapes, emoji, lone surrogate escapes, huge, as an object
// where a string belongs, or with a byte that is not UTF-8.
func jsonText(s string, kind uint8) string {
	enc := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	inner := func(v string) string { e := enc(v); return e[1 : len(e)-1] }
	switch kind % 7 {
	case 1:
		return enc("\x00" + s + "\x00 nul")
	case 2:
		return enc("😀 " + s + " 👍🏽 ✓ ไทย 日本")
	case 3:
		return `"\ud800 ` + inner(s) + ` \udc00 \uDBFF"`
	case 4:
		return enc(strings.Repeat("ab ", 40000) + s + strings.Repeat(" yz", 40000))
	case 5:
		return `{"t":` + enc(s) + `,"n":[1,2.5,null]}`
	case 6:
		return "\"\xff\xfe " + inner(s) + " \xc3\""
	}
	return enc(s)
}

// ids is the message id as the message writes it and as its unsend does.
func (c *unsendCase) ids(n int) (msg, unsend string) {
	switch c.idKind % 6 {
	case 1:
		id := strconv.Itoa(900000000 + n)
		return id, `"` + id + `"` // a number, named by its text
	case 2:
		return fmt.Sprintf(`"m\u0000%d"`, n), fmt.Sprintf(`"m\u0000%d"`, n)
	case 3:
		return fmt.Sprintf(`{"v":%d, "w":"x"}`, n), fmt.Sprintf(`{"v":%d,"w":"x"}`, n)
	case 4:
		return fmt.Sprintf(`"😀%d"`, n), fmt.Sprintf(`"😀%d"`, n)
	case 5:
		return fmt.Sprintf(`"\ud800%d"`, n), fmt.Sprintf(`"\ud800%d"`, n)
	}
	return fmt.Sprintf(`"%d"`, 700000000+n), fmt.Sprintf(`"%d"`, 700000000+n)
}

// ts is a timestamp field (with its comma) written the way tsKind says.
func (c *unsendCase) ts(at time.Time) string {
	ms := at.UnixMilli()
	switch c.tsKind % 6 {
	case 1:
		return fmt.Sprintf(`"timestamp":%d.75,`, ms)
	case 2:
		return fmt.Sprintf(`"timestamp":"%d",`, ms)
	case 3:
		return ""
	case 4:
		return `"timestamp":1e30,`
	case 5:
		return `"timestamp":-5,`
	}
	return fmt.Sprintf(`"timestamp":%d,`, ms)
}

// content is the message object carrying text.
func (c *unsendCase) content(id, text string) (key, obj string) {
	switch c.msgKind % uint8(len(messageKinds)) {
	case 1, 2, 3:
		typ := messageKinds[c.msgKind%uint8(len(messageKinds))]
		return "message", `{"id":` + id + `,"type":"` + typ + `","duration":1000,"contentProvider":{"type":"external","originalContentUrl":` +
			text + `,"previewImageUrl":` + text + `}}`
	case 4:
		return "message", `{"id":` + id + `,"type":"file","fileName":` + text + `,"fileSize":10}`
	case 5:
		return "message", `{"id":` + id + `,"type":"location","title":` + text + `,"address":` + text + `,"latitude":35.6,"longitude":139.7}`
	case 6:
		return "message", `{"id":` + id + `,"type":"sticker","packageId":"1","stickerId":"2","stickerResourceType":"STATIC","keywords":[` +
			text + `],"text":` + text + `}`
	case 7:
		return "Message", `{"ID":` + id + `,"TYPE":"text","Text":` + text + `,"quoteToken":"q"}`
	case 8:
		// Go's decoder folds keys as Unicode does: ſ (U+017F) is an s,
		// so the worker reads "meſſage" as the message.
		return "meſſage", `{"id":` + id + `,"type":"text","text":` + text + `}`
	case 9:
		// The json column keeps both copies; jsonb, and the worker,
		// only the last, which holds nothing to scrub.
		return "message", `{"id":` + id + `,"type":"text","text":` + text + `},"message":{"id":` + id + `,"type":"text"}`
	}
	return "message", `{"id":` + id + `,"type":"text","text":` + text + `,"quoteToken":"q","markAsReadToken":"r"}`
}

// events is the case's stream messages in the order it asks for.
func (c *unsendCase) events(n int, user string) [][]byte {
	now := time.Now()
	msgID, unsendID := c.ids(n)
	env := func(typ string, at time.Time) string {
		return `{"type":"` + typ + `","mode":"active",` + c.ts(at) + `"source":{"type":"user","userId":"` + user +
			`"},"webhookEventId":"` + fixture.EventID() + `","deliveryContext":{"isRedelivery":false},"replyToken":"` +
			fixture.Token("rt") + `",`
	}
	secret := c.secret + " " + c.extra
	if c.dead {
		secret += " explode"
	}
	key, obj := c.content(msgID, jsonText(secret, c.textKind))
	msg := env("message", now.Add(-time.Minute)) + `"` + key + `":` + obj + `}`
	edit := env("messageEdited", now.Add(-30*time.Second)) + `"message":{"id":` + msgID + `,"type":"text","text":` +
		jsonText(c.edited, c.textKind) + `}}`
	unsend := env("unsend", now) + `"unsend":{"messageId":` + unsendID + `}}`
	switch int(c.msgKind) % len(messageKinds) {
	case carriedByUnsend:
		unsend = env("unsend", now) + `"unsend":{"messageId":` + unsendID + `},"` + key + `":` + obj + `}`
	case carriedAlone:
		unsend = env("unsend", now) + `"` + key + `":` + obj + `}`
	}
	var order []string
	switch c.order % 6 {
	case 1:
		order = []string{unsend, msg}
	case 2:
		order = []string{msg, edit, unsend}
	case 3:
		order = []string{unsend, edit, msg}
	case 4:
		order = []string{edit, msg, unsend}
	case 5:
		order = []string{msg, unsend, edit}
	default:
		order = []string{msg, unsend}
	}
	out := make([][]byte, len(order))
	for i, e := range order {
		out[i] = []byte(e)
	}
	return out
}

// unsendEnv is a schema, a stream and a worker (echo bot on, and bot
// logic that fails on "explode" so dead letters happen) shared by the
// cases of one test.
type unsendEnv struct {
	b       *bundle
	channel string
	logs    *observer.ObservedLogs
	seq     int
}

// exploding fails on every message event holding "explode", and on an
// unsend holding it (one that carries its message), so that unsend is
// dead-lettered with the text in its bytes.
var exploding = HandlerFunc(func(_ context.Context, _ pgx.Tx, s Stored) error {
	if (s.Event.Type == events.TypeMessage || s.Event.Type == events.TypeUnsend) && bytes.Contains(s.Raw, []byte("explode")) {
		return errors.New("bot logic failed")
	}
	return nil
})

func newUnsendEnv(t testing.TB) *unsendEnv {
	b := setup(t)
	core, logs := observer.New(zapcore.DebugLevel)
	w := New(Config{AckWait: 5 * time.Second, MaxAttempts: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.New(core), EchoBot{}, exploding)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for i := 0; i < 2; i++ {
		go func() { _ = w.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() { cancel(); <-done; <-done })
	return &unsendEnv{b: b, channel: "1650000010", logs: logs}
}

// publish puts raw events on the stream as ingest would.
func (e *unsendEnv) publish(t testing.TB, raws ...[]byte) {
	t.Helper()
	for _, raw := range raws {
		e.seq++
		m := nats.NewMsg(e.b.sc.EventSubject(e.channel))
		m.Data = raw
		events.Meta{ChannelID: e.channel, ReceivedAt: time.Now()}.SetHeaders(m.Header)
		m.Header[events.HeaderKind] = []string{events.KindEvent}
		if _, err := e.b.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(fmt.Sprintf("p-%d-%s", e.seq, fixture.EventID()))); err != nil {
			t.Fatal(err)
		}
	}
}

// settle waits until every published message was stored, dead-lettered
// or otherwise taken off the stream.
func (e *unsendEnv) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := e.b.stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still on the stream after 60s", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dump is a pg_dump of the test schema: every table's rows and every
// function, as an operator's backup would hold them.
func (e *unsendEnv) dump(t testing.TB) []byte {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		if len(matches) == 0 {
			t.Fatal("pg_dump not found in PATH or /usr/lib/postgresql/*/bin: the unsend property needs it")
		}
		bin = matches[len(matches)-1]
	}
	cmd := exec.Command(bin, "--schema="+e.b.db.Schema, "--no-owner", testenv.PostgresURL(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.String())
	}
	if !bytes.Contains(out, []byte("COPY "+e.b.db.Schema+".events")) {
		t.Fatalf("the dump holds no events table: %.200s", out)
	}
	return out
}

// holds reports where secret is readable: the dump (as text, or as the
// hex of a bytea), the stream, or the logs.
func (e *unsendEnv) holds(t testing.TB, dump []byte, secret string) []string {
	t.Helper()
	var where []string
	if bytes.Contains(dump, []byte(secret)) {
		where = append(where, "pg_dump text")
	}
	if bytes.Contains(dump, []byte(hex.EncodeToString([]byte(secret)))) {
		where = append(where, "pg_dump bytea")
	}
	ctx := context.Background()
	info, err := e.b.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		if m, err := e.b.stream.GetMsg(ctx, seq); err == nil && bytes.Contains(m.Data, []byte(secret)) {
			where = append(where, fmt.Sprintf("stream message %d", seq))
		}
	}
	for _, l := range e.logs.All() {
		if strings.Contains(l.Message+fmt.Sprint(l.ContextMap()), secret) {
			where = append(where, "log: "+l.Message)
		}
	}
	return where
}

// newCase fills in a case's secrets.
func newCase(c unsendCase) *unsendCase {
	c.secret = "psecret" + strings.ReplaceAll(fixture.EventID(), "-", "")
	c.edited = "pedited" + strings.ReplaceAll(fixture.EventID(), "-", "")
	return &c
}

// controls publishes a message that is never unsent, stored and
// dead-lettered, and returns their secrets: the check must find them, or
// it could not fail.
func (e *unsendEnv) controls(t testing.TB, n int) []string {
	t.Helper()
	kept, dead := newCase(unsendCase{}), newCase(unsendCase{dead: true, textKind: 1})
	for i, c := range []*unsendCase{kept, dead} {
		e.publish(t, c.events(n+i, fixture.UserID(n+i))[0])
	}
	return []string{kept.secret, dead.secret}
}

// Seeds cover each odd shape once; `go test -fuzz FuzzUnsendLeavesNoText`
// explores further.
func FuzzUnsendLeavesNoText(f *testing.F) {
	seeds := []unsendCase{
		{extra: "plain"},
		{extra: "nul", textKind: 1, idKind: 2},
		{extra: "emoji 🙂", textKind: 2, idKind: 4, order: 1},
		{extra: "lone surrogates", textKind: 3, idKind: 5, order: 2},
		{extra: "huge", textKind: 4, order: 3},
		{extra: "object text", textKind: 5, idKind: 3, order: 4},
		{extra: "not utf-8", textKind: 6, order: 5},
		{extra: "fractional ts", tsKind: 1, idKind: 1},
		{extra: "string ts", tsKind: 2, msgKind: 1},
		{extra: "no ts", tsKind: 3, msgKind: 2, order: 1},
		{extra: "huge ts", tsKind: 4, msgKind: 3, order: 2},
		{extra: "negative ts", tsKind: 5, msgKind: 4},
		{extra: "location", msgKind: 5, textKind: 1, order: 3},
		{extra: "sticker", msgKind: 6, textKind: 3},
		{extra: "other case keys", msgKind: 7, order: 4},
		{extra: "folded key", msgKind: 8, order: 4},
		{extra: "folded key, escaped", msgKind: 8, textKind: 3, order: 2},
		{extra: "repeated message key", msgKind: 9, order: 4},
		{extra: "repeated message key, unsend first", msgKind: 9, order: 1, textKind: 2},
		{extra: "carried by its unsend", msgKind: carriedByUnsend},
		{extra: "carried by its unsend, escaped, unsend first", msgKind: carriedByUnsend, textKind: 3, order: 1},
		{extra: "carried by its unsend, dead letter", msgKind: carriedByUnsend, dead: true, order: 2},
		{extra: "its unsend is the message alone", msgKind: carriedAlone, order: 4},
		{extra: "dead letter", dead: true},
		{extra: "dead letter, unsend first", dead: true, order: 1, textKind: 1},
		{extra: "dead letter, odd", dead: true, order: 2, tsKind: 1, idKind: 1, textKind: 3},
	}
	for _, s := range seeds {
		f.Add(s.extra, s.idKind, s.tsKind, s.msgKind, s.textKind, s.order, s.dead)
	}
	env := newUnsendEnv(f)
	controls := env.controls(f, 0)
	env.settle(f)
	dump := env.dump(f)
	for _, s := range controls {
		if len(env.holds(f, dump, s)) == 0 {
			f.Fatalf("a message never unsent is not found in the dump: the check is blind")
		}
	}
	n := 10
	f.Fuzz(func(t *testing.T, extra string, idKind, tsKind, msgKind, textKind, order uint8, dead bool) {
		c := newCase(unsendCase{extra: extra, idKind: idKind, tsKind: tsKind, msgKind: msgKind, textKind: textKind,
			order: order, dead: dead})
		n++
		env.publish(t, c.events(n, fixture.UserID(n))...)
		env.settle(t)
		dump := env.dump(t)
		for _, s := range []string{c.secret, c.edited} {
			if where := env.holds(t, dump, s); len(where) > 0 {
				t.Errorf("%s: unsent text readable in %v", c, where)
			}
		}
	})
}

// Random cases, interleaved on the stream so that messages, edits and
// unsends of different cases share batches and race across two loops.
// LINEPIPE_PROPERTY_SEED replays a run.
func TestUnsendPropertyRandomized(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LINEPIPE_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (LINEPIPE_PROPERTY_SEED replays it)", seed)
	rnd := rand.New(rand.NewPCG(seed, seed))
	env := newUnsendEnv(t)
	const cases = 40
	var all []*unsendCase
	var queues [][][]byte
	for i := 0; i < cases; i++ {
		extra := make([]rune, rnd.IntN(20))
		for j := range extra {
			extra[j] = rune(rnd.IntN(0x1F700))
		}
		c := newCase(unsendCase{extra: string(extra), idKind: uint8(rnd.IntN(6)), tsKind: uint8(rnd.IntN(6)),
			msgKind: uint8(rnd.IntN(len(messageKinds))), textKind: uint8(rnd.IntN(7)), order: uint8(rnd.IntN(6)),
			dead: rnd.IntN(5) == 0})
		all = append(all, c)
		queues = append(queues, c.events(1000+i, fixture.UserID(1000+i)))
	}
	controls := env.controls(t, 2000)
	// Interleave: take the next event of a random case until all are out.
	for left := len(queues); left > 0; {
		i := rnd.IntN(len(queues))
		if len(queues[i]) == 0 {
			continue
		}
		env.publish(t, queues[i][0])
		if queues[i] = queues[i][1:]; len(queues[i]) == 0 {
			left--
		}
	}
	env.settle(t)
	dump := env.dump(t)
	for _, s := range controls {
		if len(env.holds(t, dump, s)) == 0 {
			t.Fatalf("a message never unsent is not found in the dump: the check is blind")
		}
	}
	for _, c := range all {
		for _, s := range []string{c.secret, c.edited} {
			if where := env.holds(t, dump, s); len(where) > 0 {
				t.Errorf("%s: unsent text readable in %v", c, where)
			}
		}
	}
}
