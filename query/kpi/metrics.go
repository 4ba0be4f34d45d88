package kpi

import "github.com/prometheus/client_golang/prometheus"

type engineMetrics struct {
	leader          prometheus.Gauge
	duration        *prometheus.HistogramVec
	instantDuration *prometheus.HistogramVec
	published       *prometheus.CounterVec
	rollupRows      *prometheus.CounterVec
	eventReads      *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_kpi_leader",
			Help: "1 while this node runs the KPI engine."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ioc_kpi_recompute_seconds",
			Help: "Time to bring a family's rollups up to date after commits and sum its windowed KPIs for every unit and window.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"family"}),
		instantDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ioc_kpi_instant_seconds",
			Help: "Time to compute a family's instant KPIs (from the open entities, or the camera view) for every unit.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"family"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_kpi_values_published_total",
			Help: "KPI values that changed and were published."}, []string{"family"}),
		rollupRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_kpi_rollup_rows_written_total",
			Help: "Rollup rows rewritten because their sums changed."}, []string{"table"}),
		eventReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_kpi_event_reads_total",
			Help: "Reads of an event view for the rollups: span = only the buckets a commit's events span; hours = whole hours not held (first touch, or held for 10 min)."},
			[]string{"source", "read"}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.duration, m.instantDuration, m.published, m.rollupRows, m.eventReads)
	}
	return m
}
