package bench

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CPUShare is where a timed phase's CPU went, in microseconds per unit of
// work (a webhook, an event, a send) by process group, and how busy the
// machine's cores were meanwhile. A MISS on a shared 2-core host is most
// often the host's cores running out, and a ratio against a reference is
// most often the ratio of their CPU per unit: these numbers, from the
// same run, are what the table's "why" lines say.
type CPUShare struct {
	// PerUnitUS is CPU µs per unit by group: "postgres" (the run's
	// backends), "nats", "bench" (this process: the load generator and
	// the emulator), and each service by its name without replica or
	// round suffixes ("ingest", "worker", "sender", "noop").
	PerUnitUS map[string]float64 `json:"usPerUnit,omitempty"`
	// HostBusy is the fraction of all the machine's cores that were busy
	// (every /proc/stat state but idle and iowait), whoever used them.
	HostBusy float64 `json:"hostBusy"`
	Cores    int     `json:"cores"`
}

// Total is the CPU µs per unit of every group.
func (c CPUShare) Total() float64 {
	var t float64
	for _, v := range c.PerUnitUS {
		t += v
	}
	return t
}

// of is the CPU µs per unit of the named groups together.
func (c CPUShare) of(groups ...string) float64 {
	var t float64
	for _, g := range groups {
		t += c.PerUnitUS[g]
	}
	return t
}

// String lists the groups, largest first: "postgres 110, worker 50, nats 12 µs".
func (c CPUShare) String() string {
	type kv struct {
		k string
		v float64
	}
	var kvs []kv
	for k, v := range c.PerUnitUS {
		if v >= 0.5 {
			kvs = append(kvs, kv{k, v})
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v || kvs[i].v == kvs[j].v && kvs[i].k < kvs[j].k })
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = e.k + " " + strconv.FormatFloat(e.v, 'f', 0, 64)
	}
	return strings.Join(parts, ", ") + " µs"
}

// busyText is HostBusy as "96 % of 2 cores".
func (c CPUShare) busyText() string {
	return strconv.FormatFloat(100*c.HostBusy, 'f', 0, 64) + " % of " + strconv.Itoa(c.Cores) + " cores"
}

// procGroup is the group a process's CPU counts in: its name up to the
// first '-' ("worker-1-round2" is a worker), the Postgres backends as
// "postgres".
func procGroup(name string) string {
	if name == pgProc.Name {
		return "postgres"
	}
	if i := strings.IndexByte(name, '-'); i > 0 {
		return name[:i]
	}
	return name
}

// hostTicks is the machine's CPU time from /proc/stat's first line, in
// clock ticks: busy (every state but idle and iowait) and in all.
type hostTicks struct{ busy, total uint64 }

func readHostTicks() hostTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTicks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseHostTicks(line)
}

// parseHostTicks reads "cpu  user nice system idle iowait irq softirq
// steal guest guest_nice". guest and guest_nice are already inside user
// and nice, so they are not added again.
func parseHostTicks(line string) hostTicks {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return hostTicks{}
	}
	var h hostTicks
	for i, s := range f[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseUint(s, 10, 64)
		h.total += v
		if i != 3 && i != 4 { // idle, iowait
			h.busy += v
		}
	}
	return h
}

// cpuSpan is the start of a timed phase whose CPU is wanted.
type cpuSpan struct {
	procs map[*Proc]float64
	self  float64
	host  hostTicks
	at    time.Time
}

// startSpan notes every process's CPU, the bench's own and the machine's.
func (b *Bench) startSpan() cpuSpan {
	return cpuSpan{procs: b.cpuByProc(), self: readCPU(os.Getpid()), host: readHostTicks(), at: time.Now()}
}

// share is the CPU used since s by process group, per unit of units.
func (b *Bench) share(s cpuSpan, units float64) CPUShare {
	host := readHostTicks()
	out := CPUShare{PerUnitUS: map[string]float64{}, Cores: runtime.NumCPU()}
	if host.total > s.host.total {
		out.HostBusy = float64(host.busy-s.host.busy) / float64(host.total-s.host.total)
	}
	if units <= 0 {
		return out
	}
	per := func(sec float64) float64 { return sec * 1e6 / units }
	for p, c := range b.cpuByProc() {
		if d := c - s.procs[p]; d > 0 {
			out.PerUnitUS[procGroup(p.Name)] += per(d)
		}
	}
	if d := readCPU(os.Getpid()) - s.self; d > 0 {
		out.PerUnitUS["bench"] += per(d)
	}
	return out
}
