package bench

import (
	"path/filepath"
	"testing"
	"time"
)

func TestProcSamplesPeakRSSAndCPUAcrossRestarts(t *testing.T) {
	t.Parallel()
	p := &Proc{Name: "busy", Path: "/bin/sh", Args: []string{"-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30"},
		LogPath: filepath.Join(t.TempDir(), "busy.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == 0 || !p.Running() {
		t.Fatalf("pid %d running %v after Start", p.Pid(), p.Running())
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.CPUSeconds() < 0.05 {
		if time.Now().After(deadline) {
			t.Fatalf("busy loop used %.2fs CPU after 30s", p.CPUSeconds())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if kb := p.SampleRSS(); kb <= 0 {
		t.Fatalf("peak RSS %d KiB, want > 0", kb)
	}
	first := p.CPUSeconds()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("still running after Kill")
	}
	if got := p.CPUSeconds(); got < first {
		t.Fatalf("CPU went from %.2f to %.2f after the process ended", first, got)
	}
	// A restart adds to what the earlier lifetime used.
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Kill() }()
	for p.CPUSeconds() < first+0.05 {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("CPU %.2f after restart, want above %.2f", p.CPUSeconds(), first)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.PeakRSSKB() <= 0 {
		t.Fatal("peak RSS forgotten across restarts")
	}
}

func TestStopEndsAProcessThatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	p := &Proc{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; sleep 30"},
		LogPath: filepath.Join(t.TempDir(), "s.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	if err := p.Stop(200 * time.Millisecond); err == nil {
		t.Fatal("Stop reported a clean exit for a process that ignored SIGTERM")
	}
	if p.Running() {
		t.Fatal("still running after Stop")
	}
}
