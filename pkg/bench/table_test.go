package bench

import (
	"strings"
	"testing"
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
