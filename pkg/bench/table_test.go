package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/loadgen"
)

// The River lines compare the medians of the river stage's own drains of
// both sides, and fall back to the processes' CPU alone when either
// side's Postgres backends were unread.
func TestTableRiverLines(t *testing.T) {
	t.Parallel()
	sn := RiverRound{Who: "sender", PerSec: 3000, CPUPerSend: 0.100, PGPerSend: 0.050}
	rv := &RiverResult{Jobs: 10000, PerSec: 2000, CPUPerJob: 0.200, PGPerJob: 0.100, Sender: sn,
		Rounds: make([]RiverRound, 6)}
	// table is the River lines of r's table.
	table := func(r *Result) string {
		var sb strings.Builder
		if err := r.WriteTable(&sb); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(sb.String(), "\n") {
			if strings.Contains(l, "River") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	out := table(&Result{Ran: []string{"river"}, River: rv})
	for _, want := range []string{"sender push/s vs River, limits off (10000 rows, median of 3)", "2000 River", "1.50", "> 1",
		"CPU per send vs River, process + its Postgres backends", "0.150 ms", "0.300 ms River", "0.50",
		"0.100 / 0.050 ms", "0.200 / 0.100 ms River"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "MISS") {
		t.Errorf("faster and cheaper than River, yet a MISS:\n%s", out)
	}

	rv2 := *rv
	rv2.PGPerJob, rv2.PerSec = 0, 4000
	out = table(&Result{Ran: []string{"river"}, River: &rv2})
	if !strings.Contains(out, "process only (backends unread)") || !strings.Contains(out, "0.100 ms") || strings.Count(out, "MISS") != 1 {
		t.Errorf("want process-only CPU (a PASS) and a MISS on the rate:\n%s", out)
	}

	rv3 := *rv
	rv3.Sender.NotCompleted = 1
	if out = table(&Result{Ran: []string{"river"}, River: &rv3}); strings.Count(out, "MISS") != 1 {
		t.Errorf("a sender drain that left a row undone cannot beat River:\n%s", out)
	}
}

// Each measure's median is taken on its own; rows left undone are the
// worst round's.
func TestMedianRound(t *testing.T) {
	t.Parallel()
	m := medianRound([]RiverRound{{Who: "river", PerSec: 1, CPUPerSend: 0.3, PGPerSend: 0.2},
		{PerSec: 3, CPUPerSend: 0.1, PGPerSend: 0.3, NotCompleted: 2}, {PerSec: 2, CPUPerSend: 0.2, PGPerSend: 0.1}})
	if m.Who != "river" || m.PerSec != 2 || m.CPUPerSend != 0.2 || m.PGPerSend != 0.2 || m.NotCompleted != 2 {
		t.Fatalf("median %+v", m)
	}
}

// The worker and ingest stages report the round whose ratio is the
// median, whole, so that each line's rates agree with its ratio: never a
// ratio of medians taken from different rounds. The rounds are kept, and
// ingest's non-2xx answers are every round's.
func TestMedianRounds(t *testing.T) {
	t.Parallel()
	w := medianWorker([]WorkerResult{
		{EventsPerSec: 10000, CeilingEventsPerSec: 20000, Ratio: 0.50},
		{EventsPerSec: 20000, CeilingEventsPerSec: 50000, Ratio: 0.40},
		{EventsPerSec: 15000, CeilingEventsPerSec: 25000, Ratio: 0.60},
	})
	if w.Ratio != 0.50 || w.EventsPerSec != 10000 || w.CeilingEventsPerSec != 20000 || len(w.Rounds) != 3 {
		t.Fatalf("worker median %+v", w)
	}
	round := func(noop, ing float64, bad int64) IngestResult {
		return IngestResult{CeilingReqPerSec: noop, PeakReqPerSec: ing, Ratio: ing / noop, PeakNon2xx: bad,
			Peaks: []IngestPeak{{Concurrency: 32, CeilingReqPerSec: noop, PeakReqPerSec: ing / 2}}}
	}
	in := medianIngest([]IngestResult{round(40000, 16000, 0), round(20000, 12000, 1), round(30000, 15000, 2)})
	if in.Ratio != 0.5 || in.CeilingReqPerSec != 30000 || in.PeakReqPerSec != 15000 || in.PeakNon2xx != 3 ||
		len(in.Rounds) != 3 || in.Peaks[0].CeilingReqPerSec != 30000 {
		t.Fatalf("ingest median %+v", in)
	}
}

// The reply target is judged on the timed webhooks; the warm-up's
// replies get a line of their own and never decide the verdict, while a
// warm-up reply that never came is still a missing reply.
func TestTableReplyWarmup(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	table := func(e E2EResult) string {
		var sb strings.Builder
		if err := (&Result{Ran: []string{"reply"}, Reply: e}).WriteTable(&sb); err != nil {
			t.Fatal(err)
		}
		return sb.String()
	}
	e := E2EResult{Rate: 1000, Workers: 2, Senders: 2, Webhooks: 10000, AchievedRate: 1000,
		ToReply:       loadgen.LatencySummary{Count: 10000, P50: ms(30), P99: ms(60)},
		WarmupSeconds: 1, WarmupWebhooks: 1000,
		WarmupToReply: loadgen.LatencySummary{Count: 1000, P50: ms(50), P99: ms(400)}}
	out := table(e)
	if !strings.Contains(out, "warm-up: reply p50 / p99 of the first 1 s (1000 webhooks, not counted)") ||
		!strings.Contains(out, "400.0 ms") || strings.Contains(out, "MISS") {
		t.Errorf("want the warm-up's 400 ms on its own line and the timed 60 ms to PASS:\n%s", out)
	}
	e.Missing = 1
	if out = table(e); !strings.Contains(out, "MISS") {
		t.Errorf("a missing reply must be a MISS:\n%s", out)
	}
	e.Missing, e.ToReply.P99 = 0, ms(120)
	if out = table(e); !strings.Contains(out, "MISS") {
		t.Errorf("a timed p99 of 120 ms must be a MISS:\n%s", out)
	}
}

// A service's peak RSS line names the stage in which the peak was seen,
// so a MISS points at the load that caused it.
func TestTableRSSNamesItsStage(t *testing.T) {
	t.Parallel()
	r := &Result{PeakRSS: map[string]int64{"ingest": 101 << 10, "worker": 40 << 10},
		PeakRSSStage: map[string]string{"ingest": "reply"}}
	var sb strings.Builder
	if err := r.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(sb.String(), "\n") {
		if name, ok := strings.CutPrefix(l, "peak RSS "); ok {
			lines[strings.Fields(name)[0]] = l
		}
	}
	if l := lines["ingest"]; !strings.Contains(l, "101.0 MiB") || !strings.Contains(l, "any process of it, in reply") || !strings.Contains(l, "MISS") {
		t.Errorf("ingest's line: %q", l)
	}
	if l := lines["worker"]; !strings.Contains(l, "40.0 MiB") || strings.Contains(l, ", in ") || !strings.Contains(l, "PASS") {
		t.Errorf("worker's line, whose stage is not known: %q", l)
	}
}
