package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"
)

// Targets are the bars the run is judged against.
const (
	TargetIngestRatio = 0.50
	TargetIngestP99   = 25 * time.Millisecond
	TargetWorkerRatio = 0.70
	LINEPushLimit     = 2000
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// WriteTable prints the run as one aligned table: each measurement, its
// same-run reference, the ratio and the target.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) {
		for i, c := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	in, wk, sn, e := r.Ingest, r.Worker, r.Sender, r.E2E
	row("measure", "linepipe", "reference (same run)", "ratio", "target", "")
	row("ingest webhooks/s (peak, closed loop)", fmt.Sprintf("%.0f", in.PeakReqPerSec),
		fmt.Sprintf("%.0f no-op HTTP", in.CeilingReqPerSec), fmt.Sprintf("%.2f", in.Ratio), "≥ 0.50", verdict(in.Ratio >= TargetIngestRatio))
	row(fmt.Sprintf("ingest p50 / p99 at %.0f req/s", in.HalfRate), ms(in.HalfLatency.P50)+" / "+ms(in.HalfLatency.P99),
		fmt.Sprintf("%d non-2xx, %d dropped", in.HalfNon2xx, in.HalfDropped), "", "p99 < 25 ms", verdict(in.HalfLatency.P99 < TargetIngestP99))
	row(fmt.Sprintf("worker events/s (%d events, %d loops)", wk.Events, wk.Loops), fmt.Sprintf("%.0f", wk.EventsPerSec),
		fmt.Sprintf("%.0f raw COPY", wk.CeilingEventsPerSec), fmt.Sprintf("%.2f", wk.Ratio), "≥ 0.70", verdict(wk.Ratio >= TargetWorkerRatio))
	row("  same rows, one INSERT per row, pipelined", fmt.Sprintf("%.0f", wk.RowwiseEventsPerSec),
		fmt.Sprintf("%.0f raw COPY", wk.CeilingEventsPerSec), fmt.Sprintf("%.2f", wk.RowwiseEventsPerSec/wk.CeilingEventsPerSec), "", "")
	row(fmt.Sprintf("sender push/s, limits off (%d rows)", sn.Rows), fmt.Sprintf("%.0f", sn.UnlimitedPerSec),
		fmt.Sprintf("%d not delivered", sn.UnlimitedFailures), "", "", "")
	row(fmt.Sprintf("sender push/s, LINE limit (%d rows)", sn.LimitedRows), fmt.Sprintf("%.0f", sn.LimitedPerSec),
		fmt.Sprintf("%d/s limit", sn.Limit), fmt.Sprintf("%.2f", sn.LimitedPerSec/float64(sn.Limit)), "hold, never exceed", "")
	row("sender busiest 1 s at emulator / 429s", fmt.Sprintf("%d / %d", sn.MaxPerSecond, sn.TooMany),
		fmt.Sprintf("%d/s limit", sn.Limit), "", "≤ limit, 0 × 429", verdict(sn.MaxPerSecond <= sn.Limit && sn.TooMany == 0))
	row(fmt.Sprintf("webhook → events row p50 / p99 at %.0f/s", e.Rate), ms(e.ToRow.P50)+" / "+ms(e.ToRow.P99),
		fmt.Sprintf("%d webhooks, %.0f ms poll", e.Webhooks, e.PollMS), "", "", "")
	row(fmt.Sprintf("webhook → echo reply at LINE p50 / p99"), ms(e.ToReply.P50)+" / "+ms(e.ToReply.P99),
		fmt.Sprintf("%d missing", e.Missing), "", "", "")
	durabilityRows(r.Durability, row)
	names := make([]string, 0, len(r.PeakRSS))
	for n := range r.PeakRSS {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		row("peak RSS "+n, fmt.Sprintf("%.1f MiB", float64(r.PeakRSS[n])/1024), "VmHWM", "", "", "")
	}
	return tw.Flush()
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
