package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

const contentToken = "content-static-token"

// staticTokens hands out the channel's static token, as the sender's
// token source does for a channel with channels.access_token set.
type staticTokens struct{}

func (staticTokens) Get(context.Context, string) (string, error) { return contentToken, nil }
func (staticTokens) Invalidate(string, string)                   {}

// contentRig is the pipeline plus the emulator's data API and a bucket.
type contentRig struct {
	*pipeline
	fake   *linefake.Server
	clock  *testenv.Clock
	api    *httptest.Server
	gate   *bodyGate
	pacer  *bodyPacer
	bucket string
	objs   *content.Objects
}

// bodyGate holds the body of one message's content after its first
// bytes, so a test can act while a download is in flight.
type bodyGate struct {
	mu      sync.Mutex
	id      string
	after   int // bytes written before the hold
	started chan struct{}
	release chan struct{}
	open    func()
}

func (g *bodyGate) hold(id string) (started chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.id, g.started, g.release = id, make(chan struct{}), make(chan struct{})
	ch := g.release
	var once sync.Once
	g.open = func() { once.Do(func() { close(ch) }) }
	return g.started, g.open
}

// releaseAll lets a held body go, so the server can close even when a
// test ended early.
func (g *bodyGate) releaseAll() {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != nil {
		open()
	}
}

type gatedWriter struct {
	http.ResponseWriter
	g       *bodyGate
	written int
	held    bool
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	if !w.held && w.written > w.g.after {
		w.held = true
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		close(w.g.started)
		<-w.g.release
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += n
	return n, err
}

func (w *gatedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (g *bodyGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		id := g.id
		g.mu.Unlock()
		if id != "" && r.URL.Path == linefake.DataPrefix+"/v2/bot/message/"+id+"/content" {
			g.mu.Lock()
			g.id = "" // once
			g.mu.Unlock()
			w = &gatedWriter{ResponseWriter: w, g: g}
		}
		next.ServeHTTP(w, r)
	})
}

// bodyPacer slows the body of chosen messages' content to a steady
// trickle: piece bytes, then a pause, as a slow link delivers them.
type bodyPacer struct {
	mu    sync.Mutex
	paces map[string]pace
}

type pace struct {
	piece int
	every time.Duration
}

func (p *bodyPacer) slow(id string, piece int, every time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paces == nil {
		p.paces = map[string]pace{}
	}
	p.paces[id] = pace{piece: piece, every: every}
}

type pacedWriter struct {
	http.ResponseWriter
	pace pace
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		time.Sleep(w.pace.every) // before, so the last piece ends the body at once
		k := min(len(p), w.pace.piece)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[k:]
	}
	return n, nil
}

func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (p *bodyPacer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		var pc pace
		var ok bool
		for id, v := range p.paces {
			if r.URL.Path == linefake.DataPrefix+"/v2/bot/message/"+id+"/content" {
				pc, ok = v, true
			}
		}
		p.mu.Unlock()
		if ok {
			w = &pacedWriter{ResponseWriter: w, pace: pc}
		}
		next.ServeHTTP(w, r)
	})
}

func newContentRig(t *testing.T, preparing time.Duration) *contentRig {
	t.Helper()
	return newContentRigWith(t, preparing, nil)
}

// newContentRigWith builds the rig with mod applied to the emulator's
// configuration.
func newContentRigWith(t *testing.T, preparing time.Duration, mod func(*linefake.Config)) *contentRig {
	t.Helper()
	p := newPipeline(t, pipelineOpts{})
	ctx := context.Background()
	if err := store.UpsertChannel(ctx, p.db.Pool, store.Channel{ID: p.channel, Secret: p.secret, AccessToken: contentToken}); err != nil {
		t.Fatal(err)
	}
	clock := testenv.NewClock(time.Now())
	fcfg := linefake.Config{
		Channels:         []linefake.Channel{{ID: p.channel, Secret: p.secret, AccessTokens: []string{contentToken}}},
		Clock:            clock.Now,
		Seed:             7,
		ContentPreparing: preparing,
	}
	if mod != nil {
		mod(&fcfg)
	}
	fake := linefake.New(fcfg)
	gate, pacer := &bodyGate{}, &bodyPacer{}
	api := httptest.NewServer(gate.wrap(pacer.wrap(fake)))
	t.Cleanup(api.Close)
	t.Cleanup(gate.releaseAll) // runs first: a held body must not keep api.Close waiting
	r := &contentRig{pipeline: p, fake: fake, clock: clock, api: api, gate: gate, pacer: pacer,
		bucket: "c_" + strings.ToLower(testenv.NewNames().SubjectPrefix)}
	objs, err := content.EnsureObjects(ctx, p.js, r.bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.objs = objs
	t.Cleanup(func() { _ = p.js.DeleteObjectStore(context.Background(), r.bucket) })
	return r
}

func (r *contentRig) fetcherConfig() content.Config {
	return content.Config{BaseURL: linefake.DataURL(r.api.URL), Bucket: r.bucket, PollInterval: 50 * time.Millisecond,
		HTTPTimeout: 2 * time.Second, Lease: 12 * time.Second, BackoffBase: 100 * time.Millisecond,
		BackoffMax: time.Second, PollBase: 100 * time.Millisecond, PollMax: 200 * time.Millisecond,
		Owner: "test", Log: r.log}
}

// startFetcher runs a fetcher until the returned stop is called (or the
// test ends).
func (r *contentRig) startFetcher(cfg content.Config) (stop func()) {
	r.t.Helper()
	_, stop = r.runFetcher(cfg, r.db.Pool)
	return stop
}

// runFetcher runs a fetcher on db (a role's pool, to hold it to that
// role's grants) and returns it once its bucket is ensured.
func (r *contentRig) runFetcher(cfg content.Config, db *pgxpool.Pool) (f *content.Fetcher, stop func()) {
	r.t.Helper()
	f, err := content.New(cfg, db, r.js, staticTokens{})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	r.t.Cleanup(stop)
	for deadline := time.Now().Add(30 * time.Second); f.Objects() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("the fetcher never ensured its bucket")
		}
	}
	return f, stop
}

func (r *contentRig) webhook(evs ...linefake.WebhookEvent) {
	r.t.Helper()
	code, err := r.fake.SendWebhook(context.Background(), r.url+"/webhook/"+r.channel, r.channel, evs...)
	if err != nil || code != http.StatusOK {
		r.t.Fatalf("webhook: %d %v", code, err)
	}
}

// waitStatus waits until message id's content row has status.
func (r *contentRig) waitStatus(id, status string) {
	r.t.Helper()
	r.waitCount(1, `SELECT count(*) FROM message_content WHERE message_id = $1 AND status = $2`, id, status)
}

type contentRow struct {
	Status, Type, ContentType, SHA256, LastError, Transcoding string
	Size, Attempts                                            int64
}

func (r *contentRig) row(id string) contentRow {
	r.t.Helper()
	var c contentRow
	err := r.db.Pool.QueryRow(context.Background(), `SELECT status, message_type, coalesce(content_type, ''),
		coalesce(sha256, ''), coalesce(last_error, ''), coalesce(transcoding, ''), coalesce(size, -1), attempts
		FROM message_content WHERE message_id = $1`, id).
		Scan(&c.Status, &c.Type, &c.ContentType, &c.SHA256, &c.LastError, &c.Transcoding, &c.Size, &c.Attempts)
	if err != nil {
		r.t.Fatalf("message_content %s: %v", id, err)
	}
	return c
}

// assertStored checks the row and the object against the emulator's bytes.
func (r *contentRig) assertStored(id string, size int64) {
	r.t.Helper()
	want := linefake.ContentSHA256(id, size)
	row := r.row(id)
	if row.Status != store.ContentStored || row.SHA256 != want || row.Size != size {
		r.t.Fatalf("row %+v, want stored, %d bytes, sha256 %s", row, size, want)
	}
	var buf bytes.Buffer
	info, err := r.objs.WriteTo(context.Background(), content.ObjectName(r.channel, id), &buf)
	if err != nil {
		r.t.Fatalf("reading object: %v", err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(buf.Bytes())); got != want || info.SHA256 != want {
		r.t.Fatalf("object sha256 %s (info %s), want %s", got, info.SHA256, want)
	}
}

// chunkMsgs counts the bucket's chunk messages and chunk subjects.
func (r *contentRig) chunkStats() (msgs uint64, subjects int) {
	r.t.Helper()
	s, err := r.js.Stream(context.Background(), "OBJ_"+r.bucket)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter("$O."+r.bucket+".C.>"))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, n := range info.State.Subjects {
		msgs += n
	}
	return msgs, len(info.State.Subjects)
}

func (r *contentRig) assertGone(id string) {
	r.t.Helper()
	if _, err := r.objs.Stat(context.Background(), content.ObjectName(r.channel, id)); err != content.ErrNoObject {
		r.t.Fatalf("object of unsent message %s: %v, want ErrNoObject", id, err)
	}
	row := r.row(id)
	if row.Status != store.ContentDeleted || row.SHA256 != "" {
		r.t.Fatalf("row %+v, want deleted without a digest", row)
	}
}

// objectCount is how many live objects the bucket lists.
func (r *contentRig) objectCount() int {
	r.t.Helper()
	obs, err := r.js.ObjectStore(context.Background(), r.bucket)
	if err != nil {
		r.t.Fatal(err)
	}
	list, err := obs.List(context.Background())
	if err != nil && err != jetstream.ErrNoObjectsFound {
		r.t.Fatal(err)
	}
	return len(list)
}
