package sender

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rows         *prometheus.CounterVec   // row outcomes by status
	calls        *prometheus.CounterVec   // API calls by endpoint and code
	latency      *prometheus.HistogramVec // API call duration by endpoint
	batch        prometheus.Histogram     // rows per claim
	leaseLost    prometheus.Counter
	slotMissed   prometheus.Counter
	released     prometheus.Counter
	claimShifted prometheus.Counter       // late claims moved later as a whole
	reslotBatch  prometheus.Histogram     // late rows booked by one re-slot transaction
	wakeups      prometheus.Counter       // claims started by a notification
	completes    prometheus.Histogram     // completions per grouped statement
	sendDelay    *prometheus.HistogramVec // created_at to the request going out, by endpoint
	claimTime    prometheus.Histogram     // one claim transaction
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_sender_rows_total",
			Help: "Outbox row outcomes per attempt or check: delivered, retrying, failed, expired, skipped, cancelled, uncertain.",
		}, []string{"status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linepipe_sender_api_calls_total",
			Help: "Calls to the LINE Platform by endpoint and HTTP status (0: no answer).",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linepipe_sender_api_call_seconds",
			Help:    "Duration of calls to the LINE Platform.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"endpoint"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linepipe_sender_claim_batch_rows",
			Help:    "Rows taken by one claim (sent or finished).",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_sender_lease_lost_total",
			Help: "Completions refused because another claim had taken the row over.",
		}),
		slotMissed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_sender_slot_missed_total",
			Help: "Sends that reached their rate slot too late and took a fresh one.",
		}),
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_sender_released_total",
			Help: "Claimed rows handed back unsent after missing their rate slot repeatedly.",
		}),
		claimShifted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_sender_claim_shifted_total",
			Help: "Claims whose sends were all late for their rate slots and were moved later as a whole.",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linepipe_sender_wakeups_total",
			Help: "Claims started by a notification that outbox rows were committed, rather than by the poll.",
		}),
		reslotBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linepipe_sender_reslot_batch_rows",
			Help:    "Late rows given fresh rate slots by one transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
		completes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linepipe_sender_completion_batch_rows",
			Help:    "Attempt outcomes recorded by one grouped completion statement.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
		sendDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linepipe_sender_send_delay_seconds",
			Help:    "From an outbox row's created_at to its request going out, on the database's clock: how long a message waited in linepipe, retries' backoff included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"endpoint"}),
		claimTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linepipe_sender_claim_seconds",
			Help:    "Duration of one claim that took rows, from its first statement to its commit's return.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.calls, m.latency, m.batch, m.leaseLost, m.slotMissed, m.released,
			m.wakeups, m.completes, m.claimShifted, m.reslotBatch, m.sendDelay, m.claimTime)
	}
	return m
}
