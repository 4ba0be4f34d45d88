package sqlapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metricsRegisterer = prometheus.Registerer

type metrics struct {
	queries      *prometheus.CounterVec
	rows         prometheus.Counter
	bytes        prometheus.Counter
	duration     prometheus.Histogram
	running      prometheus.Gauge
	limited      *prometheus.CounterVec
	killed       prometheus.Counter
	auditDropped prometheus.Counter
	readPath     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_sql_queries_total",
			Help: "Statements sent to the SQL API, by outcome (ok, truncated, refused, forbidden, invalid, limited, unavailable, timeout, canceled, error)."}, []string{"outcome"}),
		rows:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_sql_rows_total", Help: "Rows returned by the SQL API."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_sql_bytes_total", Help: "Bytes of results returned by the SQL API."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ioc_sql_query_duration_seconds",
			Help: "Time from request to last byte of a statement.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12)}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_sql_running", Help: "Statements running now."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_sql_limited_total",
			Help: "Statements answered 429, by limit (per_token, node)."}, []string{"limit"}),
		killed:       prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_sql_killed_total", Help: "KILL QUERY sent for a cancelled, timed-out or truncated statement."}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_sql_audit_dropped_total", Help: "Audit records that could not be written."}),
		readPath: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_sql_read_path_total",
			Help: "Statements by format and how the result was read: http (ClickHouse's Native format over its HTTP interface) or driver (row by row over the native protocol)."}, []string{"format", "path"}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.rows, m.bytes, m.duration, m.running, m.limited, m.killed, m.auditDropped, m.readPath)
	}
	return m
}

func (m *metrics) observe(r auditRecord) {
	m.queries.WithLabelValues(r.Outcome).Inc()
	m.rows.Add(float64(r.Rows))
	m.bytes.Add(float64(r.Bytes))
	m.duration.Observe(r.Duration.Seconds())
}
