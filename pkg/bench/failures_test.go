package bench

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/linepipe/linepipe/pkg/ingest"
)

// The counters the bench reads are the ones ingest registers: a renamed
// series is an error, not a zero.
func TestIngestCountsReadIngestsOwnSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ingest.NewMetrics(reg)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	got, err := ingestCounts(t.Context(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[ingestShedSeries] != 0 || got[ingestNotAckedSeries] != 0 {
		t.Fatalf("a fresh ingest's 503 counters: %v", got)
	}
	if _, err := scrapeCounters(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "linepipe_ingest_no_such_total"); err == nil {
		t.Fatal("a series ingest does not export read without error")
	}
}

// Failed webhooks are told apart by what they got and when, and set
// against ingest's own counts over the load.
func TestWebhookFailuresSayWhy(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	shed := prometheus.NewCounter(prometheus.CounterOpts{Name: ingestShedSeries})
	notAcked := prometheus.NewCounter(prometheus.CounterOpts{Name: ingestNotAckedSeries})
	reg.MustRegister(shed, notAcked)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	shed.Add(5) // before the load: not its
	before, err := ingestCounts(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	var f WebhookFailures
	for i := range 3 {
		f.add(time.Duration(3100+100*i)*time.Millisecond, 503, nil)
		shed.Inc()
	}
	f.add(2500*time.Millisecond, 503, nil)
	notAcked.Inc()
	f.add(4*time.Second, 0, fmt.Errorf("posting webhook: %w", &net.OpError{Op: "read", Err: context.DeadlineExceeded}))
	f.add(4*time.Second, 0, fmt.Errorf("posting webhook: %w", &net.OpError{Op: "dial", Err: fmt.Errorf("connection refused")}))
	after, err := ingestCounts(t.Context(), addr)
	f.since(before, after, err)

	want := "6 webhooks not answered 200 (HTTP 503 × 4, connection × 1, timeout × 1), due 2.5–4.0 s into the load; " +
		"ingest answered 3 of them 503 at its in-flight bound and 1 for want of JetStream's ack"
	if got := f.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var none WebhookFailures
	if got := none.String(); got != "every webhook answered 200" {
		t.Fatalf("no failures: %s", got)
	}
	var unread WebhookFailures
	unread.add(time.Second, 503, nil)
	unread.since(nil, nil, fmt.Errorf("GET /metrics: 500"))
	if got := unread.String(); !strings.HasSuffix(got, "ingest's /metrics unread: GET /metrics: 500") {
		t.Fatalf("unread metrics: %s", got)
	}
}
