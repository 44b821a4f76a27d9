package bench

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The scraper reads a histogram exactly as client_golang serves it, and a
// run's share over an edge comes from the difference of two readings.
func TestHistogramScrapeAndTail(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	req := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "linepipe_ingest_request_seconds",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13)})
	pub := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "linepipe_ingest_publish_seconds",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13)})
	reg.MustRegister(req, pub)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// Before the run: slow webhooks that must not count.
	for range 50 {
		req.Observe(0.1)
		pub.Observe(0.1)
	}
	before, err := scrapeHistograms(t.Context(), addr, ingestTailSeries...)
	if err != nil {
		t.Fatal(err)
	}
	// The run: 1,000 webhooks, 30 handled in over 16 ms (one exactly at
	// the edge, which a bucket counts as within it), 10 acked that late.
	for i := range 1000 {
		switch {
		case i < 10:
			req.Observe(0.040)
			pub.Observe(0.035)
		case i < 30:
			req.Observe(0.020)
			pub.Observe(0.002)
		case i == 30:
			req.Observe(0.016)
			pub.Observe(0.016)
		default:
			req.Observe(0.002)
			pub.Observe(0.001)
		}
	}
	after, err := scrapeHistograms(t.Context(), addr, ingestTailSeries...)
	if err != nil {
		t.Fatal(err)
	}
	tail := ingestTail(before, after, 25*time.Millisecond)
	if tail.Edge != 16*time.Millisecond || math.Abs(tail.Handled-0.030) > 1e-9 || math.Abs(tail.Acked-0.010) > 1e-9 {
		t.Fatalf("tail %+v, want 16 ms, 3 %% handled and 1 %% acked over it", tail)
	}
	if _, err := scrapeHistograms(t.Context(), addr, "linepipe_no_such_seconds"); err == nil {
		t.Fatal("a missing histogram read without an error")
	}
}
