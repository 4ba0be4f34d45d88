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
// thousand sums, whatever the history. The sums are held per KPI, so that
// a family's windows walk that family's sums only.
type memory struct {
	loc    *time.Location
	kpis   map[string]*kpiMemory
	pruned time.Time // the hour of the last prune
	// The first hour, day and month held.
	hoursFrom, daysFrom, monthsFrom time.Time
}

// kpiMemory is one KPI's sums, by unit and hour, day or month (t: the first
// of the month).
type kpiMemory struct {
	hours, days, months map[unitTime]sums
}

type unitTime struct {
	t    time.Time
	unit string
}

const (
	memHours = 48 * time.Hour
	memDays  = 62 // days kept: a window's part-months lie within the last 31
)

func monthOf(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, day.Location())
}

func (m *memory) kpi(id string) *kpiMemory {
	k := m.kpis[id]
	if k == nil {
		k = &kpiMemory{hours: map[unitTime]sums{}, days: map[unitTime]sums{}, months: map[unitTime]sums{}}
		m.kpis[id] = k
	}
	return k
}

// loadMemory reads the rollups from ClickHouse for the windows at the
// instant at.
func (e *Engine) loadMemory(ctx context.Context, at time.Time) (*memory, error) {
	today := localDay(at, e.b.Loc)
	first := monthOf(localDay(horizon(at, e.b.Loc), e.b.Loc))
	m := &memory{loc: e.b.Loc, kpis: map[string]*kpiMemory{}, hoursFrom: at.Truncate(time.Hour).Add(-memHours),
		daysFrom: today.AddDate(0, 0, -memDays), monthsFrom: first}
	var kpis []string
	for _, k := range e.cat.KPIs {
		if !k.Instant() {
			kpis = append(kpis, k.ID)
		}
	}
	if len(kpis) == 0 {
		return m, nil
	}
	hours, err := e.readRollup(ctx, "kpi_hourly", "hour", kpis, "hour >= "+e.b.literal(m.hoursFrom))
	if err != nil {
		return nil, err
	}
	for r, s := range hours {
		m.kpi(r.kpi).hours[unitTime{r.t, r.unit}] = s
	}
	days, err := e.readRollup(ctx, "kpi_daily", "day", kpis, "day >= "+dateLiteral(first))
	if err != nil {
		return nil, err
	}
	for r, s := range days {
		k := m.kpi(r.kpi)
		if !r.t.Before(m.daysFrom) {
			k.days[unitTime{r.t, r.unit}] = s
		}
		bumpSums(k.months, unitTime{monthOf(r.t), r.unit}, s)
	}
	return m, nil
}

// add applies changes the engine wrote to a rollup table, to the sums it
// holds (a change to a time before them is no window's).
func (m *memory) add(table string, delta map[rollupRow]sums) {
	for r, dl := range delta {
		if dl == (sums{}) {
			continue
		}
		k := m.kpi(r.kpi)
		switch table {
		case "kpi_hourly":
			if !r.t.Before(m.hoursFrom) {
				bumpSums(k.hours, unitTime{r.t, r.unit}, dl)
			}
		case "kpi_daily":
			if !r.t.Before(m.daysFrom) {
				bumpSums(k.days, unitTime{r.t, r.unit}, dl)
			}
			if mo := monthOf(r.t); !mo.Before(m.monthsFrom) {
				bumpSums(k.months, unitTime{mo, r.unit}, dl)
			}
		}
	}
}

// bumpSums adds dl to the sums of k.
func bumpSums[K comparable](m map[K]sums, k K, dl sums) {
	s := m[k]
	m[k] = sums{s.n + dl.n, s.d + dl.d}
}

// prune drops what no window at the instant at reads any more; it walks
// the sums once an hour.
func (m *memory) prune(at time.Time) {
	hour := at.Truncate(time.Hour)
	if hour.Equal(m.pruned) {
		return
	}
	m.pruned = hour
	h := hour.Add(-memHours)
	d := localDay(at, m.loc).AddDate(0, 0, -memDays)
	mo := monthOf(localDay(at, m.loc)).AddDate(-1, 0, 0)
	m.hoursFrom, m.daysFrom = h, d
	if m.monthsFrom.Before(mo) {
		m.monthsFrom = mo
	}
	for _, k := range m.kpis {
		for r := range k.hours {
			if r.t.Before(h) {
				delete(k.hours, r)
			}
		}
		for r := range k.days {
			if r.t.Before(d) {
				delete(k.days, r)
			}
		}
		for r := range k.months {
			if r.t.Before(mo) {
				delete(k.months, r)
			}
		}
	}
}

// windows sums the family's windowed KPIs for every unit with something
// counted and every standard window, rolled up to the ancestors through
// paths (unit → its path, itself included).
func (m *memory) windows(e *Engine, family string, spans map[string]Span, paths map[string][]string, out map[Key]Value) {
	// The windows each day and each month falls in, found once per day
	// and month rather than once per sum.
	within := func(t time.Time, s Span) bool { return !t.Before(s.From) && t.Before(s.To) }
	monthInside := func(month time.Time, s Span) bool {
		return !month.Before(s.From) && !month.AddDate(0, 1, 0).After(s.To)
	}
	dayWindows := map[time.Time][]string{}
	monthWindows := map[time.Time][]string{}
	type acc struct{ unit, window string }
	for _, k := range e.cat.KPIs {
		km := m.kpis[k.ID]
		if k.Family != family || k.Instant() || km == nil {
			continue
		}
		sum := map[acc]sums{}
		add := func(unit string, s sums, w string) {
			for _, anc := range paths[unit] {
				bumpSums(sum, acc{anc, w}, s)
			}
		}
		for r, s := range km.hours {
			if within(r.t, spans[Window24h]) {
				add(r.unit, s, Window24h)
			}
		}
		for r, s := range km.days {
			ws, ok := dayWindows[r.t]
			if !ok {
				mo := monthOf(r.t)
				for _, w := range StandardWindows {
					if sp := spans[w]; w != Window24h && within(r.t, sp) && !monthInside(mo, sp) {
						ws = append(ws, w)
					}
				}
				dayWindows[r.t] = ws
			}
			for _, w := range ws {
				add(r.unit, s, w)
			}
		}
		for r, s := range km.months {
			ws, ok := monthWindows[r.t]
			if !ok {
				for _, w := range StandardWindows {
					if sp := spans[w]; w != Window24h && monthInside(r.t, sp) {
						ws = append(ws, w)
					}
				}
				monthWindows[r.t] = ws
			}
			for _, w := range ws {
				add(r.unit, s, w)
			}
		}
		for a, s := range sum {
			v := newValue(k, a.unit, spans[a.window], s.n, s.d)
			out[v.Key] = v
		}
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
