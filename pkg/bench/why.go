package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// cpuBound is the share of the host's cores above which a phase counts as
// bound by them: the rest is interrupts, the kernel's own threads and
// moments between requests.
const cpuBound = 0.85

// peakLoops is the ingest loop that gave ingest's peak and the one that
// gave the no-op server's, in the reported round; ok is false when the
// round's loops carry no CPU readings.
func (in IngestResult) peakLoops() (ing, noop IngestPeak, ok bool) {
	var fi, fn bool
	for _, p := range in.Peaks {
		if !fi && p.PeakReqPerSec == in.PeakReqPerSec {
			ing, fi = p, true
		}
		if !fn && p.CeilingReqPerSec == in.CeilingReqPerSec {
			noop, fn = p, true
		}
	}
	return ing, noop, fi && fn && ing.PeakCPU.Total() > 0 && noop.CeilingCPU.Total() > 0
}

// writeWhy prints, under the table, one line for each MISS saying why,
// from the same run's numbers: where the CPU went per unit of work, how
// busy the host's cores were, and the steps of a path.
func (r *Result) writeWhy(w io.Writer) error {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }

	if in := r.Ingest; r.ran("ingest") {
		if !in.ratioOK() {
			if pk, ck, ok := in.peakLoops(); ok {
				p, c := pk.PeakCPU, ck.CeilingCPU
				add("ingest at %.2f of the no-op server: at their best loops ingest's side used %.0f µs of CPU per webhook (%s) against the no-op side's %.0f µs (%s), the host's cores %.0f %% and %.0f %% busy.%s",
					in.Ratio, p.Total(), p, c.Total(), c, 100*p.HostBusy, 100*c.HostBusy,
					boundBoth(p, c, " Both were bound by the cores, so the rates follow CPU per request: %.2f.", c.Total()/p.Total()))
			} else {
				add("ingest at %.2f of the no-op server (no CPU readings in this round).", in.Ratio)
			}
		}
		if !in.halfOK() {
			line := fmt.Sprintf("ingest p99 %s at %.0f req/s: the host's cores were %s busy through that run (CPU per webhook %s).",
				ms(in.HalfLatency.P99), in.HalfRate, pct(in.HalfCPU.HostBusy), in.HalfCPU)
			if t := in.HalfTail; t != nil {
				line += fmt.Sprintf(" Inside ingest (its /metrics), %s; %s.", t, t.where())
			}
			add("%s", line)
		}
	}
	if wk := r.Worker; r.ran("worker") && !wk.ok() {
		d, c := wk.DrainCPU, wk.CeilingCPU
		if d.Total() > 0 && c.Total() > 0 {
			line := fmt.Sprintf("the worker at %.2f of COPY: its drain used %.0f µs of CPU per event (%s) against the COPY's %.0f µs (%s), %.2f× as much (Postgres alone %s), the host's cores %s busy (the COPY: %s).",
				wk.Ratio, d.Total(), d, c.Total(), c, d.Total()/c.Total(), ratioOr(d.of("postgres"), c.of("postgres")), pct(d.HostBusy), pct(c.HostBusy))
			if d.HostBusy >= cpuBound && wk.CeilingEventsPerSec > 0 {
				best := float64(d.Cores) * 1e6 / d.Total() / wk.CeilingEventsPerSec
				line += fmt.Sprintf(" The drain was bound by the cores: with every core busy, that much CPU per event allows at most %.2f of the COPY's rate.", best)
			}
			add("%s", line)
		} else {
			add("the worker at %.2f of COPY (no CPU readings).", wk.Ratio)
		}
	}
	if r.ran("sender") {
		limitedWhy(add, "one sender", r.Sender.Limited)
	}
	if rv := r.River; r.ran("river") && rv != nil && !(rv.rateOK() && rv.cpuOK()) {
		_, lp, rp := rv.cpu()
		add("the River comparison: push/s %.2f of River's and CPU per send %.2f× River's (medians); round by round the rates were %s.",
			rv.rateRatio(), lp/rp, riverRoundRatios(rv.Rounds))
	}
	if r.ran("sender2") {
		limitedWhy(add, "two senders", r.Sender2)
	}
	if f := r.Fairness; r.ran("fairness") && !f.OK() {
		add("fairness: p99 %s, %d missing, %d of A's backlog left when the trickle ended (the measure needs it above zero); the progress log's fairness lines have each kind's timings.",
			ms(f.All.P99), f.Missing, f.BacklogLeft)
	}
	if c := r.Claim; r.ran("claim") && !c.ok() {
		add("the claim at %.2f× its cost at %d rows: %d pages read against %d; both plans are in the progress log.",
			c.Ratio, c.SmallRows, c.LargePages, c.SmallPages)
	}
	if e := r.Reply; r.ran("reply") && !e.replyOK() {
		add("replies at %.0f/s, p99 %s (%d missing): webhook → events row p99 %s, then row → claimed p99 %.1f ms, claimed → slot %.1f ms, slot → completion %.1f ms; the host's cores %s busy through the load, CPU per webhook %.0f µs (%s).",
			e.Rate, ms(e.ToReply.P99), e.Missing, ms(e.ToRow.P99), e.Path.ClaimedP99, e.Path.SlotP99, e.Path.CompletionP99,
			pct(e.CPU.HostBusy), e.CPU.Total(), e.CPU)
		if e.Failures.Count > 0 {
			add("replies at %.0f/s: %s.", e.Rate, &e.Failures)
		}
	}
	if c := r.Content; r.ran("content") && c.Files > 0 && !c.ok() {
		add("content at %.2f of a raw GET→put, %d stored with a wrong digest: the fetcher stored %.0f MB/s against the raw copy's %.0f MB/s. Both write every byte into NATS's store, fsynced, each after a sync(2), so a disk slowed by other writes slows the side it meets; the progress log's content stage line gives the CPU.",
			c.Ratio, c.Wrong, c.StoredMBps, c.RawMBps)
	}
	for _, n := range slices.Sorted(maps.Keys(r.PeakRSS)) {
		if kib := r.PeakRSS[n]; linepipeServices[n] && !rssOK(kib) {
			add("peak RSS of %s %.1f MiB, reached in the %s stage.", n, float64(kib)/1024, r.PeakRSSStage[n])
		}
	}
	if len(lines) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("\nwhy each MISS (this run's numbers):\n")
	for _, l := range lines {
		sb.WriteString("- " + l + "\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// limitedWhy explains a drain at LINE's push limit that missed: its rate
// against the host's load, and a busiest second over the limit against
// the busiest second of the same calls as the senders started them.
func limitedWhy(add func(string, ...any), who string, d LimitedDrain) {
	if !d.rateOK() {
		slots := ""
		if d.SlotsPerSec > 0 {
			slots = fmt.Sprintf(" its slots allow %.0f/s (%.3f of the limit), of which it used %.3f, %d of %d rows moved to later slots by a claim's shift or a fresh slot;",
				d.SlotsPerSec, d.SlotsPerSec/float64(max(d.Limit, 1)), d.PerSec/d.SlotsPerSec, d.Moved, d.Rows)
		}
		add("%s at %.2f of the limit (%d not delivered):%s CPU per push %.0f µs (%s), the host's cores %s busy.",
			who, d.Ratio(), d.NotDelivered, slots, d.CPU.Total(), d.CPU, pct(d.CPU.HostBusy))
	}
	if !d.windowOK() {
		switch {
		case d.StartedPerSecond > d.Limit:
			add("%s: %d calls within one second at the emulator (%d × 429), and the senders themselves started %d within one second: their pacing let them.",
				who, d.MaxPerSecond, d.TooMany, d.StartedPerSecond)
		case d.StartedPerSecond > 0:
			add("%s: %d calls within one second at the emulator (%d × 429), though the senders started at most %d in any second (api_log.called_at): paced calls reached the emulator's host bunched (the emulator times a call by the kernel's receive time of its bytes, so the bunching lay between the senders' clock reading and the wire), the host's cores %s busy.",
				who, d.MaxPerSecond, d.TooMany, d.StartedPerSecond, pct(d.CPU.HostBusy))
		default:
			add("%s: %d calls within one second at the emulator (%d × 429); the senders' own record was not read.", who, d.MaxPerSecond, d.TooMany)
		}
	}
}

// boundBoth is format with args when both phases kept the host's cores
// at least cpuBound busy, else empty.
func boundBoth(a, b CPUShare, format string, args ...any) string {
	if a.HostBusy < cpuBound || b.HostBusy < cpuBound {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

// riverRoundRatios pairs the river stage's alternating drains (linepipe's
// sender, then River) into "0.95, 1.00, 0.89".
func riverRoundRatios(rs []RiverRound) string {
	var parts []string
	for i := 0; i+1 < len(rs); i += 2 {
		s, r := rs[i], rs[i+1]
		if s.Who == "sender" && r.Who == "river" && r.PerSec > 0 {
			parts = append(parts, fmt.Sprintf("%.2f", s.PerSec/r.PerSec))
		}
	}
	if len(parts) == 0 {
		return "not recorded"
	}
	return strings.Join(parts, ", ")
}

func pct(f float64) string { return fmt.Sprintf("%.0f %%", 100*f) }

// ratioOr is a/b as "1.93×", or "unread" without b.
func ratioOr(a, b float64) string {
	if b <= 0 {
		return "unread"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
