package kpi

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	// The window sums of each family as windows last walked them (by
	// family, and the same by KPI), kept up to date by add: a commit then
	// costs what it changed, not a walk over every sum held. They hold
	// while the spans and the unit paths they were walked with do (an hour
	// at most).
	walked      map[string]*windowSums
	walkedByKPI map[string]*windowSums
}

// windowSums is a family's sums by KPI, unit (every ancestor of the units
// counted) and standard window.
type windowSums struct {
	spans     map[string]Span
	paths     map[string][]string
	pathsGen  uint64
	kpis      map[string]map[unitWindow]sums
	dayWins   map[time.Time][]string
	monthWins map[time.Time][]string
}

type unitWindow struct{ unit, window string }

func newWindowSums(spans map[string]Span, paths map[string][]string, pathsGen uint64) *windowSums {
	return &windowSums{spans: spans, paths: paths, pathsGen: pathsGen, kpis: map[string]map[unitWindow]sums{},
		dayWins: map[time.Time][]string{}, monthWins: map[time.Time][]string{}}
}

// holds says whether the sums were walked with these spans and paths.
func (w *windowSums) holds(spans map[string]Span, pathsGen uint64) bool {
	if w.pathsGen != pathsGen {
		return false
	}
	for _, win := range StandardWindows {
		a, b := w.spans[win], spans[win]
		if !a.From.Equal(b.From) || !a.To.Equal(b.To) {
			return false
		}
	}
	return true
}

func within(t time.Time, s Span) bool { return !t.Before(s.From) && t.Before(s.To) }

func monthInside(month time.Time, s Span) bool {
	return !month.Before(s.From) && !month.AddDate(0, 1, 0).After(s.To)
}

// hourWindows: the windows an hour's sums count in (24h only: the other
// windows read days and months).
func (w *windowSums) hourWindows(t time.Time) []string {
	if within(t, w.spans[Window24h]) {
		return only24h
	}
	return nil
}

var only24h = []string{Window24h}

// dayWindows: the windows a day's sums count in, those whose span holds
// the day but not its whole month (which the month's sums give).
func (w *windowSums) dayWindows(day time.Time) []string {
	ws, ok := w.dayWins[day]
	if !ok {
		mo := monthOf(day)
		for _, win := range StandardWindows {
			if sp := w.spans[win]; win != Window24h && within(day, sp) && !monthInside(mo, sp) {
				ws = append(ws, win)
			}
		}
		w.dayWins[day] = ws
	}
	return ws
}

// monthWindows: the windows whose span holds the whole month.
func (w *windowSums) monthWindows(month time.Time) []string {
	ws, ok := w.monthWins[month]
	if !ok {
		for _, win := range StandardWindows {
			if sp := w.spans[win]; win != Window24h && monthInside(month, sp) {
				ws = append(ws, win)
			}
		}
		w.monthWins[month] = ws
	}
	return ws
}

// add counts s, of a unit, in the windows, for the unit and its ancestors.
func (w *windowSums) add(kpi, unit string, s sums, windows []string) {
	if len(windows) == 0 {
		return
	}
	m := w.kpis[kpi]
	if m == nil {
		m = map[unitWindow]sums{}
		w.kpis[kpi] = m
	}
	for _, anc := range w.paths[unit] {
		for _, win := range windows {
			bumpSums(m, unitWindow{anc, win}, s)
		}
	}
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
// holds (a change to a time before them is no window's), and to the window
// sums walked from them.
func (m *memory) add(table string, delta map[rollupRow]sums) {
	for r, dl := range delta {
		if dl == (sums{}) {
			continue
		}
		k := m.kpi(r.kpi)
		w := m.walkedByKPI[r.kpi]
		switch table {
		case "kpi_hourly":
			if !r.t.Before(m.hoursFrom) {
				bumpSums(k.hours, unitTime{r.t, r.unit}, dl)
				if w != nil {
					w.add(r.kpi, r.unit, dl, w.hourWindows(r.t))
				}
			}
		case "kpi_daily":
			if !r.t.Before(m.daysFrom) {
				bumpSums(k.days, unitTime{r.t, r.unit}, dl)
				if w != nil {
					w.add(r.kpi, r.unit, dl, w.dayWindows(r.t))
				}
			}
			if mo := monthOf(r.t); !mo.Before(m.monthsFrom) {
				bumpSums(k.months, unitTime{mo, r.unit}, dl)
				if w != nil {
					w.add(r.kpi, r.unit, dl, w.monthWindows(mo))
				}
			}
		}
	}
}

// forgetWalks drops the window sums walked: the next windows walks again.
func (m *memory) forgetWalks() {
	m.walked, m.walkedByKPI = nil, nil
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
	m.forgetWalks()
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
// paths (unit → its path, itself included; pathsGen changes when they do).
// The sums walked are kept, and kept up to date by add, until the spans or
// the paths change.
func (m *memory) windows(e *Engine, family string, spans map[string]Span, paths map[string][]string, pathsGen uint64, out map[Key]Value) {
	w := m.walked[family]
	if w == nil || !w.holds(spans, pathsGen) {
		w = m.walk(e, family, spans, paths, pathsGen)
	}
	for _, k := range e.cat.KPIs {
		if k.Family != family || k.Instant() {
			continue
		}
		for a, s := range w.kpis[k.ID] {
			v := newValue(k, a.unit, spans[a.window], s.n, s.d)
			out[v.Key] = v
		}
	}
}

// walk sums the family's windows from every sum held, and keeps them.
func (m *memory) walk(e *Engine, family string, spans map[string]Span, paths map[string][]string, pathsGen uint64) *windowSums {
	w := newWindowSums(spans, paths, pathsGen)
	if m.walked == nil {
		m.walked, m.walkedByKPI = map[string]*windowSums{}, map[string]*windowSums{}
	}
	if old := m.walked[family]; old != nil {
		for id := range old.kpis {
			delete(m.walkedByKPI, id)
		}
	}
	m.walked[family] = w
	for _, k := range e.cat.KPIs {
		if k.Family != family || k.Instant() {
			continue
		}
		w.kpis[k.ID] = map[unitWindow]sums{}
		m.walkedByKPI[k.ID] = w
		km := m.kpis[k.ID]
		if km == nil {
			continue
		}
		for r, s := range km.hours {
			w.add(k.ID, r.unit, s, w.hourWindows(r.t))
		}
		for r, s := range km.days {
			w.add(k.ID, r.unit, s, w.dayWindows(r.t))
		}
		for r, s := range km.months {
			w.add(k.ID, r.unit, s, w.monthWindows(r.t))
		}
	}
	return w
}

// pathsTTL: unit paths are read again after this long (reference data
// replaced on another node shows within it), not on every commit.
const pathsTTL = 30 * time.Second

// reloadMemory loads mem from the rollup tables, once the rollup writes
// under way have ended (holding back those that would start); e.memMu is
// held.
func (e *Engine) reloadMemory(ctx context.Context, at time.Time) error {
	e.memLoading++
	defer func() {
		e.memLoading--
		e.memCond.Broadcast()
	}()
	for e.memWriting > 0 {
		e.memCond.Wait()
	}
	if e.mem != nil { // loaded meanwhile
		return nil
	}
	m, err := e.loadMemory(ctx, at)
	if err != nil {
		return err
	}
	e.mem = m
	return nil
}

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
// pathsTTL, with a number that changes when they do; e.memMu is held.
func (e *Engine) unitPaths(ctx context.Context) (map[string][]string, uint64, error) {
	if e.paths != nil && time.Since(e.pathsAt) < pathsTTL {
		return e.paths, e.pathsGen, nil
	}
	rows, err := e.db.Conn.Query(ctx, fmt.Sprintf("SELECT code, path FROM %s.units", e.b.DB))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var code string
		var path []string
		if err := rows.Scan(&code, &path); err != nil {
			return nil, 0, err
		}
		out[code] = path
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if !maps.EqualFunc(e.paths, out, slices.Equal) {
		e.paths = out
		e.pathsGen++
	}
	e.pathsAt = time.Now()
	return e.paths, e.pathsGen, nil
}
