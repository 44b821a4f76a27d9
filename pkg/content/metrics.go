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
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.calls, m.bytes, m.heartbeats)
	}
	return m
}
