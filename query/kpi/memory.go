package kpi

import (
	"context"
	"fmt"
	"time"
)

// memory holds, while a node leads, the rollup sums the standard windows
// need: hours of the last two days (24h), days of the last two months
// (today, week, 7d, 30d and the current month's days) and months of the
// last year (month, quarter, ytd). It is loaded from the rollup tables when
// the engine takes over and kept up to date from the changes the engine
// writes, so computing every window costs a walk over some hundred
// thousand sums, whatever the history.
type memory struct {
	loc    *time.Location
	hours  map[rollupRow]sums
	days   map[rollupRow]sums
	months map[rollupRow]sums // t: the first of the month
}

const (
	memHours = 48 * time.Hour
	memDays  = 62 // days kept: a window's part-months lie within the last 31
)

func monthOf(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, day.Location())
}

// loadMemory reads the rollups from ClickHouse for the windows at the
// instant at.
func (e *Engine) loadMemory(ctx context.Context, at time.Time) (*memory, error) {
	m := &memory{loc: e.b.Loc, hours: map[rollupRow]sums{}, days: map[rollupRow]sums{}, months: map[rollupRow]sums{}}
	var kpis []string
	for _, k := range e.cat.KPIs {
		if !k.Instant() {
			kpis = append(kpis, k.ID)
		}
	}
	if len(kpis) == 0 {
		return m, nil
	}
	today := localDay(at, e.b.Loc)
	hours, err := e.readRollup(ctx, "kpi_hourly", "hour", kpis, "hour >= "+e.b.literal(at.Truncate(time.Hour).Add(-memHours)))
	if err != nil {
		return nil, err
	}
	m.hours = hours
	first := monthOf(localDay(horizon(at, e.b.Loc), e.b.Loc))
	days, err := e.readRollup(ctx, "kpi_daily", "day", kpis, "day >= "+dateLiteral(first))
	if err != nil {
		return nil, err
	}
	keepFrom := today.AddDate(0, 0, -memDays)
	for r, s := range days {
		if !r.t.Before(keepFrom) {
			m.days[r] = s
		}
		mr := rollupRow{r.kpi, monthOf(r.t), r.unit}
		ms := m.months[mr]
		m.months[mr] = sums{ms.n + s.n, ms.d + s.d}
	}
	return m, nil
}

// changed applies what writeRollup wrote: the new sums of some rows.
func (m *memory) changed(table string, old, fresh map[rollupRow]sums) {
	for r, o := range old {
		n := fresh[r]
		m.apply(table, r, sums{n.n - o.n, n.d - o.d}, n)
	}
	for r, n := range fresh {
		if _, ok := old[r]; !ok {
			m.apply(table, r, n, n)
		}
	}
}

func (m *memory) apply(table string, r rollupRow, delta, now sums) {
	if delta == (sums{}) {
		return
	}
	switch table {
	case "kpi_hourly":
		m.hours[r] = now
	case "kpi_daily":
		m.days[r] = now
		mr := rollupRow{r.kpi, monthOf(r.t), r.unit}
		ms := m.months[mr]
		m.months[mr] = sums{ms.n + delta.n, ms.d + delta.d}
	}
}

// prune drops what no window at the instant at reads any more.
func (m *memory) prune(at time.Time) {
	h := at.Truncate(time.Hour).Add(-memHours)
	for r := range m.hours {
		if r.t.Before(h) {
			delete(m.hours, r)
		}
	}
	d := localDay(at, m.loc).AddDate(0, 0, -memDays)
	for r := range m.days {
		if r.t.Before(d) {
			delete(m.days, r)
		}
	}
	mo := monthOf(localDay(at, m.loc)).AddDate(-1, 0, 0)
	for r := range m.months {
		if r.t.Before(mo) {
			delete(m.months, r)
		}
	}
}

// windows sums the family's windowed KPIs for every unit with something
// counted and every standard window, rolled up to the ancestors through
// paths (unit → its path, itself included).
func (m *memory) windows(e *Engine, family string, spans map[string]Span, paths map[string][]string, out map[Key]Value) {
	type acc struct {
		kpi, unit, window string
	}
	sum := map[acc]sums{}
	add := func(r rollupRow, s sums, w string) {
		for _, anc := range paths[r.unit] {
			a := acc{r.kpi, anc, w}
			t := sum[a]
			sum[a] = sums{t.n + s.n, t.d + s.d}
		}
	}
	inFamily := func(id string) bool {
		k, ok := e.cat.KPI(id)
		return ok && k.Family == family && !k.Instant()
	}
	within := func(t time.Time, s Span) bool { return !t.Before(s.From) && t.Before(s.To) }
	monthInside := func(month time.Time, s Span) bool {
		return !month.Before(s.From) && !month.AddDate(0, 1, 0).After(s.To)
	}
	for r, s := range m.hours {
		if inFamily(r.kpi) && within(r.t, spans[Window24h]) {
			add(r, s, Window24h)
		}
	}
	for r, s := range m.days {
		if !inFamily(r.kpi) {
			continue
		}
		mo := monthOf(r.t)
		for _, w := range StandardWindows {
			if sp := spans[w]; w != Window24h && within(r.t, sp) && !monthInside(mo, sp) {
				add(r, s, w)
			}
		}
	}
	for r, s := range m.months {
		if !inFamily(r.kpi) {
			continue
		}
		for _, w := range StandardWindows {
			if sp := spans[w]; w != Window24h && monthInside(r.t, sp) {
				add(r, s, w)
			}
		}
	}
	for a, s := range sum {
		k, _ := e.cat.KPI(a.kpi)
		v := newValue(k, a.unit, spans[a.window], s.n, s.d)
		out[v.Key] = v
	}
}

// pathsTTL: unit paths are read again after this long (reference data
// replaced on another node shows within it), not on every commit.
const pathsTTL = 30 * time.Second

// dropMemory forgets the sums and the held hours of the event views: the
// next computation reloads them from the
// rollup tables.
func (e *Engine) dropMemory() {
	e.memMu.Lock()
	e.mem = nil
	e.memMu.Unlock()
	e.events.drop()
}

// unitPaths is every unit's path (itself included), read at most once per
// pathsTTL; e.memMu is held.
func (e *Engine) unitPaths(ctx context.Context) (map[string][]string, error) {
	if e.paths != nil && time.Since(e.pathsAt) < pathsTTL {
		return e.paths, nil
	}
	rows, err := e.db.Conn.Query(ctx, fmt.Sprintf("SELECT code, path FROM %s.units", e.b.DB))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var code string
		var path []string
		if err := rows.Scan(&code, &path); err != nil {
			return nil, err
		}
		out[code] = path
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	e.paths, e.pathsAt = out, time.Now()
	return out, nil
}
