package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"
)

// Ingest's counters of the webhooks it answered 503, read around an
// end-to-end load so that a webhook that failed says why.
const (
	ingestShedSeries     = "linepipe_ingest_webhooks_shed_total"
	ingestNotAckedSeries = "linepipe_ingest_publish_failures_total"
)

// WebhookFailures is the webhooks of an end-to-end load that did not get
// a 200: what they got, when they were sent, and what ingest counted.
// Ingest answers 503 by design when INGEST_MAX_IN_FLIGHT webhooks are in
// flight or JetStream has not acknowledged within INGEST_PUBLISH_TIMEOUT
// (LINE redelivers either), so a count alone cannot tell a stall of the
// host from a fault.
type WebhookFailures struct {
	Count int `json:"count"`
	// ByOutcome counts them by answer: "HTTP <status>", or the client's
	// error ("timeout", "connection").
	ByOutcome map[string]int `json:"byOutcome,omitempty"`
	// FirstS and LastS are when the first and the last of them were
	// due, in seconds from the load's start (warm-up included).
	FirstS float64 `json:"firstS,omitempty"`
	LastS  float64 `json:"lastS,omitempty"`
	// Shed and NotAcked are ingest's own counts over the load (its
	// /metrics): 503s at the in-flight bound, and 503s for want of
	// JetStream's ack. IngestErr is set when /metrics could not be read.
	Shed      float64 `json:"ingestShed"`
	NotAcked  float64 `json:"ingestNotAcked"`
	IngestErr string  `json:"ingestMetricsError,omitempty"`
}

// add records one failed webhook, due at offset from the load's start.
// The caller serialises calls.
func (f *WebhookFailures) add(offset time.Duration, code int, err error) {
	outcome := fmt.Sprintf("HTTP %d", code)
	if err != nil {
		outcome = "connection"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			outcome = "timeout"
		}
	}
	s := offset.Seconds()
	if f.ByOutcome == nil {
		f.ByOutcome = map[string]int{}
	}
	f.ByOutcome[outcome]++
	if f.Count == 0 || s < f.FirstS {
		f.FirstS = s
	}
	f.LastS = max(f.LastS, s)
	f.Count++
}

// ingestCounts reads ingest's 503 counters at addr.
func ingestCounts(ctx context.Context, addr string) (map[string]float64, error) {
	return scrapeCounters(ctx, addr, ingestShedSeries, ingestNotAckedSeries)
}

// since sets Shed and NotAcked from two readings of ingestCounts.
func (f *WebhookFailures) since(before, after map[string]float64, err error) {
	if err != nil {
		f.IngestErr = err.Error()
		return
	}
	f.Shed = after[ingestShedSeries] - before[ingestShedSeries]
	f.NotAcked = after[ingestNotAckedSeries] - before[ingestNotAckedSeries]
}

func (f *WebhookFailures) String() string {
	if f.Count == 0 {
		return "every webhook answered 200"
	}
	var by []string
	for _, o := range slices.Sorted(maps.Keys(f.ByOutcome)) {
		by = append(by, fmt.Sprintf("%s × %d", o, f.ByOutcome[o]))
	}
	s := fmt.Sprintf("%d webhooks not answered 200 (%s), due %.1f–%.1f s into the load", f.Count, strings.Join(by, ", "), f.FirstS, f.LastS)
	if f.IngestErr != "" {
		return s + "; ingest's /metrics unread: " + f.IngestErr
	}
	return s + fmt.Sprintf("; ingest answered %.0f of them 503 at its in-flight bound and %.0f for want of JetStream's ack", f.Shed, f.NotAcked)
}
