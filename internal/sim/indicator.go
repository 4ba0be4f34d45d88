package sim

import (
	"fmt"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

// indicatorReport is one official figure for a unit and a period.
type indicatorReport struct {
	code, unit, period, measure, source string
	value                               float64
	prec                                int
}

// indicatorReports publishes the periodic official figures at 08:00 on the
// first day of each month: the Decision 766 score of every unit for the
// month just ended, with the components of it the portal measures (the
// `reported:` codes of query/kpi/score766.yaml); SIPAS and PAR Index by
// quarter; the DTI and its pillars (query/kpi/dti.yaml) by year.
type indicatorReports struct {
	list []indicatorReport
	i    int
	// as, when set, is the first day whose reports the first round sends:
	// a city started mid-month has the reports of the month before, as
	// published on the 1st, from its start.
	as time.Time
}

// lastReport is 08:00 on the first day of t's month: when the latest
// reports before t were published.
func lastReport(t time.Time) time.Time {
	t = t.In(ict)
	return time.Date(t.Year(), t.Month(), 1, 8, 0, 0, 0, ict)
}

// firstReport is 08:00 on the first day of the month after t.
func firstReport(t time.Time) time.Time {
	t = t.In(ict)
	return time.Date(t.Year(), t.Month()+1, 1, 8, 0, 0, 0, ict)
}

func (ir *indicatorReports) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	if ir.i >= len(ir.list) {
		at := now
		if !ir.as.IsZero() {
			at, ir.as = ir.as, time.Time{}
		}
		ir.list, ir.i = e.reportsAt(at), 0
	}
	rep := ir.list[ir.i]
	ir.i++
	o := e.data()
	o.str("unit", rep.unit)
	o.str("period", rep.period)
	o.num("value", rep.value, rep.prec)
	o.str("measure", rep.measure)
	o.str("source", rep.source)
	ev := e.event(e.src.indicator, typeIndicatorReported, rep.code, now, e.done(o))
	if ir.i < len(ir.list) {
		return ev, true, now, true
	}
	return ev, true, firstReport(now), true
}

// reportsAt lists the reports published at now (a month's first day).
func (e *engine) reportsAt(now time.Time) []indicatorReport {
	r := e.rng
	prev := now.In(ict).AddDate(0, -1, 0)
	month := fmt.Sprintf("%04d-%02d", prev.Year(), int(prev.Month()))
	var out []indicatorReport
	units := e.city.current
	if city, ok := e.city.byCode[refdata.CityCode]; ok {
		units = append([]*unit{city}, units...) // the city's own figures too
	}
	// A percentage near mean, within [0, 100].
	pct := func(mean, sd float64) float64 { return max(0, min(100, mean+sd*r.NormFloat64())) }
	for _, u := range units {
		base := 96 - 300*u.overdue - 10*(0.95-u.onlineShare)
		out = append(out, indicatorReport{"score766.total", u.Code, month, "points", "dichvucong.gov.vn",
			min(100, base+2*r.NormFloat64()), 1})
		for _, c := range []struct {
			code     string
			mean, sd float64
		}{
			{"766.procedures_published_on_time", 98, 2},
			{"766.procedures_updated_on_time", 96, 3},
			{"766.procedures_published_complete", 97, 2},
			{"766.dossiers_on_time", 100 * (1 - u.overdue), 0.3},
			{"766.procedures_online", 85, 5},
			{"766.online_services_with_dossiers", 70, 8},
			{"766.procedures_fees_on_portal", 82, 6},
			{"766.procedures_paid_online", 60, 10},
			{"766.communes_e_certified_copies", 90, 8},
			{"766.dossiers_reusing_data", 45, 10},
			{"766.dossiers_linked_data_store", 55, 10},
			{"766.dossiers_population_data", 75, 8},
			{"766.procedures_population_data", 80, 6},
			{"766.feedback_satisfaction", 100*u.satisfied - 3, 1.5},
			{"766.dossier_satisfaction", 100 * (1 - u.overdue - 0.005), 0.3},
		} {
			out = append(out, indicatorReport{c.code, u.Code, month, "percent", "dichvucong.gov.vn", pct(c.mean, c.sd), 2})
		}
	}
	if prev.Month()%3 == 0 {
		quarter := fmt.Sprintf("%04d-Q%d", prev.Year(), int(prev.Month())/3)
		for _, u := range units {
			out = append(out, indicatorReport{"sipas", u.Code, quarter, "percent", "Sở Nội vụ",
				min(100, 100*u.satisfied-8+3*r.NormFloat64()), 2})
		}
		for _, u := range e.city.depts {
			out = append(out, indicatorReport{"par_index", u.Code, quarter, "percent", "Sở Nội vụ",
				min(100, 86+4*r.NormFloat64()), 2})
		}
	}
	if _, ok := e.city.byCode[refdata.CityCode]; ok && prev.Month() == time.December {
		year := fmt.Sprint(prev.Year())
		out = append(out, indicatorReport{"dti.total", refdata.CityCode, year, "index",
			"Bộ Khoa học và Công nghệ", 0.74 + 0.03*r.NormFloat64(), 4})
		// Each pillar's share of its points, as the ministry publishes
		// the index of a pillar.
		for _, p := range []string{"awareness", "institutions", "infrastructure", "human_resources", "security",
			"digital_government", "digital_economy", "digital_society"} {
			out = append(out, indicatorReport{"dti." + p, refdata.CityCode, year, "index",
				"Bộ Khoa học và Công nghệ", max(0, min(1, 0.74+0.06*r.NormFloat64())), 4})
		}
	}
	return out
}
