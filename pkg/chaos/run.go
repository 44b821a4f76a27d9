package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/linepipe/linepipe/pkg/bench"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/loadgen"
)

// Result is what a run did and what the audit found.
type Result struct {
	Cluster        bool            `json:"cluster"`
	Load           *loadgen.Report `json:"load"`
	OutboxInserted int             `json:"outboxInserted"`
	Faults         []string        `json:"faults"`
	DrainSeconds   float64         `json:"drainSeconds"`
	Drained        bool            `json:"drained"`
	Audit          Audit           `json:"audit"`
	Seconds        float64         `json:"seconds"`
	Dir            string          `json:"dir,omitempty"`
}

// OK reports a run with nothing lost, duplicated or left readable.
func (r *Result) OK() bool { return r.Drained && r.Audit.OK() }

type run struct {
	cfg     Config
	dir     string
	rnd     *rand.Rand
	stack   *bench.Stack
	pg      *Postgres
	nats    []*bench.NATSNode
	emu     *bench.Emulator
	tokens  *replyTokens  // the load generator's reply tokens, issued by emu
	procs   []*bench.Proc // linepipe services, the kill targets
	start   time.Time
	mu      sync.Mutex
	faults  []string
	natsBin string
	// faultsStopped is when the last fault was injected; the drain is
	// timed from it.
	faultsStopped time.Time
	// streamLeft holds the data of messages left on the stream, for the
	// unsent-text search.
	streamLeft []string
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "%s chaos: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// fault records and logs one injected fault.
func (r *run) fault(format string, args ...any) {
	msg := fmt.Sprintf("+%5.1fs ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.faults = append(r.faults, msg)
	r.mu.Unlock()
	r.logf("fault %s", msg)
}

// Run sets up the topology, loads it while injecting faults, drains and
// audits. The error is for a run that could not be made; what the audit
// found is in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := &run{cfg: cfg, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	res := &Result{Cluster: cfg.Cluster}
	began := time.Now()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "linepipe-chaos-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	r.dir = dir
	if cfg.Keep {
		res.Dir = dir
	} else {
		defer os.RemoveAll(dir)
	}
	defer r.stopAll()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	if err := r.load(ctx, res); err != nil {
		return nil, err
	}
	if err := r.drainAndAudit(ctx, res); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(began).Seconds()
	return res, nil
}

// setUp builds the services and starts Postgres, NATS, the emulator and
// two replicas of each service.
func (r *run) setUp(ctx context.Context) error {
	bin := filepath.Join(r.dir, "bin")
	r.logf("building services into %s", r.dir)
	if err := bench.Build(ctx, bin, "./cmd/ingest", "./cmd/worker", "./cmd/sender"); err != nil {
		return err
	}
	pgBin, err := ResolvePGBin(r.cfg.PGBin)
	if err != nil {
		return err
	}
	pg, err := NewPostgres(ctx, pgBin, r.dir)
	if err != nil {
		return err
	}
	r.pg = pg
	if err := pg.Start(); err != nil {
		return err
	}
	if err := pg.WaitReady(ctx, 30*time.Second); err != nil {
		return err
	}
	if r.natsBin, err = bench.ResolveNATSServer(ctx, r.cfg.NATSServer, bin); err != nil {
		return err
	}
	if err := r.startNATS(ctx); err != nil {
		return err
	}
	mig := exec.CommandContext(ctx, filepath.Join(bin, "worker"), "migrate")
	mig.Env = []string{"DATABASE_URL=" + pg.URL(), "PATH=" + os.Getenv("PATH")}
	if out, err := mig.CombinedOutput(); err != nil {
		return fmt.Errorf("worker migrate: %w\n%s", err, out)
	}

	channelID, secret, token := "1657000001", uuid.NewString(), "chaos-"+uuid.NewString()
	emu, err := bench.StartEmulator(linefake.Config{Seed: r.rnd.Uint64() | 1, ReplyTokenTTL: linefake.DefaultReplyTokenTTL,
		Channels: []linefake.Channel{{ID: channelID, Secret: secret, AccessTokens: []string{token}}}})
	if err != nil {
		return err
	}
	r.emu = emu
	r.tokens = newReplyTokens(emu.Server, linefake.DefaultReplyTokenTTL)
	var urls []string
	for _, n := range r.nats {
		urls = append(urls, n.URL())
	}
	replicas := 1
	if r.cfg.Cluster {
		replicas = 3
	}
	r.stack = &bench.Stack{BinDir: bin, Dir: r.dir, NATSURL: strings.Join(urls, ","), Stream: "LINEPIPE",
		SubjectPrefix: "linepipe", Replicas: replicas, DatabaseURL: pg.URL(), ChannelID: channelID,
		ChannelSecret: secret, AccessToken: token, LineAPIURL: emu.URL,
		// Shorter clocks than production so a killed replica's work is
		// picked up within the run: redelivery after 5s, leases of 10s,
		// backoff capped at 3s.
		Extra: []string{"WORKER_ACK_WAIT=5s", "SENDER_HTTP_TIMEOUT=2s", "SENDER_LEASE=10s",
			"SENDER_BACKOFF_BASE=200ms", "SENDER_BACKOFF_MAX=3s", "INGEST_PUBLISH_TIMEOUT=1500ms"}}
	if err := r.startServices(ctx); err != nil {
		return err
	}
	r.logf("topology up: 2 x ingest, worker, sender; %d NATS node(s), stream replicas %d; private Postgres :%d",
		len(r.nats), replicas, pg.Port)
	return nil
}

// startServices starts two replicas each of ingest, worker (with the
// echo bot) and sender, and waits until all are ready.
func (r *run) startServices(ctx context.Context) error {
	for i := 1; i <= 2; i++ {
		ing, err := r.stack.Ingest(fmt.Sprintf("ingest-%d", i))
		if err != nil {
			return err
		}
		wk, err := r.stack.Worker(fmt.Sprintf("worker-%d", i), "ECHO_BOT=true")
		if err != nil {
			return err
		}
		snd, err := r.stack.Sender(fmt.Sprintf("sender-%d", i))
		if err != nil {
			return err
		}
		r.procs = append(r.procs, ing, wk, snd)
	}
	for _, p := range r.procs {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range r.procs {
		if err := p.WaitReady(ctx, 45*time.Second); err != nil {
			return fmt.Errorf("%s: %w (log %s)", p.Name, err, p.LogPath)
		}
	}
	return nil
}

// startNATS starts one JetStream server, or three clustered ones.
func (r *run) startNATS(ctx context.Context) error {
	n := 1
	if r.cfg.Cluster {
		n = 3
	}
	var routes []string
	for i := 0; i < n; i++ {
		node, err := bench.NewNATSNode(r.natsBin, r.dir, fmt.Sprintf("nats-%d", i+1))
		if err != nil {
			return err
		}
		if n > 1 {
			addr, err := bench.FreeAddr()
			if err != nil {
				return err
			}
			node.ClusterAddr = addr
			routes = append(routes, "nats://"+addr)
		}
		r.nats = append(r.nats, node)
	}
	for _, node := range r.nats {
		if n > 1 {
			node.SetCluster("linepipe", node.ClusterAddr, routes)
		}
		if err := node.Start(); err != nil {
			return err
		}
	}
	for _, node := range r.nats {
		if err := node.WaitReady(ctx, 45*time.Second); err != nil {
			return fmt.Errorf("%s: %w (log %s)", node.Name, err, node.LogPath)
		}
	}
	return nil
}

func (r *run) natsURL() string { return r.stack.NATSURL }

// stopAll ends every process the run started.
func (r *run) stopAll() {
	var wg sync.WaitGroup
	for _, p := range r.procs {
		wg.Add(1)
		go func(p *bench.Proc) { defer wg.Done(); _ = p.Stop(10 * time.Second) }(p)
	}
	wg.Wait()
	for _, n := range r.nats {
		_ = n.Stop(5 * time.Second)
	}
	if r.pg != nil {
		_ = r.pg.Stop(10 * time.Second)
	}
	if r.emu != nil {
		_ = r.emu.Close()
	}
}
