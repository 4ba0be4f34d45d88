package kpi

import "github.com/prometheus/client_golang/prometheus"

type engineMetrics struct {
	leader     prometheus.Gauge
	duration   *prometheus.HistogramVec
	published  *prometheus.CounterVec
	rollupRows *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_kpi_leader",
			Help: "1 while this node runs the KPI engine."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ioc_kpi_recompute_seconds",
			Help: "Time to recompute every KPI of a family for every unit and window.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"family"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_kpi_values_published_total",
			Help: "KPI values that changed and were published."}, []string{"family"}),
		rollupRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_kpi_rollup_rows_written_total",
			Help: "Rollup rows rewritten because their sums changed."}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.duration, m.published, m.rollupRows)
	}
	return m
}
