package ops

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"

	"github.com/linepipe/linepipe/pkg/config"
)

// The defaults GCFromEnv gives ingest and the worker. At 300 a drain of
// the worker stage spent about a fifth less of the worker's CPU per
// event, and its peak heap rose from about 30 to 42 MiB; 48 MiB keeps
// every service under the 64 MiB it is measured against. The sender keeps
// Go's defaults: at 300 (under the same limit) it spent a sixth less of
// its own CPU per send draining a backlog, but replies at 1,000 webhooks/s
// came later (over six alternating pairs of the bench's reply stage, p50
// 72 against 61 ms and p99 164 against 142, the medians), and replies
// are what the sender must not delay.
const (
	DefaultGCPercent   = 300
	DefaultMemoryLimit = 48 << 20
)

// GC is the Go collector's setting for one service. Ingest and the worker
// allocate per message (request bodies, decoded events, query arguments)
// and keep little alive, so with Go's default target of 100 the
// collector runs every few megabytes and takes a tenth to a fifth of
// their CPU, CPU that Postgres and NATS need on the same host. A higher
// target trades some megabytes of heap for fewer collections; the soft
// memory limit makes the collector work harder again before the heap
// grows past it, so the service stays small under any load.
type GC struct {
	Percent int   // GOGC; negative: off
	Limit   int64 // GOMEMLIMIT, bytes; math.MaxInt64: off
}

// GCFromEnv reads GOGC and GOMEMLIMIT, in the runtime's own formats,
// with DefaultGCPercent and DefaultMemoryLimit where they are unset.
// Apply sets them itself: the runtime reads only the plain variables, at
// start, never the GOGC_FILE or GOMEMLIMIT_FILE every setting may be
// given as.
func GCFromEnv(env *config.Env) (GC, error) {
	g := GC{Percent: DefaultGCPercent, Limit: DefaultMemoryLimit}
	if v := env.String("GOGC", ""); v != "" {
		p, err := parseGOGC(v)
		if err != nil {
			return g, err
		}
		g.Percent = p
	}
	if v := env.String("GOMEMLIMIT", ""); v != "" {
		l, err := parseGOMEMLIMIT(v)
		if err != nil {
			return g, err
		}
		g.Limit = l
	}
	return g, nil
}

// Apply sets the collector's target and soft memory limit.
func (g GC) Apply() {
	if g.Percent != 0 {
		debug.SetGCPercent(g.Percent)
	}
	if g.Limit > 0 {
		debug.SetMemoryLimit(g.Limit)
	}
}

// parseGOGC reads GOGC as the runtime does: a percentage, or "off".
func parseGOGC(v string) (int, error) {
	if v == "off" {
		return -1, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("GOGC=%q: a percentage or off", v)
	}
	return p, nil
}

// parseGOMEMLIMIT reads GOMEMLIMIT as the runtime does: a number of bytes
// with an optional B, KiB, MiB, GiB or TiB, or "off".
func parseGOMEMLIMIT(v string) (int64, error) {
	if v == "off" {
		return math.MaxInt64, nil
	}
	n, err := config.ParseSize(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("GOMEMLIMIT=%q: a size in bytes (B, KiB, MiB, GiB, TiB) or off", v)
	}
	return n, nil
}
