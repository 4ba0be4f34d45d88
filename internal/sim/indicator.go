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
// month just ended; SIPAS and PAR Index by quarter; the DTI by year.
type indicatorReports struct {
	list []indicatorReport
	i    int
}

// firstReport is 08:00 on the first day of the month after t.
func firstReport(t time.Time) time.Time {
	t = t.In(ict)
	return time.Date(t.Year(), t.Month()+1, 1, 8, 0, 0, 0, ict)
}

func (ir *indicatorReports) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	if ir.i >= len(ir.list) {
		ir.list, ir.i = e.reportsAt(now), 0
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
	for _, u := range units {
		base := 96 - 300*u.overdue - 10*(0.95-u.onlineShare)
		out = append(out, indicatorReport{"score766.total", u.Code, month, "points", "dichvucong.gov.vn",
			min(100, base+2*r.NormFloat64()), 1})
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
		out = append(out, indicatorReport{"dti.total", refdata.CityCode, fmt.Sprint(prev.Year()), "index",
			"Bộ Khoa học và Công nghệ", 0.74 + 0.03*r.NormFloat64(), 4})
	}
	return out
}
