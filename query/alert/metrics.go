package alert

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	leader      prometheus.Gauge
	held        prometheus.Gauge
	open        prometheus.Gauge
	transitions *prometheus.CounterVec
	capped      *prometheus.CounterVec
	evalSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_alert_leader",
			Help: "1 while this node evaluates the alert rules."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_alert_rules_held",
			Help: "1 while a hold suspends the alert rules (on the evaluating node)."}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_alerts_open",
			Help: "Alerts raised or acknowledged, not cleared (on the evaluating node)."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_alert_transitions_total",
			Help: "Alert states entered, by rule and state (raised, acknowledged, cleared)."}, []string{"rule", "state"}),
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_alert_capped_total",
			Help: "Alerts not raised because their rule had max_open alerts open already."}, []string{"rule"}),
		evalSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ioc_alert_eval_seconds",
			Help:    "Time to evaluate one entity rule (its query included), by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10)}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.held, m.open, m.transitions, m.capped, m.evalSeconds)
	}
	return m
}
