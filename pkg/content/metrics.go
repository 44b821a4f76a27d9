package content

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	outcomes *prometheus.CounterVec
	calls    *prometheus.CounterVec
	bytes    prometheus.Counter
	// heartbeats counts the heartbeats of fetches in progress: extended,
	// lost (the claim was no longer the fetch's), too_slow (no whole
	// chunk within a lease).
	heartbeats *prometheus.CounterVec
	// retentionDeleted and retentionLastRun describe content retention.
	retentionDeleted prometheus.Counter
	retentionLastRun prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linepipe_content_rows_total",
			Help: "Message content rows worked on, by outcome."}, []string{"outcome"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linepipe_content_calls_total",
			Help: "Calls to LINE's data API, by endpoint and status."}, []string{"endpoint", "status"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "linepipe_content_bytes_total",
			Help: "Content bytes stored in the bucket."}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linepipe_content_lease_extensions_total",
			Help: "Heartbeats of fetches in progress: lease extended, lost (taken over or unsent), or too_slow (no whole chunk within a lease)."}, []string{"result"}),
		retentionDeleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "linepipe_content_retention_deleted_total",
			Help: "Expired message content deleted: the object, then its row."}),
		retentionLastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linepipe_content_retention_last_run_timestamp_seconds",
			Help: "When this replica last completed a content retention round (0: never; one replica at a time runs them)."}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.calls, m.bytes, m.heartbeats, m.retentionDeleted, m.retentionLastRun)
	}
	return m
}
