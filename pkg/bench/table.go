package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Targets are the bars the run is judged against.
const (
	TargetIngestRatio = 0.50
	TargetIngestP99   = 25 * time.Millisecond
	TargetWorkerRatio = 0.60
	TargetSenderRatio = 0.95
	TargetRiverRatio  = 1.0 // sender push/s over River's jobs/s, to beat
	TargetReplyP99    = 100 * time.Millisecond
	TargetFairP99     = time.Second
	TargetClaimRatio  = 2.0
	TargetRSSKiB      = 64 * 1024
	LINEPushLimit     = 2000
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// The verdicts, each used by its table line and by writeWhy.

func (c ClaimResult) ok() bool        { return c.Ratio > 0 && c.Ratio <= TargetClaimRatio }
func (in IngestResult) ratioOK() bool { return in.Ratio >= TargetIngestRatio }
func (in IngestResult) halfOK() bool  { return in.HalfLatency.P99 < TargetIngestP99 }
func (wk WorkerResult) ok() bool      { return wk.Ratio >= TargetWorkerRatio }
func (e E2EResult) replyOK() bool {
	return e.ToReply.Count > 0 && e.ToReply.P99 < TargetReplyP99 && e.Missing == 0
}
func rssOK(kib int64) bool { return kib > 0 && kib < TargetRSSKiB }

// rateRatio is the sender's push rate over River's (medians).
func (rv *RiverResult) rateRatio() float64 { return rv.Sender.PerSec / rv.PerSec }
func (rv *RiverResult) rateOK() bool {
	return rv.rateRatio() > TargetRiverRatio && rv.Sender.NotCompleted == 0 && rv.NotCompleted == 0
}

// cpu is the two sides' CPU per send in ms, each process with the
// Postgres backends serving it when both sides' backends could be read,
// else the processes alone, and which of the two it is.
func (rv *RiverResult) cpu() (what string, lp, rp float64) {
	sn := rv.Sender
	if sn.PGPerSend <= 0 || rv.PGPerJob <= 0 {
		return "CPU per send vs River, process only (backends unread)", sn.CPUPerSend, rv.CPUPerJob
	}
	return "CPU per send vs River, process + its Postgres backends", sn.CPUPerSend + sn.PGPerSend, rv.CPUPerJob + rv.PGPerJob
}
func (rv *RiverResult) cpuOK() bool { _, lp, rp := rv.cpu(); return lp/rp < 1 }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *Result) ran(stage string) bool { return slices.Contains(r.Ran, stage) }

// linepipeServices are the processes the memory target applies to.
var linepipeServices = map[string]bool{"ingest": true, "worker": true, "sender": true}

// WriteTable prints the run as one aligned table: each measurement of the
// stages that ran, its same-run reference, the ratio, the target and the
// verdict.
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
	row("measure", "linepipe", "reference (same run)", "ratio", "target", "")
	if in := r.Ingest; r.ran("ingest") {
		row("ingest webhooks/s (peak, closed loop)", fmt.Sprintf("%.0f", in.PeakReqPerSec),
			fmt.Sprintf("%.0f no-op HTTP", in.CeilingReqPerSec), fmt.Sprintf("%.2f", in.Ratio), "≥ 0.50", verdict(in.ratioOK()))
		for _, pk := range in.Peaks {
			row(fmt.Sprintf("  closed loop of %d connections", pk.Concurrency), fmt.Sprintf("%.0f", pk.PeakReqPerSec),
				fmt.Sprintf("%.0f no-op HTTP", pk.CeilingReqPerSec), fmt.Sprintf("%.2f", pk.PeakReqPerSec/max(pk.CeilingReqPerSec, 1)), "", "")
		}
		if pk, ck, ok := in.peakLoops(); ok {
			row("  CPU per webhook at each one's best loop (host busy)", cpuText(pk.PeakCPU),
				cpuText(ck.CeilingCPU)+" no-op", ratioText(pk.PeakCPU.Total(), ck.CeilingCPU.Total()), "", "")
		}
		row(fmt.Sprintf("ingest p50 / p99 at %.0f req/s", in.HalfRate), ms(in.HalfLatency.P50)+" / "+ms(in.HalfLatency.P99),
			fmt.Sprintf("%d non-2xx, %d dropped", in.HalfNon2xx, in.HalfDropped), "", "p99 < 25 ms", verdict(in.halfOK()))
	}
	if wk := r.Worker; r.ran("worker") {
		row(fmt.Sprintf("worker events/s (%d events, %d loops)", wk.Events, wk.Loops), fmt.Sprintf("%.0f", wk.EventsPerSec),
			fmt.Sprintf("%.0f raw COPY", wk.CeilingEventsPerSec), fmt.Sprintf("%.2f", wk.Ratio), "≥ 0.60", verdict(wk.ok()))
		row("  same rows, one INSERT per row, pipelined", fmt.Sprintf("%.0f", wk.RowwiseEventsPerSec),
			fmt.Sprintf("%.0f raw COPY", wk.CeilingEventsPerSec), fmt.Sprintf("%.2f", wk.RowwiseEventsPerSec/wk.CeilingEventsPerSec), "", "")
		if wk.DrainCPU.Total() > 0 {
			row("  CPU per event, drain (host busy)", cpuText(wk.DrainCPU), cpuText(wk.CeilingCPU)+" COPY",
				ratioText(wk.DrainCPU.Total(), wk.CeilingCPU.Total()), "", "")
		}
	}
	if sn := r.Sender; r.ran("sender") {
		row(fmt.Sprintf("sender push/s, limits off (%d rows)", sn.Rows), fmt.Sprintf("%.0f", sn.UnlimitedPerSec),
			fmt.Sprintf("%d not delivered", sn.UnlimitedFailures), "", "", "")
		row("  sender CPU per push, limits off", fmt.Sprintf("%.3f ms", sn.UnlimitedCPUPerSend),
			"user + system, start-up included", "", "", "")
		limitedRows(row, "one sender", sn.Limited)
	}
	if r.ran("river") && r.River != nil {
		riverRows(row, r.River)
	}
	if r.ran("sender2") {
		limitedRows(row, "two senders", r.Sender2)
	}
	if f := r.Fairness; r.ran("fairness") {
		row(fmt.Sprintf("insert → accepted p50 / p99 while A drains %d pushes", f.Backlog), ms(f.All.P50)+" / "+ms(f.All.P99),
			fmt.Sprintf("%d missing, %d of A left at end", f.Missing, f.BacklogLeft), "", "p99 < 1 s", verdict(f.OK()))
		row(fmt.Sprintf("  channel B pushes (%d, %.0f/s)", f.PushesB, f.Rate), ms(f.PushB.P50)+" / "+ms(f.PushB.P99), "", "", "", "")
		row(fmt.Sprintf("  channel A replies (%d, %.0f/s)", f.RepliesA, f.Rate), ms(f.ReplyA.P50)+" / "+ms(f.ReplyA.P99), "", "", "", "")
	}
	if c := r.Claim; r.ran("claim") {
		row(fmt.Sprintf("claim statements at %d queued rows (EXPLAIN ANALYZE)", c.LargeRows), fmt.Sprintf("%.2f ms, %d pages", c.LargeMS, c.LargePages),
			fmt.Sprintf("%.2f ms, %d pages at %d", c.SmallMS, c.SmallPages, c.SmallRows), fmt.Sprintf("%.2f", c.Ratio), "≤ 2×",
			verdict(c.ok()))
	}
	if e := r.E2E; r.ran("e2e") {
		row(fmt.Sprintf("webhook → events row p50 / p99 at %.0f/s", e.Rate), ms(e.ToRow.P50)+" / "+ms(e.ToRow.P99),
			fmt.Sprintf("%d webhooks, %.0f ms poll", e.Webhooks, e.PollMS), "", "", "")
		row("webhook → echo reply at LINE p50 / p99", ms(e.ToReply.P50)+" / "+ms(e.ToReply.P99),
			fmt.Sprintf("%d missing", e.Missing), "", "", "")
		warmupRow(row, e)
	}
	if e := r.Reply; r.ran("reply") {
		workers := fmt.Sprintf("%d workers", e.Workers)
		if e.WorkerLoops > 0 {
			unit := "loops"
			if e.WorkerLoops == 1 {
				unit = "loop"
			}
			workers += fmt.Sprintf(" × %d %s", e.WorkerLoops, unit)
		}
		row(fmt.Sprintf("webhook → echo reply p50 / p99 at %.0f/s, %s + %d senders", e.Rate, workers, e.Senders),
			ms(e.ToReply.P50)+" / "+ms(e.ToReply.P99),
			fmt.Sprintf("%d of %d missing (%.0f/s sent)", e.Missing, e.Webhooks, e.AchievedRate), "", "p99 < 100 ms, none missing",
			verdict(e.replyOK()))
		row("  webhook → events row p50 / p99", ms(e.ToRow.P50)+" / "+ms(e.ToRow.P99), fmt.Sprintf("%.0f ms poll", e.PollMS), "", "", "")
		warmupRow(row, e)
	}
	if r.ran("content") {
		r.contentTableRows(row)
	}
	if r.ran("durability") {
		durabilityRows(r.Durability, row)
	}
	for _, n := range slices.Sorted(maps.Keys(r.PeakRSS)) {
		kib := r.PeakRSS[n]
		target, v := "", ""
		if linepipeServices[n] {
			target, v = "< 64 MiB", verdict(rssOK(kib))
		}
		ref := "VmHWM, any process of it"
		if st := r.PeakRSSStage[n]; st != "" {
			ref += ", in " + st
		}
		row("peak RSS "+n, fmt.Sprintf("%.1f MiB", float64(kib)/1024), ref, "", target, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return r.writeWhy(w)
}

// riverRows puts River beside linepipe's sender on the same job, each
// the median of the river stage's alternating drains: push rate (both at
// the emulator, first to last accepted send) and CPU per send, each
// process with the Postgres backends serving it when both sides'
// backends could be read, else the processes alone.
func riverRows(row func(...string), rv *RiverResult) {
	sn := rv.Sender
	row(fmt.Sprintf("sender push/s vs River, limits off (%d rows, median of %d)", rv.Jobs, len(rv.Rounds)/2), fmt.Sprintf("%.0f", sn.PerSec),
		fmt.Sprintf("%.0f River", rv.PerSec), fmt.Sprintf("%.2f", rv.rateRatio()), "> 1", verdict(rv.rateOK()))
	what, lp, rp := rv.cpu()
	row(what, fmt.Sprintf("%.3f ms", lp), fmt.Sprintf("%.3f ms River", rp), fmt.Sprintf("%.2f", lp/rp), "< 1", verdict(rv.cpuOK()))
	row("  process / Postgres backends", fmt.Sprintf("%.3f / %.3f ms", sn.CPUPerSend, sn.PGPerSend),
		fmt.Sprintf("%.3f / %.3f ms River", rv.CPUPerJob, rv.PGPerJob), "", "", "")
}

func limitedRows(row func(...string), who string, d LimitedDrain) {
	row(fmt.Sprintf("%s push/s, LINE limit (%d rows)", who, d.Rows), fmt.Sprintf("%.0f", d.PerSec),
		fmt.Sprintf("%d/s limit", d.Limit), fmt.Sprintf("%.2f", d.Ratio()), "≥ 0.95", verdict(d.rateOK()))
	row("  busiest 1 s at emulator / 429s", fmt.Sprintf("%d / %d", d.MaxPerSecond, d.TooMany),
		fmt.Sprintf("%d/s limit", d.Limit), "", "≤ limit, 0 × 429", verdict(d.windowOK()))
	if d.StartedPerSecond > 0 {
		row("  busiest 1 s as the senders started them", fmt.Sprintf("%d", d.StartedPerSecond), "api_log.called_at", "", "", "")
	}
}

// cpuText is a CPUShare's total per unit with the host's busy share:
// "172 µs (96 %)".
func cpuText(c CPUShare) string {
	return fmt.Sprintf("%.0f µs (%.0f %%)", c.Total(), 100*c.HostBusy)
}

// ratioText is a/b to two places, empty when b is not positive.
func ratioText(a, b float64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", a/b)
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// warmupRow reports the replies to the warm-up's webhooks: the services'
// first second under load, not counted in the timed line above it.
func warmupRow(row func(...string), e E2EResult) {
	if e.WarmupWebhooks == 0 {
		return
	}
	row(fmt.Sprintf("  warm-up: reply p50 / p99 of the first %.0f s (%d webhooks, not counted)", e.WarmupSeconds, e.WarmupWebhooks),
		ms(e.WarmupToReply.P50)+" / "+ms(e.WarmupToReply.P99), "services just started", "", "", "")
}
