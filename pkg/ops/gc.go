package ops

import (
	"runtime/debug"

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
	Percent int   // GOGC
	Limit   int64 // GOMEMLIMIT, bytes
	// The runtime has applied what the operator set; Apply keeps it.
	percentSet, limitSet bool
}

// GCFromEnv reads GOGC and GOMEMLIMIT, which the Go runtime applies at
// start: DefaultGCPercent and DefaultMemoryLimit apply only where they
// are unset.
func GCFromEnv(env *config.Env) GC {
	return GC{Percent: DefaultGCPercent, Limit: DefaultMemoryLimit,
		percentSet: env.String("GOGC", "") != "", limitSet: env.String("GOMEMLIMIT", "") != ""}
}

// Apply sets the collector's defaults that the operator did not set.
func (g GC) Apply() {
	if !g.percentSet && g.Percent != 0 {
		debug.SetGCPercent(g.Percent)
	}
	if !g.limitSet && g.Limit > 0 {
		debug.SetMemoryLimit(g.Limit)
	}
}
