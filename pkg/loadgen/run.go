package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run plays LINE's side against cfg.BaseURL until cfg.Duration or
// cfg.Requests is reached or ctx ends, then waits for outstanding
// redeliveries (cut short if ctx has ended) and returns the report. An
// error means the run could not be made or its record not written; what
// the server answered is in the report, not an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rnd := newLockedRand(cfg.Seed, 0x6c696e65)
	client := cfg.Client
	if client == nil {
		client = newClient(&cfg)
		defer client.CloseIdleConnections()
	}
	s := &sender{
		cfg:     &cfg,
		client:  client,
		rnd:     rnd,
		stats:   newCollector(),
		rec:     newRecorder(cfg.RecordWriter, !cfg.DiscardRecord),
		builder: newBuilder(&cfg, rnd),
	}

	genCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	launch := func(seq int) { s.deliver(ctx, s.builder.next(seq)) }
	start := time.Now()
	if cfg.Rate > 0 {
		openLoop(genCtx, &cfg, start, launch, s.stats.drop)
	} else {
		closedLoop(genCtx, &cfg, launch)
	}
	s.pending.Wait()
	elapsed := time.Since(start)

	rec, err := s.rec.close()
	rep := s.report(elapsed)
	rep.Record = rec
	if err != nil {
		return rep, fmt.Errorf("loadgen: %w", err)
	}
	return rep, nil
}

// newClient is an HTTP client sized for the run: enough idle connections
// to reuse every one it opens, no proxy from the environment (a load test
// must hit the server it names), and dial bounded by the attempt timeout.
func newClient(cfg *Config) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		MaxConnsPerHost:     cfg.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: tr}
}
