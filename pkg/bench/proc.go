package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one service running as a real operating-system process, so what
// is measured (and killed) is exactly what a deployment runs.
type Proc struct {
	Name    string
	Path    string
	Args    []string
	Env     []string
	LogPath string
	// Addr is the process's listener (host:port), when it has one: for
	// ingest the webhook port.
	Addr string
	// AdminAddr, when set, is where /readyz is served instead of Addr
	// (ingest keeps its operator endpoints off the webhook port).
	AdminAddr string
	// Credential, when set, runs the process as another user (Postgres
	// refuses to run as root).
	Credential *syscall.Credential

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	peakKB  int64   // largest VmHWM seen across this Proc's lifetimes
	cpu     float64 // CPU seconds of earlier lifetimes
	lastCPU float64 // CPU seconds of the current one when last read
}

// Start runs the process with a minimal environment (PATH, HOME and Env),
// appending its stdout and stderr to LogPath. A process started earlier
// by the same Proc must have exited.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log for %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A child must not outlive the run that started it, even when the
	// run itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.Credential}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	p.cpu += p.lastCPU
	p.lastCPU = 0
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid is the running process's id, 0 when none was started.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process has been started and not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// SampleRSS records the process's peak resident set (VmHWM). It must be
// called while the process runs: the kernel forgets it at exit.
func (p *Proc) SampleRSS() int64 {
	pid := p.Pid()
	if pid == 0 || !p.Running() {
		return p.PeakRSSKB()
	}
	kb := readVmHWM(pid)
	p.CPUSeconds()
	p.mu.Lock()
	defer p.mu.Unlock()
	if kb > p.peakKB {
		p.peakKB = kb
	}
	return p.peakKB
}

// PeakRSSKB is the largest VmHWM sampled so far, in KiB.
func (p *Proc) PeakRSSKB() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakKB
}

func readVmHWM(pid int) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// Stop asks the process to shut down (SIGTERM), waits up to grace and
// then kills it. Its peak RSS is sampled first.
func (p *Proc) Stop(grace time.Duration) error {
	p.SampleRSS()
	return p.signalAndWait(syscall.SIGTERM, grace)
}

// Signal sends sig to the process and waits up to grace for it to exit,
// then kills it.
func (p *Proc) Signal(sig syscall.Signal, grace time.Duration) error {
	p.SampleRSS()
	return p.signalAndWait(sig, grace)
}

// Kill ends the process at once (SIGKILL), as a crash would.
func (p *Proc) Kill() error {
	p.SampleRSS()
	return p.signalAndWait(syscall.SIGKILL, 10*time.Second)
}

func (p *Proc) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return fmt.Errorf("%s did not stop within %s and was killed", p.Name, grace)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) would not die", p.Name, cmd.Process.Pid)
	}
}

// Done is closed when the current process exits.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// WaitReady polls http://AdminAddr (else Addr)/readyz until it answers
// 200 or timeout.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	addr := p.AdminAddr
	if addr == "" {
		addr = p.Addr
	}
	if addr == "" {
		return errors.New(p.Name + ": no ops address")
	}
	return WaitHTTP(ctx, "http://"+addr+"/readyz", timeout, p.Done())
}

// WaitHTTP polls url until it answers 200, the deadline passes or exited
// closes.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last error %v)", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("%s: process exited before becoming ready", url)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ModuleRoot is the directory holding go.mod, found upwards from the
// working directory, so the commands work from anywhere in the repo.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles the given main packages (e.g. "./cmd/ingest") into dir;
// each binary is named after its last path element.
func Build(ctx context.Context, dir string, pkgs ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// CPUSeconds is the user plus system CPU time used by every process this
// Proc started, from /proc/<pid>/stat; a process that exited counts with
// what it had used when last read (Stop and Kill read it first).
func (p *Proc) CPUSeconds() float64 {
	pid := p.Pid()
	if pid != 0 && p.Running() {
		if c := readCPU(pid); c > 0 {
			p.mu.Lock()
			p.lastCPU = c
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu + p.lastCPU
}

func readCPU(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields overall, in clock ticks (100 per second).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
