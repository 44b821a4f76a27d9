package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/pkg/worker"
	"github.com/linepipe/linepipe/tests/testenv"
)

// pipeline is ingest and worker wired to real NATS and Postgres, in
// process: ingest behind an httptest server, workers as goroutines.
type pipeline struct {
	t       *testing.T
	db      *testenv.DB
	sc      stream.Config
	nc      *nats.Conn
	js      jetstream.JetStream
	url     string // ingest base URL
	channel string
	secret  string
	logs    *observer.ObservedLogs // everything ingest and workers logged
	log     *zap.Logger
	opts    pipelineOpts
	// workerPool connects as the worker's role; db.Pool (the schema
	// owner) is for the test's own checks.
	workerPool *pgxpool.Pool

	mu      sync.Mutex
	cancel  context.CancelFunc
	workers sync.WaitGroup
}

type pipelineOpts struct {
	natsURL     string        // default testenv.NATSURL
	workers     int           // worker loops; default 2, -1 for none
	duplicates  time.Duration // stream dedup window; default stream's
	maxAttempts int
	handlers    []worker.Handler
	pubTimeout  time.Duration
	perEvent    bool // publish one stream message per event, no bundles
}

func newPipeline(t *testing.T, o pipelineOpts) *pipeline {
	t.Helper()
	if o.natsURL == "" {
		o.natsURL = testenv.NATSURL(t)
	}
	if o.workers == 0 {
		o.workers = 2
	}
	names := testenv.NewNames()
	p := &pipeline{t: t, db: testenv.NewDB(t), channel: "1650000001", secret: "0123456789abcdef0123456789abcdef"}
	p.sc = stream.Config{URL: o.natsURL, Stream: names.Stream, SubjectPrefix: names.SubjectPrefix, Duplicates: o.duplicates}.WithDefaults()
	core, logs := observer.New(zapcore.DebugLevel)
	p.logs = logs
	log := zap.New(core)

	var err error
	p.nc, p.js, err = stream.Connect(p.sc, "test", log, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := stream.Ensure(ctx, p.js, p.sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
		p.stopWorkers()
		_ = p.js.DeleteStream(context.Background(), p.sc.Stream)
		p.nc.Close()
	})
	if err := store.UpsertChannel(ctx, p.db.Pool, store.Channel{ID: p.channel, Secret: p.secret}); err != nil {
		t.Fatal(err)
	}

	// Each service runs under its own least-privilege role, as deployed,
	// so a statement its role was not granted fails the test.
	secrets := ingest.NewSecrets(p.db.RolePool(t, store.RoleIngest), nil, log, nil)
	p.workerPool = p.db.RolePool(t, store.RoleWorker)
	if err := secrets.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	hcfg := ingest.Config{PublishTimeout: o.pubTimeout}.WithDefaults()
	// Bundling on, as deployed (INGEST_BUNDLE_MAX_EVENTS), unless a test
	// is about the one-message-per-event path.
	var pub ingest.Publisher = ingest.JetStreamPublisher{JS: p.js}
	if !o.perEvent {
		bp := ingest.NewBundlePublisher(ingest.BundlePublisher{JS: p.js, Subject: p.sc.BundleSubject(), Single: pub,
			Timeout: hcfg.PublishTimeout, Log: log})
		bctx, stopBundles := context.WithCancel(context.Background())
		t.Cleanup(stopBundles)
		go bp.Run(bctx)
		pub = bp
	}
	h := &ingest.Handler{Config: hcfg, Stream: p.sc, Secrets: secrets,
		Publisher: pub, Metrics: ingest.NewMetrics(ops.NewRegistry()), Log: log, Now: time.Now}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p.url = srv.URL

	p.log, p.opts = log, o
	if o.workers > 0 {
		p.startWorkers(o.workers)
	}
	return p
}

// startWorkers runs n worker loops until the test ends.
func (p *pipeline) startWorkers(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wctx, wcancel := context.WithCancel(context.Background())
	p.cancel = wcancel
	w := worker.New(worker.Config{AckWait: 5 * time.Second, MaxAttempts: p.opts.maxAttempts, IdleWait: time.Second},
		p.sc, p.js, p.workerPool, worker.NewMetrics(ops.NewRegistry()), p.log, p.opts.handlers...)
	for i := 0; i < n; i++ {
		p.workers.Add(1)
		go func() { defer p.workers.Done(); _ = w.Run(wctx) }()
	}
}

func (p *pipeline) stopWorkers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
		p.workers.Wait()
		p.cancel = nil
	}
}

// post signs body with the channel secret and posts it to ingest.
func (p *pipeline) post(body []byte) int {
	p.t.Helper()
	return p.send(http.MethodPost, "/webhook/"+p.channel, body, map[string]string{"x-line-signature": events.Sign(p.secret, body)})
}

// send makes a raw request; header names are sent exactly as given.
func (p *pipeline) send(method, path string, body []byte, headers map[string]string) int {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header["Content-Type"] = []string{"application/json; charset=utf-8"}
	for k, v := range headers {
		req.Header[k] = []string{v}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// mustPost posts and fails the test unless ingest answers 200.
func (p *pipeline) mustPost(body []byte) {
	p.t.Helper()
	if code := p.post(body); code != http.StatusOK {
		p.t.Fatalf("webhook answered %d, want 200", code)
	}
}

// count runs a count query.
func (p *pipeline) count(sql string, args ...any) int {
	p.t.Helper()
	var n int
	if err := p.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitCount polls until the query counts want, failing after 30 s. It
// waits on a condition, not a duration, so a slow machine only waits longer.
func (p *pipeline) waitCount(want int, sql string, args ...any) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := p.count(sql, args...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited 30s for %d from %q, have %d", want, sql, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamMsgs is how many messages the stream holds now.
func (p *pipeline) streamMsgs() uint64 { return p.streamState().Msgs }

// streamState is the stream's state now.
func (p *pipeline) streamState() jetstream.StreamState {
	p.t.Helper()
	s, err := p.js.Stream(context.Background(), p.sc.Stream)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	return info.State
}

// waitStreamEmpty waits until every message was acknowledged away.
func (p *pipeline) waitStreamEmpty() {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.streamMsgs() != 0 {
		if time.Now().After(deadline) {
			p.t.Fatalf("stream still holds %d messages after 30s", p.streamMsgs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNowhere fails if text is readable in any table linepipe keeps,
// in the stream, or in anything the services logged.
func (p *pipeline) assertNowhere(text string) {
	p.t.Helper()
	like := "%" + text + "%"
	for _, q := range []string{
		`SELECT count(*) FROM events WHERE raw::text LIKE $1`,
		`SELECT count(*) FROM messages WHERE coalesce(text, '') LIKE $1 OR content::text LIKE $1`,
		`SELECT count(*) FROM dead_letters WHERE position(convert_to(trim(both '%' from $1), 'UTF8') in data) > 0 OR headers::text LIKE $1`,
		`SELECT count(*) FROM webhook_log WHERE path LIKE $1`,
		`SELECT count(*) FROM outbox WHERE body::text LIKE $1`,
	} {
		if n := p.count(q, like); n != 0 {
			p.t.Errorf("%d rows still hold the text: %s", n, q)
		}
	}
	p.assertStreamLacks(text)
	for _, e := range p.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, text) {
			p.t.Errorf("log line holds the text: %s", line)
		}
	}
}

// assertStreamLacks reads every message still in the stream.
func (p *pipeline) assertStreamLacks(text string) {
	p.t.Helper()
	ctx := context.Background()
	s, err := p.js.Stream(ctx, p.sc.Stream)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if bytes.Contains(m.Data, []byte(text)) {
			p.t.Errorf("stream message %d still holds the text", seq)
		}
	}
}
