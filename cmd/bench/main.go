// Command bench measures ingest, worker and sender as real processes,
// each against a reference taken in the same run, and prints one table.
// See docs/PERFORMANCE.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/linepipe/linepipe/pkg/bench"
	"github.com/linepipe/linepipe/pkg/buildinfo"
	"github.com/linepipe/linepipe/pkg/ops"
)

func main() {
	var cfg bench.Config
	var jsonPath string
	flag.StringVar(&cfg.DatabaseURL, "database-url", envOr("BENCH_DATABASE_URL", os.Getenv("TEST_DATABASE_URL")), "base Postgres URL (a private schema is created on it); default postgres://postgres@127.0.0.1:5432/test")
	flag.BoolVar(&cfg.NATSDefaultSync, "nats-default-sync", false, "run NATS with its default sync_interval instead of \"always\" (the durability stage measures the difference)")
	flag.StringVar(&cfg.NATSServer, "nats-server", os.Getenv("NATS_SERVER_BIN"), "nats-server binary for the private JetStream nodes, 2.10 or newer (default: built from the nats-server module)")
	flag.StringVar(&cfg.Dir, "dir", "", "work directory for binaries, logs and profiles (default: a temp dir)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (logs, profiles)")
	flag.BoolVar(&cfg.Profile, "profile", false, "run services under CPU profiles (implies -keep); profiles land in the work directory")
	flag.StringVar(&jsonPath, "json", "", "also write the result as JSON to this file")
	flag.IntVar(&cfg.Concurrency, "concurrency", 0, "closed-loop webhook senders for peak runs (default 32; the ingest peak also runs at four times it)")
	flag.DurationVar(&cfg.PeakDuration, "peak", 0, "length of each closed loop's pair of peak runs, the no-op server's and ingest's (default 10s)")
	flag.DurationVar(&cfg.HalfDuration, "half", 0, "length of the half-peak latency run (default 10s)")
	flag.IntVar(&cfg.WorkerEvents, "worker-events", 0, "webhooks queued for the worker stage (default 30000)")
	flag.IntVar(&cfg.Workers, "workers", 0, "worker processes (default 1)")
	flag.IntVar(&cfg.WorkerConcurrency, "worker-concurrency", 0, "WORKER_CONCURRENCY per worker (default 2, as the worker)")
	flag.IntVar(&cfg.SenderRows, "sender-rows", 0, "outbox rows with limits lifted (default 30000)")
	flag.IntVar(&cfg.SenderLimitedRows, "sender-limited-rows", 0, "outbox rows under LINE's push limit, one and two senders (default 30000)")
	flag.Float64Var(&cfg.E2ERate, "e2e-rate", 0, "webhooks per second in the end-to-end run (default 50)")
	flag.DurationVar(&cfg.E2EDuration, "e2e", 0, "length of the end-to-end run (default 15s)")
	flag.Float64Var(&cfg.ReplyRate, "reply-rate", 0, "webhooks per second in the reply stage (default 1000)")
	flag.DurationVar(&cfg.ReplyDuration, "reply", 0, "length of the reply stage (default 10s)")
	flag.DurationVar(&cfg.Warmup, "warmup", 0, "load the e2e and reply stages run before the webhooks they time (default 1s)")
	flag.IntVar(&cfg.ReplyWorkers, "reply-workers", 0, "workers (echo bot on) in the reply stage (default 2)")
	flag.IntVar(&cfg.ReplyWorkerLoops, "reply-worker-concurrency", 0, "WORKER_CONCURRENCY of each worker in the reply stage (default 1, as docker-compose.yml)")
	flag.IntVar(&cfg.ReplySenders, "reply-senders", 0, "senders in the reply stage (default 2)")
	flag.IntVar(&cfg.FairBacklog, "fair-backlog", 0, "channel A's queued pushes in the fairness stage (default 60000)")
	flag.Float64Var(&cfg.FairRate, "fair-rate", 0, "channel B pushes and channel A replies inserted per second each, fairness stage (default 20)")
	flag.DurationVar(&cfg.FairDuration, "fair", 0, "how long the fairness stage inserts them (default 10s)")
	flag.IntVar(&cfg.ClaimSmallRows, "claim-small", 0, "queued rows of the cheap claim (default 1000)")
	flag.IntVar(&cfg.ClaimLargeRows, "claim-large", 0, "queued rows of the expensive claim (default 1000000)")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "load generator seed (0: from the clock)")
	var env, dbParams, stages string
	flag.StringVar(&stages, "stages", "", "comma-separated stages to run, of "+strings.Join(bench.StageNames, ", ")+" (default all)")
	flag.StringVar(&env, "env", "", "comma-separated KEY=value pairs added to every service's environment")
	flag.StringVar(&dbParams, "db-params", "", "comma-separated key=value pairs added to the services' DATABASE_URL")
	version := flag.Bool("version", false, "print version and commit, and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Get().String("bench"))
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	cfg.Env, cfg.DBParams, cfg.Stages = splitList(env), splitList(dbParams), splitList(stages)
	if cfg.Profile {
		cfg.Keep = true
	}

	ctx, stop := ops.SignalContext()
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		fmt.Println()
		_ = res.WriteTable(os.Stdout)
		if res.Dir != "" {
			fmt.Println("\nlogs and profiles:", res.Dir)
		}
		if jsonPath != "" {
			if f, ferr := os.Create(jsonPath); ferr == nil {
				_ = res.WriteJSON(f)
				_ = f.Close()
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
