// Package bench measures linepipe's services as real processes, each line
// against a reference taken in the same run on the same machine (the no-op
// HTTP server for ingest, a raw COPY of the same rows for the worker,
// LINE's own rate limit for the sender), so the ratios hold on a noisy
// shared machine where absolute numbers do not.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/loadgen"
	"github.com/linepipe/linepipe/pkg/natsconf"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Config sizes a run. Zero values take the defaults in WithDefaults.
type Config struct {
	DatabaseURL string // base Postgres URL; a private schema is created on it
	NATSServer  string // nats-server binary; default the system's, else built (ResolveNATSServer)
	// NATSDefaultSync runs the private NATS node with NATS's own
	// sync_interval instead of deploy/nats/nats.conf's "always": the
	// stages then measure linepipe against its ceilings without the
	// disk's fsync latency in every publish and ack, which the durability
	// stage measures on its own.
	NATSDefaultSync bool
	Dir             string // work directory (binaries, logs, profiles); default a temp dir
	Keep            bool   // keep Dir afterwards
	Profile         bool   // run services under CPU profiles written to Dir
	Seed            uint64
	// Env is added to every service's environment (KEY=value), for
	// trying a setting; DBParams are added to the database URL the
	// services get (e.g. synchronous_commit=off).
	Env      []string
	DBParams []string
	// Stages to run, of Stages; default all.
	Stages []string

	Concurrency       int           // closed-loop senders for peak runs
	PeakDuration      time.Duration // a closed loop's pair of peak runs (each server half); durability's pair
	HalfDuration      time.Duration // ingest at half its peak
	WorkerEvents      int           // events in the stream the worker drains
	Workers           int           // worker processes
	WorkerConcurrency int           // WORKER_CONCURRENCY of each
	SenderRows        int           // outbox rows with limits lifted
	SenderLimitedRows int           // outbox rows under LINE's push limit
	E2ERate           float64       // webhooks per second, end to end
	E2EDuration       time.Duration
	ReplyRate         float64       // webhooks per second of the reply stage
	ReplyDuration     time.Duration // its length
	ReplyWorkers      int           // worker processes (echo bot on) in it
	// ReplyWorkerLoops is WORKER_CONCURRENCY of each: one, as
	// docker-compose.yml runs its two worker replicas.
	ReplyWorkerLoops int
	ReplySenders     int // sender processes in it

	// Warmup is the load each end-to-end stage (e2e, reply) runs at its
	// rate before the webhooks it times: the processes have just
	// started, and their first second measures their start-up (pool
	// connections, statement caches, first plans, heap growth), not the
	// pipeline at that rate. Its latency is reported on a line of its own.
	Warmup time.Duration

	FairBacklog    int           // channel A's queued pushes in the fairness stage
	FairRate       float64       // channel B pushes, and channel A replies, inserted per second
	FairDuration   time.Duration // how long they are inserted
	ClaimSmallRows int           // queued rows of the cheap claim
	ClaimLargeRows int           // queued rows of the expensive one
	DrainTimeout   time.Duration // longest wait for any stage to finish

	Log io.Writer // progress lines; default stderr
}

// StageNames are the stages in the order they run.
var StageNames = []string{"ingest", "worker", "sender", "river", "sender2", "fairness", "claim", "e2e", "reply", "content", "durability"}

// WithDefaults fills zero fields; the defaults keep a run near 8 minutes
// on a 2-core machine.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	def(&c.Concurrency, 32)
	defd(&c.PeakDuration, 10*time.Second)
	defd(&c.HalfDuration, 10*time.Second)
	def(&c.WorkerEvents, 30000)
	def(&c.Workers, 1)
	def(&c.WorkerConcurrency, 2) // the worker's own default
	def(&c.SenderRows, 30000)
	def(&c.SenderLimitedRows, 30000)
	if c.E2ERate == 0 {
		c.E2ERate = 50
	}
	defd(&c.E2EDuration, 15*time.Second)
	if c.ReplyRate == 0 {
		c.ReplyRate = 1000
	}
	defd(&c.ReplyDuration, 10*time.Second)
	defd(&c.Warmup, time.Second)
	def(&c.ReplyWorkers, 2)
	def(&c.ReplyWorkerLoops, 1)
	def(&c.ReplySenders, 2)
	def(&c.FairBacklog, 60000)
	if c.FairRate == 0 {
		c.FairRate = 20
	}
	defd(&c.FairDuration, 10*time.Second)
	def(&c.ClaimSmallRows, 1000)
	def(&c.ClaimLargeRows, 1000000)
	defd(&c.DrainTimeout, 90*time.Second)
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// Validate reports sizes that cannot make a measurement.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 || c.Workers < 1 || c.WorkerConcurrency < 1 {
		errs = append(errs, errors.New("concurrency, workers and worker concurrency must be at least 1"))
	}
	if c.WorkerEvents < 100 || c.SenderRows < 100 || c.SenderLimitedRows < 100 {
		errs = append(errs, errors.New("worker events and sender rows must be at least 100"))
	}
	if c.PeakDuration < time.Second || c.HalfDuration < time.Second || c.E2EDuration < time.Second || c.E2ERate <= 0 ||
		c.ReplyDuration < time.Second || c.ReplyRate <= 0 || c.FairDuration < time.Second || c.FairRate <= 0 {
		errs = append(errs, errors.New("durations must be at least 1s and the rates positive"))
	}
	if c.ReplyWorkers < 1 || c.ReplyWorkerLoops < 1 || c.ReplySenders < 1 || c.FairBacklog < 100 || c.ClaimSmallRows < 100 || c.ClaimLargeRows < c.ClaimSmallRows {
		errs = append(errs, errors.New("reply workers and senders must be at least 1, the backlogs at least 100, the large claim backlog no smaller than the small"))
	}
	for _, s := range c.Stages {
		if !slices.Contains(StageNames, s) {
			errs = append(errs, fmt.Errorf("unknown stage %q (stages: %s)", s, strings.Join(StageNames, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Result is one run's measurements.
type Result struct {
	Ingest   IngestResult   `json:"ingest"`
	Worker   WorkerResult   `json:"worker"`
	Sender   SenderResult   `json:"sender"`
	River    *RiverResult   `json:"river,omitempty"` // River draining the sender stage's job (river.go)
	Sender2  LimitedDrain   `json:"sender2"`
	Fairness FairnessResult `json:"fairness"`
	Claim    ClaimResult    `json:"claim"`
	E2E      E2EResult      `json:"endToEnd"`
	Reply    E2EResult      `json:"reply"`
	Content  ContentResult  `json:"content"`
	Ran      []string       `json:"stages"`
	// Durability is ingest's cost of sync_interval: always (durability.go).
	Durability *DurabilityResult `json:"durability,omitempty"`
	PeakRSS    map[string]int64  `json:"peakRssKiB"`
	// PeakRSSStage is the stage in which each service's peak was reached:
	// the last in which the sampler saw it grow (empty when only a
	// process's reading at its stop raised it).
	PeakRSSStage map[string]string `json:"peakRssStage"`
	Dir          string            `json:"dir,omitempty"`
	Started      time.Time         `json:"started"`
	Seconds      float64           `json:"seconds"`
}

// Bench is one run in progress.
type Bench struct {
	cfg    Config
	stack  *Stack
	schema *Schema
	mu     sync.Mutex
	procs  []*Proc
	// stage is the stage running; peakStage, per process, the stage in
	// which sampleRSS last saw its peak grow.
	stage     string
	peakStage map[*Proc]string
	// pgSeen is the CPU each live backend of the run had when last read,
	// pgGone that of backends since ended, pgLast the last total (pgCPU).
	pgSeen         map[int]float64
	pgGone, pgLast float64
	// natsBin and natsOpts start further servers like the run's own.
	natsBin  string
	natsOpts natsconf.Options
}

func (b *Bench) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// start launches p, remembers it for RSS sampling and waits for /readyz.
func (b *Bench) start(p *Proc) error {
	if err := p.Start(); err != nil {
		return err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	if err := p.WaitReady(context.Background(), 30*time.Second); err != nil {
		return fmt.Errorf("%s: %w (log: %s)", p.Name, err, p.LogPath)
	}
	return nil
}

func runLoad(ctx context.Context, cfg loadgen.Config) (*loadgen.Report, error) {
	return loadgen.Run(ctx, cfg)
}

// Run builds the services, starts a private NATS node and Postgres
// schema, runs every stage and cleans up.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Started: time.Now().UTC(), PeakRSS: map[string]int64{}, PeakRSSStage: map[string]string{}}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "linepipe-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !cfg.Keep {
		defer os.RemoveAll(dir)
	} else {
		res.Dir = dir
	}
	if cfg.Profile {
		// The bench's own process serves the emulator and generates the
		// load on the same cores as the services: its profile says what
		// the measured stages competed with.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(filepath.Join(dir, "bench.cpu.pprof"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	b := &Bench{cfg: cfg, peakStage: map[*Proc]string{}}
	b.logf("building services into %s", dir)
	bin := filepath.Join(dir, "bin")
	if err := Build(ctx, bin, "./cmd/ingest", "./cmd/worker", "./cmd/sender", "./cmd/loadgen", "./cmd/bench/profiled"); err != nil {
		return nil, err
	}
	natsBin, err := ResolveNATSServer(ctx, cfg.NATSServer, bin)
	if err != nil {
		return nil, err
	}
	id := strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	users := natsconf.NewUsers()
	natsOpts := natsconf.Options{Stream: "BENCH_" + id, SubjectPrefix: "bench_" + id, Users: users,
		DefaultSync: cfg.NATSDefaultSync}
	natsNode, err := NewNATSNode(natsBin, dir, "nats")
	if err != nil {
		return nil, err
	}
	// The deployed configuration: users, permissions, sync_interval: always.
	if err := natsNode.UseConfig(dir, natsOpts); err != nil {
		return nil, err
	}
	if err := natsNode.Start(); err != nil {
		return nil, err
	}
	b.procs = append(b.procs, natsNode.Proc)
	defer func() { _ = natsNode.Stop(5 * time.Second) }()
	if err := natsNode.WaitReady(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	schema, err := NewSchema(ctx, cfg.DatabaseURL, "bench", 16)
	if err != nil {
		return nil, err
	}
	defer func() { _ = schema.Drop(context.Background()) }()
	b.schema = schema
	svcURL := schema.URL
	for _, kv := range cfg.DBParams {
		k, v, _ := strings.Cut(kv, "=")
		if svcURL, err = withParam(svcURL, k, v); err != nil {
			return nil, err
		}
	}
	b.natsBin, b.natsOpts = natsBin, natsOpts
	b.stack = &Stack{BinDir: bin, Dir: dir, Profile: cfg.Profile, NATSURL: natsNode.URL(), NATSUsers: &users,
		Stream: natsOpts.Stream, SubjectPrefix: natsOpts.SubjectPrefix, DatabaseURL: svcURL, Extra: cfg.Env,
		ChannelID: "2000000001", ChannelSecret: uuid.NewString(), AccessToken: "bench-" + uuid.NewString()}

	stopSampling := b.sampleRSS()
	err = b.stages(ctx, res)
	stopSampling()
	for _, p := range b.procs {
		name, _, _ := strings.Cut(p.Name, "-")
		if k := p.PeakRSSKB(); k > res.PeakRSS[name] {
			res.PeakRSS[name], res.PeakRSSStage[name] = k, b.peakStage[p]
		}
	}
	res.Seconds = time.Since(res.Started).Seconds()
	return res, err
}

func (b *Bench) stages(ctx context.Context, res *Result) error {
	admin := b.stack.NATSUsers.Admin
	nc, js, err := stream.Connect(stream.Config{URL: b.stack.NATSURL, Auth: stream.Auth{User: admin.User, Password: admin.Password}},
		"linepipe-bench", zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	ing, err := b.stack.Ingest("ingest")
	if err != nil {
		return err
	}
	if err := b.start(ing); err != nil {
		return err
	}
	defer func() { _ = ing.Stop(10 * time.Second) }()

	stages := []struct {
		name string
		run  func() error
	}{
		{"ingest", func() (err error) { res.Ingest, err = b.runIngest(ctx, ing); return err }},
		{"worker", func() (err error) { res.Worker, err = b.runWorker(ctx, ing, js); return err }},
		{"sender", func() (err error) { res.Sender, err = b.runSender(ctx); return err }},
		{"river", func() (err error) { res.River, err = b.runRiver(ctx); return err }},
		{"sender2", func() (err error) { res.Sender2, err = b.runSender2(ctx); return err }},
		{"fairness", func() (err error) { res.Fairness, err = b.runFairness(ctx); return err }},
		{"claim", func() (err error) { res.Claim, err = b.runClaim(ctx); return err }},
		{"e2e", func() (err error) {
			res.E2E, err = b.runE2E(ctx, ing, js, e2eSpec{name: "e2e", rate: b.cfg.E2ERate, duration: b.cfg.E2EDuration,
				warmup: b.cfg.Warmup, workers: 1, senders: 1})
			return err
		}},
		{"reply", func() (err error) {
			res.Reply, err = b.runE2E(ctx, ing, js, e2eSpec{name: "reply", rate: b.cfg.ReplyRate, duration: b.cfg.ReplyDuration,
				warmup: b.cfg.Warmup, workers: b.cfg.ReplyWorkers, workerLoops: b.cfg.ReplyWorkerLoops,
				senders: b.cfg.ReplySenders})
			return err
		}},
		{"content", func() (err error) { res.Content, err = b.runContent(ctx, js); return err }},
		{"durability", func() (err error) { res.Durability, err = b.runDurability(ctx); return err }},
	}
	for _, st := range stages {
		if !b.wants(st.name) {
			continue
		}
		res.Ran = append(res.Ran, st.name)
		b.mu.Lock()
		b.stage = st.name
		b.mu.Unlock()
		if err := b.sampled(st.name, st.run); err != nil {
			return fmt.Errorf("%s stage: %w", st.name, err)
		}
	}
	return nil
}

// pgProc stands for the run's Postgres backends in CPU accounting.
var pgProc = &Proc{Name: "postgres-backends"}

func (b *Bench) cpuByProc() map[*Proc]float64 {
	b.mu.Lock()
	procs := append([]*Proc(nil), b.procs...)
	b.mu.Unlock()
	m := map[*Proc]float64{}
	for _, p := range procs {
		m[p] = p.CPUSeconds()
	}
	m[pgProc] = b.pgCPU()
	return m
}

// pgCPU sums the CPU time of the Postgres backends serving this run's
// connections (found by application_name: the schema's name, or that name
// with a suffix naming one process), which run on the same machine.
// Backends that ended count with what they had used when last read, so
// one stage's ended connections do not hide the next stage's new ones.
func (b *Bench) pgCPU() float64 {
	now, err := b.backendCPUs("starts_with(application_name, $1)", b.schema.Name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		return b.pgLast
	}
	if b.pgSeen == nil {
		b.pgSeen = map[int]float64{}
	}
	for pid, c := range b.pgSeen {
		if n, ok := now[pid]; !ok || n < c { // ended, or its pid reused
			b.pgGone += c
			delete(b.pgSeen, pid)
		}
	}
	b.pgLast = b.pgGone
	for pid, c := range now {
		b.pgSeen[pid] = c
		b.pgLast += c
	}
	return b.pgLast
}

// backendCPU sums the CPU time of the Postgres backends whose
// pg_stat_activity row matches where (with $1 = app): with
// "application_name = $1", those serving one process that set app.
func (b *Bench) backendCPU(where, app string) float64 {
	m, _ := b.backendCPUs(where, app)
	var sum float64
	for _, c := range m {
		sum += c
	}
	return sum
}

// backendCPUs is the CPU time of each such backend, by pid.
func (b *Bench) backendCPUs(where, app string) (map[int]float64, error) {
	rows, err := b.schema.Pool.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE "+where, app)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[int]float64{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		m[pid] = readCPU(pid)
	}
	return m, rows.Err()
}

// appURL is url with the application_name that marks one process's
// backends: the schema's name, so the run's accounting still finds them,
// and the process's name after it.
func (b *Bench) appURL(url, process string) (string, string, error) {
	app := b.schema.Name + "_" + process
	u, err := withParam(url, "application_name", app)
	return u, app, err
}

// logCPU logs the CPU share each process still running used during a
// stage; processes that ended within it are not counted.
func (b *Bench) logCPU(stage string, before map[*Proc]float64, since time.Time) {
	wall := time.Since(since).Seconds()
	var parts []string
	for p, c := range b.cpuByProc() {
		if d := c - before[p]; d > 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", p.Name, 100*d/wall))
		}
	}
	sort.Strings(parts)
	b.logf("%s stage: %.1fs, CPU of one core: %s", stage, wall, strings.Join(parts, ", "))
}

func (b *Bench) wants(stage string) bool {
	if len(b.cfg.Stages) == 0 {
		return true
	}
	for _, s := range b.cfg.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// sampled runs a stage under the Postgres activity sampler when
// profiling, and logs where the database spent the stage.
func (b *Bench) sampled(stage string, f func() error) error {
	cpu0, wall0 := b.cpuByProc(), time.Now()
	if !b.cfg.Profile {
		err := f()
		b.logCPU(stage, cpu0, wall0)
		return err
	}
	s := StartPGSampler(b.schema.Pool, b.schema.Name, 10*time.Millisecond)
	err := f()
	b.logCPU(stage, cpu0, wall0)
	b.logf("postgres activity during the %s stage (average connections per state, wait and statement):", stage)
	for _, l := range s.Stop(12) {
		b.logf("  %s", l)
	}
	return err
}

// sampleRSS reads every running process's VmHWM twice a second, so a
// process's peak is known even if it dies before it is stopped. It reads
// the Postgres backends' CPU as often: a backend that a stage's services
// open and close between the stage's first and last reading (they stop
// before the stage ends) would otherwise never be counted.
func (b *Bench) sampleRSS() func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			b.mu.Lock()
			ps, stage := append([]*Proc(nil), b.procs...), b.stage
			b.mu.Unlock()
			for _, p := range ps {
				before := p.PeakRSSKB()
				if p.SampleRSS() > before {
					b.mu.Lock()
					b.peakStage[p] = stage
					b.mu.Unlock()
				}
			}
			b.pgCPU()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
