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

// The worker stage's ratio is the median of the rounds' own ratios, each
// drain against the COPY that followed it, not a ratio of medians taken
// from different rounds; the rounds are kept.
func TestMedianWorker(t *testing.T) {
	t.Parallel()
	rs := []WorkerResult{
		{Events: 30000, EventsPerSec: 10000, CeilingEventsPerSec: 20000, Ratio: 0.50},
		{Events: 30000, EventsPerSec: 20000, CeilingEventsPerSec: 50000, Ratio: 0.40},
		{Events: 30000, EventsPerSec: 15000, CeilingEventsPerSec: 25000, Ratio: 0.60},
	}
	m := medianWorker(rs)
	if m.Ratio != 0.50 || m.EventsPerSec != 15000 || m.CeilingEventsPerSec != 25000 || m.Events != 30000 || len(m.Rounds) != 3 {
		t.Fatalf("median %+v", m)
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
