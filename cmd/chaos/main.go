// Command chaos runs linepipe under load while killing its processes and
// restarting NATS and Postgres, then audits for loss, duplicates and
// unsent text left behind. It exits 1 when the audit fails. See
// docs/RELIABILITY.md.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/linepipe/linepipe/pkg/buildinfo"
	"github.com/linepipe/linepipe/pkg/chaos"
	"github.com/linepipe/linepipe/pkg/ops"
)

func main() {
	var cfg chaos.Config
	var jsonPath string
	flag.BoolVar(&cfg.Short, "short", false, "CI variant: 45s of faults, whole run under 2 minutes")
	flag.BoolVar(&cfg.Cluster, "cluster", false, "three-node NATS JetStream cluster with replicas 3; kill one node mid-run")
	flag.DurationVar(&cfg.Duration, "duration", 0, "load and fault phase (default 4m, 45s with -short)")
	flag.Float64Var(&cfg.Rate, "rate", 0, "webhooks per second (default 60)")
	flag.IntVar(&cfg.EventsPerRequest, "events-per-request", 0, "events per webhook (default 2)")
	flag.Float64Var(&cfg.OutboxRate, "outbox-rate", 0, "outbox pushes inserted per second (default 40)")
	flag.DurationVar(&cfg.KillEvery, "kill-every", 0, "pause between kill -9s (default 6s, 4s with -short)")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", 0, "longest wait for the pipeline to drain (default 2m, 50s with -short)")
	flag.StringVar(&cfg.Dir, "dir", "", "work directory (default a temp dir)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (logs)")
	flag.StringVar(&cfg.NATSServer, "nats-server", os.Getenv("NATS_SERVER_BIN"), "nats-server binary (default /usr/sbin/nats-server, nats-server on PATH, else built from the nats-server module)")
	flag.StringVar(&cfg.PGBin, "pg-bin", os.Getenv("PG_BIN"), "directory with initdb and postgres (default the newest /usr/lib/postgresql/*/bin, else initdb on PATH)")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed for kills and load (0: from the clock)")
	flag.StringVar(&jsonPath, "json", "", "also write the result as JSON to this file")
	version := flag.Bool("version", false, "print version and commit, and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Get().String("chaos"))
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := ops.SignalContext()
	defer stop()
	res, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	fmt.Println()
	_ = res.WriteSummary(os.Stdout)
	if res.Dir != "" {
		fmt.Println("\nlogs:", res.Dir)
	}
	if jsonPath != "" {
		if f, ferr := os.Create(jsonPath); ferr == nil {
			_ = res.WriteJSON(f)
			_ = f.Close()
		}
	}
	if !res.OK() {
		os.Exit(1)
	}
}
