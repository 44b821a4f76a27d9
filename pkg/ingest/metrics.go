package ingest

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are ingest's Prometheus series. Label names are shared by every
// service: code is an HTTP status code, endpoint a Messaging API endpoint,
// status an outbox row's status.
type Metrics struct {
	webhooks   *prometheus.CounterVec
	published  prometheus.Counter
	duplicates prometheus.Counter
	failures   prometheus.Counter
	publishLat prometheus.Histogram
	requestLat prometheus.Histogram
	bundles    *prometheus.CounterVec
	bundleSize prometheus.Histogram
	inFlight   prometheus.GaugeFunc // reads active
	shed       prometheus.Counter
	bufferedG  prometheus.GaugeFunc // reads buffered
	// active counts the webhooks being handled: the handler bounds it
	// (Config.MaxInFlight) and the in-flight gauge reports it.
	active atomic.Int64
	// buffered counts the bytes of webhook bodies held: the handler
	// bounds it (Config.MaxBufferedBytes) and a gauge reports it.
	buffered atomic.Int64
}

// NewMetrics registers ingest's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_ingest_webhooks_total", Help: "Webhook requests by HTTP response code."}, []string{"code"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_ingest_events_published_total", Help: "Events acknowledged by JetStream (duplicates included)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_ingest_events_duplicate_total", Help: "Events JetStream dropped as duplicates (redeliveries)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_ingest_publish_failures_total", Help: "Webhooks answered 503 because JetStream did not acknowledge in time."}),
		publishLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linepipe_ingest_publish_seconds", Help: "Time to get JetStream acks for one webhook's events.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13)}),
		requestLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linepipe_ingest_request_seconds", Help: "Webhook request handling time.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13)}),
		bundles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_ingest_bundles_total",
			Help: "Bundles of concurrent webhooks' events published as one stream message, by result (stored, failed)."}, []string{"result"}),
		bundleSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "linepipe_ingest_bundle_events", Help: "Events per stored bundle (one JetStream write, one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_ingest_webhooks_shed_total",
			Help: "Webhooks answered 503 because INGEST_MAX_IN_FLIGHT signed webhooks were already being handled, " +
				"or INGEST_MAX_BUFFERED_BYTES of bodies were already held."}),
	}
	m.inFlight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "linepipe_ingest_webhooks_in_flight", Help: "Signed webhooks being handled now (INGEST_MAX_IN_FLIGHT bounds it)."},
		func() float64 { return float64(m.active.Load()) })
	m.bufferedG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "linepipe_ingest_body_bytes_buffered", Help: "Bytes of webhook bodies held now (INGEST_MAX_BUFFERED_BYTES bounds it)."},
		func() float64 { return float64(m.buffered.Load()) })
	reg.MustRegister(m.webhooks, m.published, m.duplicates, m.failures, m.publishLat, m.requestLat, m.bundles, m.bundleSize,
		m.inFlight, m.shed, m.bufferedG)
	return m
}

func (m *Metrics) observeRequest(status int, took time.Duration) {
	m.webhooks.WithLabelValues(strconv.Itoa(status)).Inc()
	m.requestLat.Observe(took.Seconds())
}

func (m *Metrics) observePublish(n, dups int, took time.Duration, err error) {
	m.publishLat.Observe(took.Seconds())
	if err != nil {
		m.failures.Inc()
		return
	}
	m.published.Add(float64(n))
	m.duplicates.Add(float64(dups))
}

func (m *Metrics) observeBundle(events int, stored bool) {
	if !stored {
		m.bundles.WithLabelValues("failed").Inc()
		return
	}
	m.bundles.WithLabelValues("stored").Inc()
	m.bundleSize.Observe(float64(events))
}
