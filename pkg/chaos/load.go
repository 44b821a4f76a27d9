package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/bench"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/loadgen"
	"github.com/linepipe/linepipe/pkg/stream"
)

// load runs webhooks through the proxy and outbox inserts for
// cfg.Duration while faults are injected, then stops the faults, brings
// every process back and waits for the generator's last redeliveries.
func (r *run) load(ctx context.Context, res *Result) error {
	var backends []string
	for _, p := range r.procs {
		if p.Name == "ingest-1" || p.Name == "ingest-2" {
			backends = append(backends, p.Addr)
		}
	}
	proxy, err := StartProxy(backends)
	if err != nil {
		return err
	}
	defer proxy.Close()
	if err := r.emu.SetFaults(r.cfg.Faults); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, r.pg.URL())
	if err != nil {
		return err
	}
	defer pool.Close()

	r.start = time.Now()
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	var rep *loadgen.Report
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep, loadErr = loadgen.Run(ctx, loadgen.Config{
			BaseURL:          proxy.URL,
			Channels:         []loadgen.Channel{{ID: r.stack.ChannelID, Secret: r.stack.ChannelSecret}},
			Rate:             r.cfg.Rate,
			Duration:         r.cfg.Duration,
			EventsPerRequest: r.cfg.EventsPerRequest,
			// LINE redelivers for a long time; a dozen tries spaced up to
			// 3s ride out a NATS or ingest restart.
			Retries:    12,
			Backoff:    250 * time.Millisecond,
			MaxBackoff: 3 * time.Second,
			Seed:       r.rnd.Uint64() | 1,
			// Tokens the emulator issued, so the echo bot's replies are
			// real and audited.
			ReplyTokens: r.tokens,
		})
	}()
	inserted := make(chan int, 1)
	go func() { inserted <- r.insertPushes(lctx, pool) }()

	r.injectFaults(ctx)
	r.faultsStopped = time.Now()
	stopLoad()
	res.OutboxInserted = <-inserted
	if err := r.emu.SetFaults(linefake.Faults{}); err != nil {
		return err
	}
	r.reviveAll(ctx)
	r.logf("faults stopped; waiting for the load generator's redeliveries")
	wg.Wait()
	if loadErr != nil {
		return loadErr
	}
	res.Load, res.Faults = rep, r.faults
	r.logf("load: %d webhooks, %d accepted, %d failed; %d events accepted; %d unsends accepted; %d outbox pushes inserted",
		rep.Webhooks, rep.WebhooksAccepted, rep.WebhooksFailed, rep.EventsAccepted, rep.UnsendsAccepted, res.OutboxInserted)
	return nil
}

// insertPushes inserts pushes every 100ms until ctx ends, as an
// application writing the outbox would, and returns how many inserts
// committed. Inserts that fail (Postgres is down) are not retried.
func (r *run) insertPushes(ctx context.Context, pool *pgxpool.Pool) int {
	per := max(1, int(r.cfg.OutboxRate/10))
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	total := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return total
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		tag, err := pool.Exec(ictx, `INSERT INTO outbox (channel_id, endpoint, body)
			SELECT $1, 'push', json_build_object('to', 'U' || md5(random()::text),
				'messages', json_build_array(json_build_object('type', 'text', 'text', 'ob-' || $2 || '-' || g)))
			FROM generate_series(1, $3) AS g`, r.stack.ChannelID, fmt.Sprint(i), per)
		cancel()
		if err == nil {
			total += int(tag.RowsAffected())
		}
	}
}

// injectFaults kills a random service process every KillEvery, restarts
// NATS (or kills a cluster node) about a third of the way in and crashes
// Postgres about two thirds of the way in, until Duration has passed.
func (r *run) injectFaults(ctx context.Context) {
	natsAt := time.Duration(float64(r.cfg.Duration) * 0.35)
	pgAt := time.Duration(float64(r.cfg.Duration) * 0.65)
	natsDone, pgDone := false, false
	var bg sync.WaitGroup
	defer bg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.KillEvery):
		}
		elapsed := time.Since(r.start)
		if elapsed >= r.cfg.Duration {
			return
		}
		// A service that exited by itself (not killed here) is a finding,
		// and is brought back like a supervisor would.
		for _, p := range r.procs {
			if !p.Running() {
				r.fault("%s found down (exited by itself); restarting", p.Name)
				_ = p.Start()
			}
		}
		switch {
		case !natsDone && elapsed >= natsAt:
			natsDone = true
			if r.cfg.Cluster {
				node, role := r.streamLeader(ctx)
				r.fault("kill -9 %s (%s), back in 10s", node.Name, role)
				_ = node.Kill()
				bg.Add(1)
				go func() {
					defer bg.Done()
					time.Sleep(10 * time.Second)
					r.restartNATS(ctx, node)
				}()
			} else {
				node := r.nats[0]
				r.fault("kill -9 %s and restart", node.Name)
				_ = node.Kill()
				r.restartNATS(ctx, node)
			}
		case !pgDone && elapsed >= pgAt:
			pgDone = true
			r.fault("crash postgres (immediate shutdown) and restart")
			_ = r.pg.Crash()
			time.Sleep(500 * time.Millisecond)
			if err := r.pg.Start(); err != nil {
				r.logf("restarting postgres: %v", err)
			} else if err := r.pg.WaitReady(ctx, 60*time.Second); err != nil {
				r.logf("postgres after restart: %v", err)
			}
			r.fault("postgres back")
		default:
			p := r.procs[r.rnd.IntN(len(r.procs))]
			r.fault("kill -9 %s (pid %d) and restart", p.Name, p.Pid())
			_ = p.Kill()
			time.Sleep(300 * time.Millisecond)
			if err := p.Start(); err != nil {
				r.logf("restarting %s: %v", p.Name, err)
			}
		}
	}
}

// streamLeader is the cluster node leading the stream's replicas, the
// kill that forces an election mid-write; a random node if it cannot be
// told.
func (r *run) streamLeader(ctx context.Context) (*bench.NATSNode, string) {
	fallback := r.nats[r.rnd.IntN(len(r.nats))]
	nc, js, err := stream.Connect(stream.Config{URL: r.natsURL()}, "linepipe-chaos", zap.NewNop())
	if err != nil {
		return fallback, "random node"
	}
	defer nc.Close()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := js.Stream(sctx, r.stack.Stream)
	if err != nil {
		return fallback, "random node"
	}
	info, err := st.Info(sctx)
	if err != nil || info.Cluster == nil {
		return fallback, "random node"
	}
	for _, n := range r.nats {
		if n.Name == info.Cluster.Leader {
			return n, "stream leader"
		}
	}
	return fallback, "random node"
}

func (r *run) restartNATS(ctx context.Context, node *bench.NATSNode) {
	if err := node.Start(); err != nil {
		r.logf("restarting %s: %v", node.Name, err)
		return
	}
	if err := node.WaitReady(ctx, 60*time.Second); err != nil {
		r.logf("%s after restart: %v", node.Name, err)
	}
	r.fault("%s back", node.Name)
}

// reviveAll starts anything that is not running, so the drain has every
// replica.
func (r *run) reviveAll(ctx context.Context) {
	for _, n := range r.nats {
		if !n.Running() {
			r.restartNATS(ctx, n)
		}
	}
	if !r.pg.Running() {
		_ = r.pg.Start()
		_ = r.pg.WaitReady(ctx, 60*time.Second)
	}
	for _, p := range r.procs {
		if !p.Running() {
			r.logf("%s was down after the faults; starting it", p.Name)
			_ = p.Start()
		}
	}
}
