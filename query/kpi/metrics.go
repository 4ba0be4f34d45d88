package kpi

import "github.com/prometheus/client_golang/prometheus"

type engineMetrics struct {
	leader    prometheus.Gauge
	duration  *prometheus.HistogramVec
	published *prometheus.CounterVec
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
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.duration, m.published)
	}
	return m
}
