package ops

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/linepipe/linepipe/pkg/config"
)

// The collector's settings are process-wide, so this test is not
// parallel and restores what it found.
func TestGCDefaultsApplyOnlyWhereUnset(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	GCFromEnv(config.FromMap(nil)).Apply()
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("unset GOGC: collector target %d, want %d", got, DefaultGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != DefaultMemoryLimit {
		t.Errorf("unset GOMEMLIMIT: limit %d, want %d", got, DefaultMemoryLimit)
	}

	// What the operator set, the runtime applied at start; Apply keeps it.
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	GCFromEnv(config.FromMap(map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"})).Apply()
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: collector target %d, want it kept", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 1<<30 {
		t.Errorf("GOMEMLIMIT=1GiB: limit %d, want it kept", got)
	}
}
