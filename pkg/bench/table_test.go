package bench

import (
	"strings"
	"testing"
)

// The River lines compare only when both stages ran, and fall back to the
// processes' CPU alone when either side's Postgres backends were unread.
func TestTableRiverLines(t *testing.T) {
	t.Parallel()
	sn := SenderResult{Rows: 10000, UnlimitedPerSec: 3000, UnlimitedCPUPerSend: 0.100, UnlimitedPGPerSend: 0.050}
	rv := &RiverResult{Jobs: 10000, PerSec: 2000, CPUPerJob: 0.200, PGPerJob: 0.100}
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
	out := table(&Result{Ran: []string{"sender", "river"}, Sender: sn, River: rv})
	for _, want := range []string{"sender push/s vs River, limits off (10000 rows)", "2000 River", "1.50", "> 1",
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
	out = table(&Result{Ran: []string{"sender", "river"}, Sender: sn, River: &rv2})
	if !strings.Contains(out, "process only (backends unread)") || !strings.Contains(out, "0.100 ms") || strings.Count(out, "MISS") != 1 {
		t.Errorf("want process-only CPU (a PASS) and a MISS on the rate:\n%s", out)
	}

	out = table(&Result{Ran: []string{"river"}, River: rv})
	if !strings.Contains(out, "River jobs/s, limits off (10000 jobs)") || strings.Contains(out, "vs River") {
		t.Errorf("river alone should print River's rate without a comparison:\n%s", out)
	}
}
