package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus series.
type Metrics struct {
	stored      *prometheus.CounterVec
	duplicates  prometheus.Counter
	batches     prometheus.Histogram
	batchSize   prometheus.Histogram
	retries     prometheus.Counter
	deadLetters prometheus.Counter
	// newerBundles counts bundles offered again because a newer ingest
	// wrote them (keepForNewer).
	newerBundles prometheus.Counter
	ops          *opsMetrics // what operators alert on; see opsmetrics.go
}

// NewMetrics registers the worker's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_worker_events_stored_total", Help: "Events stored for the first time, by type."}, []string{"type"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_worker_events_duplicate_total", Help: "Events already stored (redeliveries), acknowledged without effect."}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linepipe_worker_batch_seconds", Help: "Time to store and acknowledge one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linepipe_worker_batch_messages", Help: "Messages per stored batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_worker_retries_total", Help: "Messages negatively acknowledged for a later retry."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_worker_dead_letters_total", Help: "Messages moved to dead_letters."}),
		newerBundles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_worker_bundles_newer_total", Help: "Bundles left on the stream because a newer ingest wrote them in a format this worker does not read; upgrade the workers."}),
	}
	reg.MustRegister(m.stored, m.duplicates, m.batches, m.batchSize, m.retries, m.deadLetters, m.newerBundles)
	m.ops = newOpsMetrics(reg)
	return m
}

// knownTypes bounds the label set: LINE may invent types at will.
var knownTypes = map[string]bool{"message": true, "messageEdited": true, "unsend": true, "follow": true,
	"unfollow": true, "join": true, "leave": true, "memberJoined": true, "memberLeft": true, "postback": true,
	"videoPlayComplete": true, "beacon": true, "accountLink": true, "membership": true, "module": true,
	"activated": true, "deactivated": true, "botSuspended": true, "botResumed": true, "delivery": true}

func (m *Metrics) observeBatch(items []*item, took time.Duration) {
	m.batches.Observe(took.Seconds())
	m.batchSize.Observe(float64(len(items)))
	m.ops.observeStoreDelay(items, time.Now())
	for _, it := range items {
		if it.ev == nil {
			continue
		}
		if it.id == 0 {
			m.duplicates.Inc()
			continue
		}
		t := it.ev.Type
		if !knownTypes[t] {
			t = "other"
		}
		m.stored.WithLabelValues(t).Inc()
	}
}
