package testenv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric is the sum of the counters or gauges called name whose labels
// include the name=value pairs given.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue series
				}
			}
			if gv := m.GetGauge(); gv != nil {
				sum += gv.GetValue()
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
