package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// opsMetrics are the series deploy/prometheus/alerts.yml alerts on: how
// far behind the pipeline is (stream, outbox), how late events are
// stored, and what the janitor and replays did.
type opsMetrics struct {
	storeDelay       prometheus.Histogram
	replays          *prometheus.CounterVec
	retentionDeleted *prometheus.CounterVec
	retentionLastRun prometheus.Gauge

	consumerPending     prometheus.Gauge
	consumerAckPending  prometheus.Gauge
	consumerRedelivered prometheus.Gauge
	purgeFailures       prometheus.Counter

	outboxRows       *prometheus.GaugeVec
	outboxOldestDue  *prometheus.GaugeVec
	deadLetters      prometheus.Gauge
	replaysRequested prometheus.Gauge
}

func newOpsMetrics(reg prometheus.Registerer) *opsMetrics {
	m := &opsMetrics{
		storeDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linepipe_worker_event_store_delay_seconds",
			Help:    "From ingest receiving the webhook to the event's transaction committing, for newly stored events.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_worker_dead_letter_replays_total",
			Help: "Dead-letter replays by result: stored, duplicate (stored meanwhile) or failed."}, []string{"result"}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_worker_retention_deleted_total",
			Help: "Rows the retention janitor deleted, by table."}, []string{"table"}),
		retentionLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_worker_retention_last_run_timestamp_seconds",
			Help: "When this replica last completed a retention round (0: never; one replica at a time runs them)."}),
		consumerPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_worker_consumer_pending_messages",
			Help: "Messages on the stream the worker consumer has not yet been delivered (JetStream num_pending)."}),
		consumerAckPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_worker_consumer_ack_pending_messages",
			Help: "Messages delivered to workers and not yet acknowledged (JetStream num_ack_pending)."}),
		consumerRedelivered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_worker_consumer_redelivered_messages",
			Help: "Messages delivered more than once and not yet acknowledged (JetStream num_redelivered)."}),
		purgeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_worker_stream_purge_failures_total",
			Help: "Rounds in which the worker could not remove what it stored from the stream (NATS refused or did not answer)."}),
		outboxRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linepipe_outbox_rows",
			Help: "Outbox rows waiting to be sent, by endpoint and status (pending and retrying counted up to 100,000 in all)."},
			[]string{"endpoint", "status"}),
		outboxOldestDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linepipe_outbox_oldest_due_seconds",
			Help: "How long the longest-waiting outbox row has been due (in_flight: past its lease), by endpoint and status; exact up to 100,000 waiting rows."},
			[]string{"endpoint", "status"}),
		deadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_dead_letters",
			Help: "Rows in dead_letters (counted up to 100,000)."}),
		replaysRequested: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linepipe_dead_letters_replay_requested",
			Help: "Dead letters waiting for a requested replay."}),
	}
	reg.MustRegister(m.storeDelay, m.replays, m.retentionDeleted, m.retentionLastRun,
		m.consumerPending, m.consumerAckPending, m.consumerRedelivered, m.purgeFailures,
		m.outboxRows, m.outboxOldestDue, m.deadLetters, m.replaysRequested)
	// Every series an alert names exists from the start, at zero.
	for _, r := range []string{replayStored, replayDuplicate, replayFailed} {
		m.replays.WithLabelValues(r)
	}
	for _, t := range store.RetentionTables {
		m.retentionDeleted.WithLabelValues(t)
	}
	m.setOutbox(nil)
	return m
}

// observeStoreDelay records, for each newly stored event, the time since
// ingest received its webhook (the Linepipe-Received-At header). Events
// without the header are not observed: their receive time is a stand-in.
func (m *opsMetrics) observeStoreDelay(items []*item, now time.Time) {
	for _, it := range items {
		if it.ev == nil || it.id == 0 || it.msg == nil {
			continue
		}
		if events.HeaderValue(it.msg.Headers(), events.HeaderReceivedAt) == "" {
			continue
		}
		m.storeDelay.Observe(max(now.Sub(it.meta.ReceivedAt), 0).Seconds())
	}
}

// outboxEndpoints and outboxWaiting bound the outbox gauges' labels: an
// endpoint an operator mistyped reads as "other".
var (
	outboxEndpoints = []string{"reply", "push", "multicast", "narrowcast", "broadcast"}
	outboxWaiting   = []string{"pending", "retrying", "in_flight"}
)

// setOutbox replaces the outbox gauges with depths, zero for every
// endpoint and status not among them.
func (m *opsMetrics) setOutbox(depths []store.OutboxDepth) {
	type key struct{ endpoint, status string }
	rows := map[key]float64{}
	oldest := map[key]float64{}
	known := map[string]bool{}
	for _, e := range outboxEndpoints {
		known[e] = true
	}
	for _, d := range depths {
		k := key{d.Endpoint, d.Status}
		if !known[k.endpoint] {
			k.endpoint = "other"
		}
		rows[k] += float64(d.Rows)
		oldest[k] = max(oldest[k], d.OldestDue.Seconds())
	}
	for _, e := range append(outboxEndpoints, "other") {
		for _, s := range outboxWaiting {
			k := key{e, s}
			m.outboxRows.WithLabelValues(e, s).Set(rows[k])
			m.outboxOldestDue.WithLabelValues(e, s).Set(oldest[k])
		}
	}
}
