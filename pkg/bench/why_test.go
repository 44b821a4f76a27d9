package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/loadgen"
)

// /proc/stat's first line: busy is every state but idle and iowait, and
// guest time (already inside user) is not counted twice.
func TestParseHostTicks(t *testing.T) {
	t.Parallel()
	h := parseHostTicks("cpu  46531 7 12752 56152 2063 5 2008 1222 300 0")
	if want := (hostTicks{busy: 46531 + 7 + 12752 + 5 + 2008 + 1222, total: 46531 + 7 + 12752 + 56152 + 2063 + 5 + 2008 + 1222}); h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	if h := parseHostTicks("cpu0 1 2 3 4 5"); h != (hostTicks{}) {
		t.Fatalf("a per-core line read as the machine's: %+v", h)
	}
	if h := readHostTicks(); h.total == 0 || h.busy > h.total {
		t.Fatalf("this machine's /proc/stat read as %+v", h)
	}
}

func TestProcGroupAndShareText(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{"worker-1-round2": "worker", "sender-reply-2": "sender", "ingest": "ingest",
		"postgres-backends": "postgres", "nats": "nats"} {
		if got := procGroup(name); got != want {
			t.Errorf("procGroup(%q) = %q, want %q", name, got, want)
		}
	}
	c := CPUShare{PerUnitUS: map[string]float64{"worker": 50, "postgres": 110.4, "nats": 12, "bench": 0.2}, HostBusy: 0.96, Cores: 2}
	if got, want := c.String(), "postgres 110, worker 50, nats 12 µs"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := cpuText(c); got != "173 µs (96 %)" {
		t.Errorf("cpuText = %q", got)
	}
}

// why is the "why each MISS" block of r's table, empty when there is none.
func why(t *testing.T, r *Result) string {
	t.Helper()
	var sb strings.Builder
	if err := r.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(sb.String(), "why each MISS")
	return after
}

// A worker MISS says where the drain's CPU went against the COPY's and,
// with the cores busy, the best ratio that CPU per event allows.
func TestWhyWorker(t *testing.T) {
	t.Parallel()
	wk := WorkerResult{Events: 30000, Loops: 2, EventsPerSec: 8000, CeilingEventsPerSec: 20000, Ratio: 0.40,
		DrainCPU:   CPUShare{PerUnitUS: map[string]float64{"postgres": 110, "worker": 50, "nats": 12, "bench": 3}, HostBusy: 0.96, Cores: 2},
		CeilingCPU: CPUShare{PerUnitUS: map[string]float64{"postgres": 55, "bench": 5}, HostBusy: 0.55, Cores: 2}}
	got := why(t, &Result{Ran: []string{"worker"}, Worker: wk})
	for _, want := range []string{"the worker at 0.40 of COPY", "175 µs of CPU per event (postgres 110, worker 50, nats 12, bench 3 µs)",
		"COPY's 60 µs", "2.92× as much", "Postgres alone 2.00×", "96 % busy (the COPY: 55 %)",
		"at most 0.57 of the COPY's rate"} { // 2 cores / 175 µs = 11,429 events/s against 20,000
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	wk.DrainCPU.HostBusy = 0.5
	if got := why(t, &Result{Ran: []string{"worker"}, Worker: wk}); strings.Contains(got, "bound by the cores") {
		t.Errorf("a drain with idle cores called CPU-bound:\n%s", got)
	}
	wk.Ratio = 0.65
	if got := why(t, &Result{Ran: []string{"worker"}, Worker: wk}); got != "" {
		t.Errorf("a PASS explained:\n%s", got)
	}
}

// A content MISS gives both sides' rates and any wrong digest; a PASS
// says nothing.
func TestWhyContent(t *testing.T) {
	t.Parallel()
	c := ContentResult{Files: 8, FileMiB: 50, InFlight: 4, StoredMBps: 69, RawMBps: 168, Ratio: 69.0 / 168}
	got := why(t, &Result{Ran: []string{"content"}, Content: c})
	for _, want := range []string{"content at 0.41 of a raw GET→put, 0 stored with a wrong digest", "stored 69 MB/s against the raw copy's 168 MB/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	c.StoredMBps, c.Ratio = 160, 160.0/168
	if got := why(t, &Result{Ran: []string{"content"}, Content: c}); got != "" {
		t.Errorf("a PASS explained:\n%s", got)
	}
	c.Wrong = 1
	if got := why(t, &Result{Ran: []string{"content"}, Content: c}); !strings.Contains(got, "1 stored with a wrong digest") {
		t.Errorf("a wrong digest not explained:\n%s", got)
	}
}

// Over the limit at the emulator: paced sends that arrived bunched are
// told apart from senders that started too many.
func TestWhyBusiestSecond(t *testing.T) {
	t.Parallel()
	d := LimitedDrain{Replicas: 1, Rows: 30000, Limit: 2000, PerSec: 1924, MaxPerSecond: 2085, StartedPerSecond: 1942,
		CPU: CPUShare{HostBusy: 0.97, Cores: 2}}
	got := why(t, &Result{Ran: []string{"sender"}, Sender: SenderResult{Limited: d}})
	if !strings.Contains(got, "one sender: 2085 calls within one second at the emulator") || !strings.Contains(got, "started at most 1942") ||
		!strings.Contains(got, "bunched") || strings.Contains(got, "of the limit (") {
		t.Errorf("want the bunching explained and no rate line:\n%s", got)
	}
	d.StartedPerSecond = 2050
	if got := why(t, &Result{Ran: []string{"sender2"}, Sender2: d}); !strings.Contains(got, "two senders") || !strings.Contains(got, "started 2050 within one second: their pacing let them") {
		t.Errorf("want the senders' own pacing blamed:\n%s", got)
	}
	d.MaxPerSecond, d.PerSec, d.SlotsPerSec, d.Moved = 1950, 1800, 2000/1.04, 450
	if got := why(t, &Result{Ran: []string{"sender2"}, Sender2: d}); !strings.Contains(got, "two senders at 0.90 of the limit") ||
		!strings.Contains(got, "its slots allow 1923/s (0.962 of the limit), of which it used 0.936, 450 of 30000 rows moved") || strings.Contains(got, "bunched") {
		t.Errorf("want only the rate explained, against the slots:\n%s", got)
	}
}

// Ingest's miss compares CPU per request at each server's best loop; the
// reply's names each step of the path and the host's load.
func TestWhyIngestAndReply(t *testing.T) {
	t.Parallel()
	busy := func(b float64, m map[string]float64) CPUShare { return CPUShare{PerUnitUS: m, HostBusy: b, Cores: 2} }
	in := IngestResult{PeakReqPerSec: 5000, CeilingReqPerSec: 10500, Ratio: 5000.0 / 10500,
		Peaks: []IngestPeak{
			{Concurrency: 32, PeakReqPerSec: 4000, CeilingReqPerSec: 10500,
				PeakCPU: busy(0.9, map[string]float64{"ingest": 1}), CeilingCPU: busy(0.95, map[string]float64{"noop": 60, "bench": 40})},
			{Concurrency: 128, PeakReqPerSec: 5000, CeilingReqPerSec: 10000,
				PeakCPU: busy(0.97, map[string]float64{"ingest": 120, "nats": 40, "bench": 40}), CeilingCPU: busy(0.9, nil)}},
		HalfRate: 2500, HalfLatency: loadgen.LatencySummary{P99: 30 * time.Millisecond}, HalfCPU: busy(0.7, map[string]float64{"ingest": 100})}
	got := why(t, &Result{Ran: []string{"ingest"}, Ingest: in})
	for _, want := range []string{"ingest at 0.48 of the no-op server", "200 µs of CPU per webhook (ingest 120, bench 40, nats 40 µs)",
		"no-op side's 100 µs", "Both were bound by the cores, so the rates follow CPU per request: 0.50.",
		"ingest p99 30.0 ms at 2500 req/s: the host's cores were 70 % busy"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Inside ingest") {
		t.Errorf("a tail explained without ingest's metrics:\n%s", got)
	}
	// With ingest's own histograms the line says where the tail was spent.
	for _, c := range []struct {
		tail IngestTail
		want string
	}{
		{IngestTail{Edge: 16 * time.Millisecond, Handled: 0.004, Acked: 0.003},
			"0.40 % of webhooks took over 16.0 ms to answer, 0.30 % waited that long for JetStream's ack; fewer than the 1 % behind a p99, so most of that wait was outside ingest's handler"},
		{IngestTail{Edge: 16 * time.Millisecond, Handled: 0.02, Acked: 0.015}, "as many as the 1 % behind a p99, most of them waiting for JetStream's ack"},
		{IngestTail{Edge: 16 * time.Millisecond, Handled: 0.02, Acked: 0.002}, "most of them not in the wait for JetStream's ack"},
	} {
		in.HalfTail = &c.tail
		if got := why(t, &Result{Ran: []string{"ingest"}, Ingest: in}); !strings.Contains(got, "Inside ingest (its /metrics), ") ||
			!strings.Contains(got, c.want) {
			t.Errorf("tail %+v: lacks %q:\n%s", c.tail, c.want, got)
		}
	}

	e := E2EResult{Rate: 1000, ToReply: loadgen.LatencySummary{Count: 10000, P99: 400 * time.Millisecond},
		ToRow: loadgen.LatencySummary{P99: 216 * time.Millisecond}, Path: ReplyPath{ClaimedP99: 120, SlotP99: 1, CompletionP99: 46},
		CPU: busy(0.95, map[string]float64{"postgres": 300, "sender": 150})}
	got = why(t, &Result{Ran: []string{"reply"}, Reply: e})
	for _, want := range []string{"replies at 1000/s, p99 400.0 ms (0 missing)", "webhook → events row p99 216.0 ms",
		"row → claimed p99 120.0 ms", "slot → completion 46.0 ms", "95 % busy", "CPU per webhook 450 µs"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
}
