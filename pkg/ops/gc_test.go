package ops

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/linepipe/linepipe/pkg/config"
)

// The collector's settings are process-wide, so this test is not
// parallel and restores what it found. Every value is checked where it
// lands, in the runtime: defaults where nothing is set, the operator's
// value given plainly or, which the runtime itself never reads, as a
// _FILE.
func TestGCSettingsReachTheRuntime(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	dir := t.TempDir()
	file := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name      string
		env       map[string]string
		percent   int
		limitWant int64
	}{
		{"unset", nil, DefaultGCPercent, DefaultMemoryLimit},
		{"plain", map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}, 150, 1 << 30},
		{"files", map[string]string{"GOGC_FILE": file("gogc", "175"), "GOMEMLIMIT_FILE": file("limit", "96MiB")}, 175, 96 << 20},
		{"off", map[string]string{"GOGC": "off", "GOMEMLIMIT": "off"}, -1, math.MaxInt64},
		{"bytes", map[string]string{"GOMEMLIMIT": "50000000"}, DefaultGCPercent, 50000000},
	} {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		g, err := GCFromEnv(config.FromMap(c.env))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		g.Apply()
		if got := debug.SetGCPercent(100); got != c.percent {
			t.Errorf("%s: collector target %d, want %d", c.name, got, c.percent)
		}
		if got := debug.SetMemoryLimit(math.MaxInt64); got != c.limitWant {
			t.Errorf("%s: memory limit %d, want %d", c.name, got, c.limitWant)
		}
	}
	for _, bad := range []map[string]string{{"GOGC": "lots"}, {"GOMEMLIMIT": "48MB"}, {"GOMEMLIMIT": "-1"}} {
		if _, err := GCFromEnv(config.FromMap(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
