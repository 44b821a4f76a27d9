// Command loadgen plays LINE's side of webhooks against linepipe's ingest
// (or, with -noop-server, runs the no-op reference server it is compared
// with). It stops at -duration or -requests, or on SIGINT/SIGTERM, and
// prints what it achieved.
//
// Channel secrets may be given in LOADGEN_CHANNELS rather than on the
// command line, where other users of the machine could read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/linepipe/linepipe/pkg/buildinfo"
	"github.com/linepipe/linepipe/pkg/loadgen"
	"github.com/linepipe/linepipe/pkg/ops"
)

type options struct {
	cfg        loadgen.Config
	channels   string
	mix        string
	jsonOut    bool
	recordFile string
	noop       bool
	addr       string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errVersion) {
			fmt.Fprintln(stdout, buildinfo.Get().String("loadgen"))
			return 0
		}
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	ctx, stop := ops.SignalContext()
	defer stop()
	if o.noop {
		err = serveNoop(ctx, o, stderr)
	} else {
		err = generate(ctx, o, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		if errors.Is(err, loadgen.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	return 0
}

// errVersion asks run to print the version and exit 0.
var errVersion = errors.New("version requested")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.BaseURL, "url", envOr("LOADGEN_URL", "http://127.0.0.1:8080"), "ingest base URL; requests go to {url}/webhook/{channelID} (env LOADGEN_URL)")
	fs.StringVar(&o.channels, "channels", os.Getenv("LOADGEN_CHANNELS"), "channels as id:secret,id:secret, used round-robin (env LOADGEN_CHANNELS)")
	fs.Float64Var(&c.Rate, "rate", 0, "open-loop target in requests/s (exclusive with -concurrency)")
	fs.IntVar(&c.Concurrency, "concurrency", 0, fmt.Sprintf("closed-loop senders (default %d when -rate is not set)", loadgen.DefaultConcurrency))
	fs.DurationVar(&c.Duration, "duration", 0, fmt.Sprintf("how long to start requests (default %s unless -requests is set)", loadgen.DefaultDuration))
	fs.IntVar(&c.Requests, "requests", 0, "total webhook requests, not counting redeliveries (0: no limit)")
	fs.IntVar(&c.EventsPerRequest, "events-per-request", loadgen.DefaultEventsPerRequest, "events in each webhook")
	fs.StringVar(&o.mix, "mix", loadgen.DefaultMix().String(), "event kinds by weight")
	fs.IntVar(&c.Users, "users", loadgen.DefaultUsers, "distinct user IDs")
	groupShare := fs.Float64("group-share", loadgen.DefaultGroupShare, "fraction of message and postback events from group chats")
	retries := fs.Int("retries", loadgen.DefaultRetries, "redeliveries after a failed attempt (0: none)")
	fs.DurationVar(&c.Backoff, "backoff", loadgen.DefaultBackoff, "delay before the first redelivery, doubled for each later one")
	fs.DurationVar(&c.MaxBackoff, "max-backoff", loadgen.DefaultMaxBackoff, "longest delay between redeliveries")
	fs.DurationVar(&c.Timeout, "timeout", loadgen.DefaultTimeout, "per-attempt timeout (LINE waits 2s)")
	fs.IntVar(&c.MaxConns, "max-conns", loadgen.DefaultMaxConns, "TCP connections to the server")
	fs.IntVar(&c.MaxInFlight, "max-inflight", loadgen.DefaultMaxInFlight, "rate mode: concurrent attempts before requests are dropped")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (0: from the clock)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&o.recordFile, "record", "", "write the audit record (accepted events, unsent messages) to this JSON-lines file")
	fs.BoolVar(&o.noop, "noop-server", false, "run the no-op reference server instead of generating load")
	fs.StringVar(&o.addr, "addr", ":9999", "listen address for -noop-server")
	version := fs.Bool("version", false, "print version and commit, and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *version {
		return nil, errVersion
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %v", loadgen.ErrInvalidConfig, fs.Args())
	}
	chs, err := loadgen.ParseChannels(o.channels)
	if err != nil {
		return nil, err
	}
	c.Channels = chs
	if c.Mix, err = loadgen.ParseMix(o.mix); err != nil {
		return nil, err
	}
	// In Config zero means "default"; on the command line 0 means none.
	c.Retries, c.GroupShare = *retries, *groupShare
	if *retries == 0 {
		c.Retries = -1
	}
	if *groupShare == 0 {
		c.GroupShare = -1
	}
	return o, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func generate(ctx context.Context, o *options, stdout io.Writer) (err error) {
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	// The command reports from the file, never from memory: the record of
	// a long run can be large.
	o.cfg.DiscardRecord = true
	if o.recordFile != "" {
		f, err := os.Create(o.recordFile)
		if err != nil {
			return fmt.Errorf("creating record file: %w", err)
		}
		defer func() {
			if cerr := f.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("closing record file: %w", cerr))
			}
		}()
		o.cfg.RecordWriter = f
	}
	rep, err := loadgen.Run(ctx, o.cfg)
	if rep != nil {
		if o.jsonOut {
			err = errors.Join(err, rep.WriteJSON(stdout))
		} else {
			err = errors.Join(err, rep.WriteText(stdout))
		}
	}
	return err
}

func serveNoop(ctx context.Context, o *options, stderr io.Writer) error {
	s, err := loadgen.StartNoopServer(o.addr, o.cfg.Channels)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loadgen: no-op server on %s for %d channels\n", s.URL, len(o.cfg.Channels))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Close(sctx)
}
