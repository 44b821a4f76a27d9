package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// RiverResult is River (github.com/riverqueue/river) draining the sender
// stage's job: the same number of queued pushes to a fresh emulator with
// every limit lifted, as its own process, on the same machine in the same
// run. bench/river is that program; it is a module of its own so that
// linepipe never depends on River.
//
// The stage alternates the two, riverRounds times each (the sender's
// drain first), and compares medians: back-to-back single drains of
// either differed by up to a third from run to run on this machine, and
// whichever ran first after the worker stage paid more Postgres CPU.
type RiverResult struct {
	Jobs int `json:"jobs"`
	// Rounds are the drains, in order; the fields below are medians.
	Rounds []RiverRound `json:"rounds"`
	// Sender is linepipe's sender on the same job in the same rounds.
	Sender RiverRound `json:"sender"`
	// PerSec is measured at the emulator between the first and the last
	// accepted send, exactly as the sender's rate is, so the two compare.
	PerSec float64 `json:"perSec"`
	// CPUPerJob is the River process's CPU (user + system) from its
	// client's Start to the last completion, in ms per job; PGPerJob is
	// that of the Postgres backends serving the client (0 when they could
	// not be read). Neither counts River's migration or inserts: linepipe's
	// rows are inserted by the bench, not by the sender.
	CPUPerJob    float64 `json:"cpuMsPerJob"`
	PGPerJob     float64 `json:"pgBackendCpuMsPerJob"`
	NotCompleted int     `json:"notCompleted"`
}

// RiverRound is one drain of either side: rate at the emulator, CPU per
// send in ms (process, and the Postgres backends serving it), sends not
// completed.
type RiverRound struct {
	Who          string  `json:"who"`
	PerSec       float64 `json:"perSec"`
	CPUPerSend   float64 `json:"cpuMsPerSend"`
	PGPerSend    float64 `json:"pgBackendCpuMsPerSend"`
	NotCompleted int     `json:"notCompleted"`
}

// riverRounds is how many drains each side makes in the river stage.
const riverRounds = 3

// riverOut is the line bench/river prints.
type riverOut struct {
	Jobs       int     `json:"jobs"`
	PerSec     float64 `json:"perSec"`
	CPUSeconds float64 `json:"cpuSeconds"`
	Completed  int     `json:"completedInDb"`
}

// buildRiver compiles bench/river, found beside linepipe's go.mod, into
// binDir. It is built in its own module directory, so River's
// dependencies never enter linepipe's build.
func buildRiver(ctx context.Context, binDir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bench", "river")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("bench/river not found under %s (run the bench from linepipe's checkout): %w", root, err)
	}
	bin := filepath.Join(binDir, "riverbench")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building bench/river: %w\n%s", err, out)
	}
	return bin, nil
}

// runRiver queues SenderRows push jobs in a schema of River's own beside
// the run's, lets River drain them to an emulator without limits, and
// reads its result and its Postgres backends' CPU while it still holds
// its connections.
func (b *Bench) runRiver(ctx context.Context) (*RiverResult, error) {
	b.logf("building bench/river")
	bin, err := buildRiver(ctx, b.stack.BinDir)
	if err != nil {
		return nil, err
	}
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	res := &RiverResult{Jobs: b.cfg.SenderRows}
	var riv, snd []RiverRound
	for i := range riverRounds {
		emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, RateLimits: UnlimitedRates(), Seed: uint64(10 + i)})
		if err != nil {
			return nil, err
		}
		s := RiverRound{Who: "sender"}
		s.PerSec, s.NotCompleted, s.CPUPerSend, s.PGPerSend, err = b.freeDrain(ctx, emu, fmt.Sprintf("sender-vs-river-%d", i+1))
		emu.Close()
		if err != nil {
			return nil, err
		}
		b.logf("river stage, round %d: sender %.0f pushes/s, %.3f + %.3f ms of CPU per push", i+1, s.PerSec, s.CPUPerSend, s.PGPerSend)
		r, err := b.riverOnce(ctx, bin, ch, i)
		if err != nil {
			return nil, err
		}
		riv, snd = append(riv, r), append(snd, s)
		res.Rounds = append(res.Rounds, s, r)
	}
	res.Sender = medianRound(snd)
	m := medianRound(riv)
	res.PerSec, res.CPUPerJob, res.PGPerJob, res.NotCompleted = m.PerSec, m.CPUPerSend, m.PGPerSend, m.NotCompleted
	return res, nil
}

// medianRound is the median of each measure over rs (an odd number of
// rounds), and the most sends any round left undone.
func medianRound(rs []RiverRound) RiverRound {
	med := func(f func(RiverRound) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := RiverRound{Who: rs[0].Who, PerSec: med(func(r RiverRound) float64 { return r.PerSec }),
		CPUPerSend: med(func(r RiverRound) float64 { return r.CPUPerSend }),
		PGPerSend:  med(func(r RiverRound) float64 { return r.PGPerSend })}
	for _, r := range rs {
		out.NotCompleted = max(out.NotCompleted, r.NotCompleted)
	}
	return out
}

// riverOnce is one River drain of SenderRows jobs in a fresh schema.
func (b *Bench) riverOnce(ctx context.Context, bin string, ch linefake.Channel, round int) (RiverRound, error) {
	none := RiverRound{Who: "river"}
	emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, RateLimits: UnlimitedRates(), Seed: uint64(20 + round)})
	if err != nil {
		return none, err
	}
	defer emu.Close()
	schema := fmt.Sprintf("%s_river%d", b.schema.Name, round+1)
	defer func() { _, _ = b.schema.Pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") }()
	dbURL, app, err := b.appURL(b.stack.DatabaseURL, "river")
	if err != nil {
		return none, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return none, err
	}
	outPath := filepath.Join(b.stack.Dir, fmt.Sprintf("river-%d.json", round+1))
	n := b.cfg.SenderRows
	p := &Proc{Name: "river", Path: bin, LogPath: filepath.Join(b.stack.Dir, fmt.Sprintf("river-%d.log", round+1)),
		Args: []string{"-schema", schema, "-jobs", strconv.Itoa(n), "-timeout", b.cfg.DrainTimeout.String(), "-out", outPath, "-linger"},
		Env:  []string{"DATABASE_URL=" + dbURL, "LINE_API_BASE_URL=" + emu.URL, "LINE_CHANNEL_ACCESS_TOKEN=" + b.stack.AccessToken}}
	if err := p.Start(); err != nil {
		return none, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	defer func() { _ = p.Stop(10 * time.Second) }()

	out, err := waitRiver(ctx, p, outPath, b.cfg.DrainTimeout+time.Minute)
	if err != nil {
		return none, err
	}
	// Read while River still holds its connections: a backend's CPU is
	// gone from /proc once it ends.
	pg := b.backendCPU("application_name = $1", app)
	b.pgCPU() // so the stage's log counts them after they end
	r := RiverRound{Who: "river", NotCompleted: n - out.Completed,
		CPUPerSend: out.CPUSeconds * 1000 / float64(n), PGPerSend: pg * 1000 / float64(n)}
	ds := emu.Accepted()
	if len(ds) < 2 {
		return r, fmt.Errorf("emulator accepted %d of River's sends", len(ds))
	}
	r.PerSec = float64(len(ds)-1) / ds[len(ds)-1].At.Sub(ds[0].At).Seconds()
	b.logf("river stage, round %d: River %.0f jobs/s at the emulator (%.0f by its own count), %.3f + %.3f ms of CPU per job, %d not completed",
		round+1, r.PerSec, out.PerSec, r.CPUPerSend, r.PGPerSend, r.NotCompleted)
	return r, nil
}

// waitRiver waits for bench/river's result file, failing early if the
// process exits without one.
func waitRiver(ctx context.Context, p *Proc, path string, timeout time.Duration) (riverOut, error) {
	var out riverOut
	deadline := time.After(timeout)
	for {
		if data, err := os.ReadFile(path); err == nil {
			return out, json.Unmarshal(data, &out)
		}
		select {
		case <-p.Done():
			return out, fmt.Errorf("bench/river exited without a result (log: %s)", p.LogPath)
		case <-deadline:
			return out, fmt.Errorf("bench/river gave no result within %s (log: %s)", timeout, p.LogPath)
		case <-ctx.Done():
			return out, fmt.Errorf("waiting for bench/river: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
