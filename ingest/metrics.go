package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics of intake and writer. Register them once per process.
type Metrics struct {
	Accepted     *prometheus.CounterVec
	Rejected     *prometheus.CounterVec
	Duplicates   *prometheus.CounterVec
	Requests     *prometheus.CounterVec
	BatchSize    *prometheus.HistogramVec
	InsertTime   *prometheus.HistogramVec
	InsertErrors *prometheus.CounterVec
	Written      *prometheus.CounterVec
	DeadLetters  *prometheus.CounterVec
	Pending      *prometheus.GaugeVec
	Lag          *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_events_accepted_total", Help: "Events accepted (stored in JetStream), by family and source.",
		}, []string{"family", "source"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_events_rejected_total", Help: "Events rejected at intake, by family (\"unknown\" when unreadable) and source.",
		}, []string{"family", "source"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_events_duplicate_total", Help: "Events JetStream recognised as already accepted, by family and source.",
		}, []string{"family", "source"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_intake_requests_total", Help: "Intake requests by path and outcome.",
		}, []string{"path", "code"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ioc_writer_batch_rows", Help: "Rows per ClickHouse insert batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, []string{"family"}),
		InsertTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ioc_writer_insert_seconds", Help: "Latency of a successful ClickHouse insert batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"family"}),
		InsertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_writer_insert_errors_total", Help: "Failed insert attempts (each is retried).",
		}, []string{"family"}),
		Written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_writer_rows_total", Help: "Rows written to ClickHouse and acknowledged to JetStream.",
		}, []string{"family"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ioc_dead_letters_total", Help: "Events moved to the dead_letters table.",
		}, []string{"family"}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ioc_jetstream_pending", Help: "Messages (chunks of events from HTTP, single events from NATS) waiting in JetStream for the writer, by family.",
		}, []string{"family"}),
		Lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ioc_writer_visible_seconds", Help: "Time from acceptance to commit in ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"family"}),
	}
	if reg != nil {
		reg.MustRegister(m.Accepted, m.Rejected, m.Duplicates, m.Requests, m.BatchSize, m.InsertTime,
			m.InsertErrors, m.Written, m.DeadLetters, m.Pending, m.Lag)
	}
	return m
}
