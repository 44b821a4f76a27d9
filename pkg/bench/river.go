package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// RiverResult is River (github.com/riverqueue/river) draining the sender
// stage's job: the same number of queued pushes to a fresh emulator with
// every limit lifted, as its own process, on the same machine in the same
// run. bench/river is that program; it is a module of its own so that
// linepipe never depends on River.
type RiverResult struct {
	Jobs int `json:"jobs"`
	// PerSec is measured at the emulator between the first and the last
	// accepted send, exactly as the sender's rate is, so the two compare.
	PerSec float64 `json:"perSec"`
	// OwnPerSec is River's own count: jobs over the time from the
	// client's Start to the last completion event.
	OwnPerSec float64 `json:"ownPerSec"`
	// CPUPerJob is the River process's CPU (user + system) from its
	// client's Start to the last completion, in ms per job; PGPerJob is
	// that of the Postgres backends serving the client (0 when they could
	// not be read). Neither counts River's migration or inserts: linepipe's
	// rows are inserted by the bench, not by the sender.
	CPUPerJob    float64 `json:"cpuMsPerJob"`
	PGPerJob     float64 `json:"pgBackendCpuMsPerJob"`
	NotCompleted int     `json:"notCompleted"`
}

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
	emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, RateLimits: UnlimitedRates(), Seed: 3})
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	schema := b.schema.Name + "_river"
	defer func() { _, _ = b.schema.Pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") }()
	dbURL, app, err := b.appURL(b.stack.DatabaseURL, "river")
	if err != nil {
		return nil, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return nil, err
	}
	outPath := filepath.Join(b.stack.Dir, "river.json")
	n := b.cfg.SenderRows
	p := &Proc{Name: "river", Path: bin, LogPath: filepath.Join(b.stack.Dir, "river.log"),
		Args: []string{"-schema", schema, "-jobs", strconv.Itoa(n), "-timeout", b.cfg.DrainTimeout.String(), "-out", outPath, "-linger"},
		Env:  []string{"DATABASE_URL=" + dbURL, "LINE_API_BASE_URL=" + emu.URL, "LINE_CHANNEL_ACCESS_TOKEN=" + b.stack.AccessToken}}
	if err := p.Start(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	defer func() { _ = p.Stop(10 * time.Second) }()

	out, err := waitRiver(ctx, p, outPath, b.cfg.DrainTimeout+time.Minute)
	if err != nil {
		return nil, err
	}
	// Read while River still holds its connections: a backend's CPU is
	// gone from /proc once it ends.
	pg := b.backendCPU("application_name = $1", app)
	b.pgCPU() // so the stage's log counts them after they end
	res := &RiverResult{Jobs: n, OwnPerSec: out.PerSec, NotCompleted: n - out.Completed,
		CPUPerJob: out.CPUSeconds * 1000 / float64(n), PGPerJob: pg * 1000 / float64(n)}
	ds := emu.Accepted()
	if len(ds) < 2 {
		return res, fmt.Errorf("emulator accepted %d of River's sends", len(ds))
	}
	res.PerSec = float64(len(ds)-1) / ds[len(ds)-1].At.Sub(ds[0].At).Seconds()
	b.logf("river, no limits: %.0f jobs/s at the emulator (%.0f by River's own count), %.3f ms of CPU per job, %.3f ms in its Postgres backends, %d not completed",
		res.PerSec, res.OwnPerSec, res.CPUPerJob, res.PGPerJob, res.NotCompleted)
	return res, nil
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
