// Command riverbench drains N queued LINE push jobs through River (a
// Postgres job queue on pgx) to a LINE Messaging API endpoint and prints
// one JSON line: {"jobs":N,"seconds":...,"perSec":...,"cpuSeconds":...}.
//
// It exists so linepipe's benchmark (go run ./cmd/bench -stages
// sender,river) can put linepipe's sender next to a widely used peer doing
// the same job on the same machine in the same run. It is its own module so
// that linepipe's build never depends on River.
//
// The jobs are inserted before the client starts, as linepipe's sender
// stage queues its outbox rows before the sender starts; the clock and the
// CPU count run from the client's Start to the last completion, so the
// inserts and the migration are not charged to River.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River's own benchmark settings, copied from `river bench`
// (github.com/riverqueue/river, cmd/river/riverbench/river_bench.go): its
// comments say these have "an outsized effect" on throughput and beat the
// client's defaults. Its comment speaks of about 1,000 workers; the value
// it sets, used here, is 2,000.
const (
	maxWorkers        = 2_000
	fetchCooldown     = 2 * time.Millisecond
	fetchPollInterval = 20 * time.Millisecond
	insertBatch       = 5_000 // river bench inserts in batches of this size too
)

// pushArgs is one push, as linepipe's outbox row holds it: the request
// body and the X-Line-Retry-Key chosen when it was queued, so a retried
// job cannot be delivered twice.
type pushArgs struct {
	Body     json.RawMessage `json:"body"`
	RetryKey string          `json:"retry_key"`
}

func (pushArgs) Kind() string { return "line_push" }

// pushWorker POSTs the job's body to the push endpoint.
type pushWorker struct {
	river.WorkerDefaults[pushArgs]
	client *http.Client
	url    string
	token  string
}

func (w *pushWorker) Work(ctx context.Context, job *river.Job[pushArgs]) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(job.Args.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Line-Retry-Key", job.Args.RetryKey)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	// Drained so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	// 409 means LINE already accepted this retry key: delivered.
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict {
		return nil
	}
	return fmt.Errorf("push: HTTP %d", resp.StatusCode)
}

// result is the one line printed.
type result struct {
	Jobs    int     `json:"jobs"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	// CPUSeconds is the process's user + system CPU from just before
	// Start to the last completion; TotalCPUSeconds adds the start-up,
	// the migration and the inserts.
	CPUSeconds      float64 `json:"cpuSeconds"`
	TotalCPUSeconds float64 `json:"totalCpuSeconds"`
	Completed       int     `json:"completedInDb"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "riverbench:", err)
		os.Exit(1)
	}
}

func run() error {
	dbURL := flag.String("database-url", os.Getenv("DATABASE_URL"), "Postgres URL (env DATABASE_URL); set application_name in it to find River's backends")
	schema := flag.String("schema", envOr("RIVER_SCHEMA", "river_bench"), "schema for River's tables, created if missing (env RIVER_SCHEMA)")
	base := flag.String("line-api", envOr("LINE_API_BASE_URL", "http://127.0.0.1:8080"), "LINE Messaging API base URL (env LINE_API_BASE_URL)")
	token := flag.String("token", os.Getenv("LINE_CHANNEL_ACCESS_TOKEN"), "channel access token (env LINE_CHANNEL_ACCESS_TOKEN)")
	jobs := flag.Int("jobs", envInt("RIVER_JOBS", 10000), "push jobs to queue and drain (env RIVER_JOBS)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up when the jobs are not done by then")
	out := flag.String("out", "", "also write the result line to this file")
	linger := flag.Bool("linger", false, "after the result, keep the client and its connections until SIGTERM, so a caller can read its Postgres backends' CPU")
	flag.Parse()
	if *dbURL == "" || *jobs < 1 {
		return errors.New("a database URL and at least one job are needed")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Migration and inserts go through their own pool, closed before the
	// run, so the backends left under the URL's application_name are the
	// ones that served the client alone.
	if err := prepare(ctx, *dbURL, *schema, *jobs, logger); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, *dbURL) // pool defaults, as `river bench` opens its pool
	if err != nil {
		return err
	}
	defer pool.Close()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxWorkers, maxWorkers
	workers := river.NewWorkers()
	river.AddWorker(workers, &pushWorker{client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url: *base + "/v2/bot/message/push", token: *token})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: fetchCooldown, FetchPollInterval: fetchPollInterval,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		Workers: workers, Schema: *schema, Logger: logger,
	})
	if err != nil {
		return err
	}
	// Completion events, as `river bench` counts them: a job is done once
	// the completer has recorded it, not when Work returns.
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: *jobs + 1000,
		Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()

	cpu0, start := cpuSeconds(), time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = client.Stop(context.Background()) }()
	deadline := time.After(*timeout)
	for done := 0; done < *jobs; {
		select {
		case ev := <-events:
			if ev == nil {
				return errors.New("event subscription closed")
			}
			done++
		case <-deadline:
			return fmt.Errorf("%d of %d jobs completed after %s", done, *jobs, *timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	secs, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
	res := result{Jobs: *jobs, Seconds: secs, PerSec: float64(*jobs) / secs, CPUSeconds: cpu, TotalCPUSeconds: cpuSeconds()}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+quoteIdent(*schema)+".river_job WHERE state = 'completed'").Scan(&res.Completed); err != nil {
		return err
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if *out != "" {
		if err := os.WriteFile(*out+".tmp", append(line, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*out+".tmp", *out); err != nil {
			return err
		}
	}
	if *linger {
		<-ctx.Done()
	}
	return nil
}

// prepare creates the schema, migrates River into it and queues n pushes,
// each to its own user (as linepipe's sender stage queues them) with a
// retry key fixed at insert time.
func prepare(ctx context.Context, dbURL, schema string, n int, logger *slog.Logger) error {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = cmp.Or(cfg.ConnConfig.RuntimeParams["application_name"], "riverbench") + "_setup"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schema)); err != nil {
		return err
	}
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: logger})
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating River: %w", err)
	}
	inserter, err := river.NewClient(driver, &river.Config{Schema: schema, Logger: logger})
	if err != nil {
		return err
	}
	batch := make([]river.InsertManyParams, 0, insertBatch)
	for i := 1; i <= n; i++ {
		sum := md5.Sum([]byte("river" + strconv.Itoa(i)))
		body, _ := json.Marshal(map[string]any{"to": "U" + hex.EncodeToString(sum[:]),
			"messages": []map[string]string{{"type": "text", "text": "bench river " + strconv.Itoa(i)}}})
		batch = append(batch, river.InsertManyParams{Args: pushArgs{Body: body, RetryKey: uuid.NewString()}})
		if len(batch) == insertBatch || i == n {
			if _, err := inserter.InsertMany(ctx, batch); err != nil {
				return fmt.Errorf("inserting jobs: %w", err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

// cpuSeconds is this process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}
