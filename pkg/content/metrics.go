package content

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	outcomes *prometheus.CounterVec
	calls    *prometheus.CounterVec
	bytes    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linepipe_content_rows_total",
			Help: "Message content rows worked on, by outcome."}, []string{"outcome"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linepipe_content_calls_total",
			Help: "Calls to LINE's data API, by endpoint and status."}, []string{"endpoint", "status"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "linepipe_content_bytes_total",
			Help: "Content bytes stored in the bucket."}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.calls, m.bytes)
	}
	return m
}
