package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run achieved. Counts of webhooks are of generated
// requests; Requests also counts redeliveries.
type Report struct {
	// Mode is "rate" (open loop at TargetRate) or "concurrency" (closed
	// loop with Concurrency senders).
	Mode        string  `json:"mode"`
	TargetRate  float64 `json:"targetRate,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	// Elapsed runs from the first request to the last answer, including
	// the redeliveries that finished after generation stopped.
	Elapsed time.Duration `json:"-"`

	Webhooks         int64 `json:"webhooks"`         // generated webhook requests
	WebhooksAccepted int64 `json:"webhooksAccepted"` // finally answered 2xx
	WebhooksFailed   int64 `json:"webhooksFailed"`   // never 2xx after every redelivery, or run stopped
	Dropped          int64 `json:"dropped"`          // rate mode: not sent, MaxInFlight reached
	Requests         int64 `json:"requests"`         // HTTP attempts, first and redelivered
	Redeliveries     int64 `json:"redeliveries"`

	EventsSent     int64 `json:"eventsSent"`     // events in generated webhooks
	EventsAccepted int64 `json:"eventsAccepted"` // events in webhooks finally answered 2xx
	// EventsByKind counts generated events by kind. Unsends that found no
	// accepted message to take back were sent as text and count as text.
	EventsByKind       map[string]int64 `json:"eventsByKind"`
	UnsendsAccepted    int64            `json:"unsendsAccepted"`
	UnsendsSubstituted int64            `json:"unsendsSubstituted"`

	RequestsPerSec float64 `json:"requestsPerSec"` // Requests / Elapsed
	EventsPerSec   float64 `json:"eventsPerSec"`   // EventsAccepted / Elapsed

	// Status counts attempts by HTTP status code, with StatusError for
	// attempts that got no answer.
	Status map[string]int64 `json:"status"`
	// Latency covers every attempt; FirstAttempt only first attempts,
	// which is what a server shows before redeliveries add to its load.
	Latency      LatencySummary `json:"latency"`
	FirstAttempt LatencySummary `json:"firstAttempt"`

	// Record is the audit record, nil when Config.DiscardRecord is set.
	Record *Record `json:"-"`
}

func (s *sender) report(elapsed time.Duration) *Report {
	c := s.stats
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &Report{
		Elapsed:            elapsed,
		Webhooks:           c.webhooks,
		WebhooksAccepted:   c.accepted,
		WebhooksFailed:     c.failed,
		Dropped:            c.dropped,
		Requests:           int64(len(c.all)),
		Redeliveries:       c.redeliveries,
		EventsSent:         c.eventsSent,
		EventsAccepted:     c.eventsOK,
		EventsByKind:       maps.Clone(c.byKind),
		UnsendsAccepted:    c.unsendsOK,
		UnsendsSubstituted: s.builder.substitutedUnsends(),
		Status:             maps.Clone(c.status),
		Latency:            Summarize(c.all),
		FirstAttempt:       Summarize(c.first),
	}
	if s.cfg.Rate > 0 {
		r.Mode, r.TargetRate = "rate", s.cfg.Rate
	} else {
		r.Mode, r.Concurrency = "concurrency", s.cfg.Concurrency
	}
	if sec := elapsed.Seconds(); sec > 0 {
		r.RequestsPerSec = float64(r.Requests) / sec
		r.EventsPerSec = float64(r.EventsAccepted) / sec
	}
	return r
}

// MarshalJSON adds elapsedSeconds, since a Duration would encode as
// nanoseconds.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		ElapsedSeconds float64 `json:"elapsedSeconds"`
		*plain
	}{r.Elapsed.Seconds(), (*plain)(r)})
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// WriteText writes the report as a small aligned table.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	if r.Mode == "rate" {
		p("mode\topen loop, target %.1f req/s", r.TargetRate)
	} else {
		p("mode\tclosed loop, concurrency %d", r.Concurrency)
	}
	p("elapsed\t%s", r.Elapsed.Round(time.Millisecond))
	p("webhooks\t%d\taccepted %d\tfailed %d\tdropped %d", r.Webhooks, r.WebhooksAccepted, r.WebhooksFailed, r.Dropped)
	p("requests\t%d\tredeliveries %d", r.Requests, r.Redeliveries)
	p("events\tsent %d\taccepted %d\tunsends accepted %d", r.EventsSent, r.EventsAccepted, r.UnsendsAccepted)
	p("achieved\t%.1f req/s\t%.1f events/s", r.RequestsPerSec, r.EventsPerSec)
	p("")
	p("latency\tcount\tp50\tp90\tp99\tmax")
	for _, l := range []struct {
		name string
		s    LatencySummary
	}{{"all attempts", r.Latency}, {"first attempts", r.FirstAttempt}} {
		p("%s\t%d\t%s\t%s\t%s\t%s", l.name, l.s.Count, fmtDur(l.s.P50), fmtDur(l.s.P90), fmtDur(l.s.P99), fmtDur(l.s.Max))
	}
	p("")
	p("status\tattempts")
	for _, k := range sortedStatus(r.Status) {
		p("%s\t%d", k, r.Status[k])
	}
	p("")
	p("kind\tevents")
	for _, k := range Kinds {
		if n := r.EventsByKind[k]; n > 0 {
			p("%s\t%d", k, n)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// fmtDur prints a latency in milliseconds with three decimals, so columns
// compare at a glance.
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms"
}

// sortedStatus orders status codes numerically, "error" last.
func sortedStatus(m map[string]int64) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if a == StatusError || b == StatusError {
			return strings.Compare(boolKey(a == StatusError), boolKey(b == StatusError))
		}
		ai, _ := strconv.Atoi(a)
		bi, _ := strconv.Atoi(b)
		return ai - bi
	})
	return keys
}

func boolKey(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
