package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints the run and the audit, one check per line.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	check := func(name string, v any, ok bool) {
		mark := "ok"
		if !ok {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\n", name, v, mark)
	}
	info := func(name string, v any) { fmt.Fprintf(tw, "%s\t%v\t\n", name, v) }
	a, l := r.Audit, r.Load
	mode := "single NATS server"
	if r.Cluster {
		mode = "3-node NATS cluster, stream replicas 3"
	}
	info("topology", "2 x ingest (round-robin proxy), 2 x worker, 2 x sender; "+mode)
	info("faults injected", len(r.Faults))
	if l != nil {
		info("webhooks sent / accepted / failed", fmt.Sprintf("%d / %d / %d", l.Webhooks, l.WebhooksAccepted, l.WebhooksFailed))
		info("attempts / redeliveries", fmt.Sprintf("%d / %d", l.Requests, l.Redeliveries))
		info("status counts", statusLine(l.Status))
	}
	check("drained, counted from the last fault", fmt.Sprintf("%.1fs", r.DrainSeconds), r.Drained)
	check("acknowledged events stored", fmt.Sprintf("%d of %d", a.EventsAccepted-a.EventsLost, a.EventsAccepted), a.EventsLost == 0)
	check("events stored twice", a.EventsDuplicated, a.EventsDuplicated == 0)
	info("dead letters", a.DeadLetters)
	check("messages the worker consumer still owes", a.ConsumerOpen, a.ConsumerOpen == 0)
	check("messages left on the stream after ack", a.StreamLeft, a.StreamLeft == 0)
	check("left messages whose event is not stored", a.StreamUnstored, a.StreamUnstored == 0)
	if a.StreamLeft > 0 {
		info("unsent texts in messages left on the stream", a.StreamUnsent)
	}
	check("outbox rows not terminal", fmt.Sprintf("%d of %d", a.OutboxOpen, a.OutboxRows), a.OutboxOpen == 0)
	check("committed pushes missing from outbox", a.OutboxPushesLost, a.OutboxPushesLost == 0)
	check("outbox rows failed (none is invalid or refused)", a.OutboxFailed, a.OutboxFailed == 0)
	check("delivered rows LINE never accepted", a.DeliveredMissing, a.DeliveredMissing == 0)
	check("retry keys LINE accepted twice", a.DeliveredTwice, a.DeliveredTwice == 0)
	check("reply tokens used twice", a.RepliesTwice, a.RepliesTwice == 0)
	rp := a.Replies
	check("echo replies accepted by LINE", fmt.Sprintf("%d of %d", rp.Accepted, rp.Expected), rp.Expected > 0)
	info("  replies uncertain (documented: may be lost)", rp.Uncertain)
	check("  replies lost", fmt.Sprintf("%d %s", rp.Lost, statusLine(intMap(rp.LostStatus))), rp.Lost == 0)
	check("  reply calls after the token expired", rp.Late, rp.Late == 0)
	info("  reply calls LINE refused (retries after no answer or a 5xx)", rp.Refused)
	check("accepted sends matching no outbox row", a.UnknownDeliveries, a.UnknownDeliveries == 0)
	info("sends LINE accepted", a.Accepted)
	info("emulator answers", statusLine(a.EmulatorAnswers))
	info("outbox by endpoint/status", statusLine(intMap(a.OutboxByStatus)))
	if len(a.Misrecorded) > 0 {
		info("accepted by LINE but recorded as", statusLine(intMap(a.Misrecorded)))
	}
	check(fmt.Sprintf("unsent texts readable (%d checked)", a.UnsentChecked), leakLine(a.UnsentLeaks), len(a.UnsentLeaks) == 0)
	r.Audit.Content.writeChecks(check, info)
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	info("verdict", verdict)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfaults:")
	for _, f := range r.Faults {
		fmt.Fprintln(w, "  "+f)
	}
	return nil
}

func leakLine(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func intMap(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

func statusLine(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
