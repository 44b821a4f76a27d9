package loadgen

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// LatencySummary describes a set of latencies exactly: every sample is
// kept (8 bytes each) and sorted once at the end, so percentiles are true
// order statistics, not histogram estimates.
type LatencySummary struct {
	Count int
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample such that at least p percent
// of samples are at or below it. It is always one of the samples. It
// returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Rounding guards against p/100*n landing a hair above an integer
	// (e.g. 0.29*100 = 29.000000000000004), which would skip a rank.
	rank := int(math.Ceil(math.Round(p/100*float64(n)*1e9) / 1e9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Summarize sorts samples in place and summarises them.
func Summarize(samples []time.Duration) LatencySummary {
	if len(samples) == 0 {
		return LatencySummary{}
	}
	slices.Sort(samples)
	var sum float64
	for _, d := range samples {
		sum += float64(d)
	}
	return LatencySummary{
		Count: len(samples),
		Mean:  time.Duration(sum / float64(len(samples))),
		P50:   Percentile(samples, 50),
		P90:   Percentile(samples, 90),
		P99:   Percentile(samples, 99),
		Max:   samples[len(samples)-1],
	}
}

// MarshalJSON writes durations as milliseconds, the unit people compare.
func (s LatencySummary) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(struct {
		Count  int     `json:"count"`
		MeanMs float64 `json:"meanMs"`
		P50Ms  float64 `json:"p50Ms"`
		P90Ms  float64 `json:"p90Ms"`
		P99Ms  float64 `json:"p99Ms"`
		MaxMs  float64 `json:"maxMs"`
	}{s.Count, ms(s.Mean), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)})
}

// StatusError is the status key for an attempt that got no HTTP answer:
// a refused connection, a reset, or the client timeout.
const StatusError = "error"

// collector gathers what the report shows. One mutex is enough: an
// attempt costs far more than the lock.
type collector struct {
	mu           sync.Mutex
	all, first   []time.Duration
	status       map[string]int64
	redeliveries int64
	webhooks     int64
	accepted     int64
	failed       int64
	dropped      int64
	eventsSent   int64
	eventsOK     int64
	unsendsOK    int64
	byKind       map[string]int64
}

func newCollector() *collector {
	return &collector{status: map[string]int64{}, byKind: map[string]int64{}}
}

func statusKey(code int, err error) string {
	if err != nil {
		return StatusError
	}
	return strconv.Itoa(code)
}

func (c *collector) attempt(lat time.Duration, first bool, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, lat)
	if first {
		c.first = append(c.first, lat)
	}
	c.status[status]++
}

func (c *collector) generated(w *webhook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.webhooks++
	c.eventsSent += int64(len(w.events))
	for i := range w.events {
		c.byKind[w.events[i].kind]++
	}
}

func (c *collector) redelivery() {
	c.mu.Lock()
	c.redeliveries++
	c.mu.Unlock()
}

func (c *collector) drop() {
	c.mu.Lock()
	c.dropped++
	c.mu.Unlock()
}

func (c *collector) finished(w *webhook, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.failed++
		return
	}
	c.accepted++
	c.eventsOK += int64(len(w.events))
	for i := range w.events {
		if w.events[i].unsendOf != nil {
			c.unsendsOK++
		}
	}
}
