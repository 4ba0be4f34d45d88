package kpi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/query"
)

// Rollups. For every KPI counted over windows the engine keeps the
// numerator and denominator per hour and unit (kpi_hourly) and per local
// day and unit (kpi_daily), as sums of changes; the values of every window
// are then sums over at most a year of days. For a view of entities a
// commit adds the changes of the contributions of the entities it touched
// (contrib.go). For a view of events it recomputes the hours the events
// span, and a node taking over recomputes the hours of the entities
// accepted recently, from the views (restricted to the entities of those
// hours, entity_hours), then the days of those hours from the hourly rows,
// and writes the difference with what the rollups held. Either way a
// repeated delivery or a replay changes nothing.

// work is what commit notices asked for a family since its last
// recomputation.
type work struct {
	subjects  map[string]bool
	truncated bool // more subjects than notices carry: recompute everything
	// full: recompute the hours of the entities touched from the views,
	// rather than apply the changes of their contributions (a takeover).
	full       bool
	minT, maxT time.Time
}

// quotedIDs is the subjects as sorted SQL string literals.
func (w *work) quotedIDs() []string {
	ids := make([]string, 0, len(w.subjects))
	for s := range w.subjects {
		ids = append(ids, query.Quote(s))
	}
	slices.Sort(ids)
	return ids
}

func (w *work) add(subjects []string, truncated bool, minT, maxT time.Time) {
	if w.subjects == nil {
		w.subjects = map[string]bool{}
	}
	for _, s := range subjects {
		w.subjects[s] = true
	}
	w.truncated = w.truncated || truncated
	if !minT.IsZero() && (w.minT.IsZero() || minT.Before(w.minT)) {
		w.minT = minT
	}
	if maxT.After(w.maxT) {
		w.maxT = maxT
	}
}

// hourSet is a set of hours, or every hour from a start (all).
type hourSet struct {
	all   bool
	from  time.Time // with all
	hours map[time.Time]bool
	// lo and hi, for an event view, are the first and last time of the
	// events that touched the hours.
	lo, hi time.Time
}

func (h *hourSet) addHour(t time.Time) {
	if h.hours == nil {
		h.hours = map[time.Time]bool{}
	}
	h.hours[t.Truncate(time.Hour)] = true
}

func (h *hourSet) empty() bool { return !h.all && len(h.hours) == 0 }

func (h *hourSet) sorted() []time.Time {
	out := make([]time.Time, 0, len(h.hours))
	for t := range h.hours {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// cond is the SQL condition "column is in one of the hours".
func (h *hourSet) cond(b *Builder, col string) string {
	if h.all {
		return col + " >= " + b.literal(h.from)
	}
	hs := h.sorted()
	lits := make([]string, len(hs))
	for i, t := range hs {
		lits[i] = b.literal(t)
	}
	return fmt.Sprintf("%[1]s >= %[2]s AND %[1]s < %[3]s AND toStartOfHour(%[1]s) IN (%[4]s)", col, lits[0],
		b.literal(hs[len(hs)-1].Add(time.Hour)), strings.Join(lits, ", "))
}

// maxListedHours in one statement.
const maxListedHours = 200

// split cuts a listed set into sets of at most n hours.
func (h *hourSet) split(n int) []*hourSet {
	if h.all || len(h.hours) <= n {
		return []*hourSet{h}
	}
	var out []*hourSet
	hs := h.sorted()
	for len(hs) > 0 {
		k := min(n, len(hs))
		part := &hourSet{lo: h.lo, hi: h.hi}
		for _, t := range hs[:k] {
			part.addHour(t)
		}
		out = append(out, part)
		hs = hs[k:]
	}
	return out
}

// horizon is the first hour any standard window starting at the instant at
// covers: the rollups are kept from there on.
func horizon(at time.Time, loc *time.Location) time.Time {
	first := at
	for _, w := range StandardWindows {
		if s, err := Resolve(w, at, loc); err == nil && s.From.Before(first) {
			first = s.From
		}
	}
	return first
}

// rollupKPIs are the KPIs of the family counted over windows, by source
// and time column.
func (e *Engine) rollupKPIs(family string) map[string]map[string][]*KPI {
	out := map[string]map[string][]*KPI{}
	for _, k := range e.cat.KPIs {
		if k.Family != family || k.Instant() {
			continue
		}
		if out[k.Source] == nil {
			out[k.Source] = map[string][]*KPI{}
		}
		out[k.Source][k.Time] = append(out[k.Source][k.Time], k)
	}
	return out
}

// Rebuild recomputes the family's rollups for every hour since the horizon
// of at: what a node does when it takes over, since notices may have been
// missed while no node led. While it runs the family is noted as built with
// no known definitions, so that readers go to the views (Reader.Series),
// and a rebuild cut short is done again at the next takeover.
func (e *Engine) Rebuild(ctx context.Context, family string, at time.Time) error {
	e.dropMemory()
	// The fingerprint of what the rebuild reads: reference data changed
	// while it runs gives another one, and another rebuild.
	fp, err := e.fingerprint(ctx, family)
	if err != nil {
		return err
	}
	if err := e.noteDefinitions(ctx, family, ""); err != nil {
		return err
	}
	if err := e.apply(ctx, family, &work{truncated: true}, at); err != nil {
		return err
	}
	return e.noteDefinitions(ctx, family, fp)
}

// fingerprint is the family's fingerprint with its reference data now.
func (e *Engine) fingerprint(ctx context.Context, family string) (string, error) {
	return fingerprintNow(ctx, e.cat, e.db, e.b, family)
}

// referenceCheck: how often a family's loop looks for a change of the
// reference data its rollups took from.
const referenceCheck = 10 * time.Second

// RebuildOnReferenceChange rebuilds the family's rollups when the reference
// data they took from (References) changed since they were built (a camera
// moved to another ward, a holiday added in the past), or when a rebuild was
// cut short. Looked at every referenceCheck at most; a family with no
// references costs nothing.
func (e *Engine) RebuildOnReferenceChange(ctx context.Context, family string, at time.Time) (bool, error) {
	if len(e.cat.References(family)) == 0 {
		return false, nil
	}
	e.openMu.Lock()
	if e.refChecked == nil {
		e.refChecked = map[string]time.Time{}
	}
	last := e.refChecked[family]
	due := time.Since(last) >= referenceCheck
	if due {
		e.refChecked[family] = time.Now()
	}
	built, known := e.builtFP[family]
	e.openMu.Unlock()
	if !due || !known { // not caught up yet (CatchUp notes it)
		return false, nil
	}
	fp, err := e.fingerprint(ctx, family)
	if err != nil || fp == built {
		return false, err
	}
	e.log.Info("reference data changed: rebuilding the family's rollups", "family", family, "references", e.cat.References(family))
	return true, e.Rebuild(ctx, family, at)
}

// catchUpMargin: events accepted or written this long before the rollups'
// last write are applied again when a node takes over, for commits the
// previous leader may have received after its last write, or not at all
// (the margin also covers the clocks of the nodes and of ClickHouse).
const catchUpMargin = 10 * time.Minute

// maxCatchUp subjects; beyond, a takeover rebuilds the family's rollups.
const maxCatchUp = 50_000

// CatchUp brings the family's rollups up to date when a node takes over:
// it applies again the events accepted or written to ClickHouse since
// shortly before the rollups were last written, or rebuilds them when there
// were none or too many.
func (e *Engine) CatchUp(ctx context.Context, family string, at time.Time) (rebuilt bool, err error) {
	// Another node may have built generations since.
	e.setGen("kpi_open", family, 0)
	e.setGen("kpi_contrib", family, 0)
	// Built with other definitions (or with none recorded, before schema
	// 15): rebuilt, so that the definitions in force apply to all history.
	fp, err := e.fingerprint(ctx, family)
	if err != nil {
		return false, err
	}
	built, last, err := builtWith(ctx, e.db, e.b.DB, family)
	if err != nil {
		return false, err
	}
	if built == fp {
		e.setBuilt(family, fp)
	}
	if last == 0 || built != fp {
		if last != 0 {
			e.log.Info("kpi definitions changed: rebuilding the family", "family", family)
		}
		return true, e.Rebuild(ctx, family, at)
	}
	if e.entitySources(family) {
		gen, err := e.contribGen(ctx, family)
		if err != nil {
			return false, err
		}
		if gen == 0 {
			return true, e.Rebuild(ctx, family, at)
		}
	}
	since := time.Unix(0, int64(last)).Add(-catchUpMargin)
	// Accepted since, or written to ClickHouse since (inserted_at, the
	// server's time of the insert): a backlog's events accepted long before
	// the last write may have been committed after it.
	q := fmt.Sprintf("SELECT subject, min(time), max(time) FROM %s.%s_events WHERE accepted_at >= %[3]s OR inserted_at >= %[3]s GROUP BY subject LIMIT %[4]d",
		e.b.DB, family, e.b.literal(since), maxCatchUp+1)
	rows, err := e.db.Conn.Query(ctx, q)
	if err != nil {
		return false, err
	}
	w := &work{full: true}
	n := 0
	for rows.Next() {
		var subject string
		var minT, maxT time.Time
		if err := rows.Scan(&subject, &minT, &maxT); err != nil {
			rows.Close()
			return false, err
		}
		w.add([]string{subject}, false, minT, maxT)
		n++
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return false, err
	}
	if n > maxCatchUp {
		return true, e.Rebuild(ctx, family, at)
	}
	e.dropMemory()
	return false, e.apply(ctx, family, w, at)
}

// apply recomputes the rollup hours the work touched, and their days, and
// the open entities it touched (the two concurrently: they read and write
// different tables).
//
// When it fails, some rollup changes may have been written (or written with
// the answer lost) without the contributions that account for them: the
// work is marked to recompute the hours of its entities from the views on
// its retry, as a takeover does, and the window sums are read again.
func (e *Engine) apply(ctx context.Context, family string, w *work, at time.Time) error {
	// When the rollups look the touched entities up in the view the open
	// entities come from, that lookup also gives their rows of kpi_open:
	// the view is read once.
	var openGen chan uint64
	if src := e.openSource(family); src != nil && !w.full && !w.truncated && len(w.subjects) > 0 {
		if _, ok := e.rollupKPIs(family)[src.Name]; ok {
			gen, err := e.contribGen(ctx, family)
			if err != nil {
				return err
			}
			if gen != 0 {
				openGen = make(chan uint64, 1)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.refreshOpen(gctx, family, w, openGen) })
	g.Go(func() error { return e.applyRollups(gctx, family, w, at, openGen) })
	err := g.Wait()
	if err != nil {
		w.full = true
		e.dropMemory()
	}
	return err
}

func (e *Engine) applyRollups(ctx context.Context, family string, w *work, at time.Time, openGen <-chan uint64) error {
	h0 := horizon(at, e.b.Loc)
	// The days change by what their hours did (kpi_daily holds the sums
	// of kpi_hourly by local day). When every hour was recomputed, or on a
	// retry (an attempt that failed may have written hours and not their
	// days), the days are recomputed from their hours instead.
	daily := map[rollupRow]sums{}
	// The hours of event sources read by their buckets: written with the
	// days, at once, at the end.
	hourly := map[rollupRow]sums{}
	days := map[time.Time]bool{}
	allDays := false
	var gen, newGen uint64
	if e.entitySources(family) {
		var err error
		if gen, err = e.contribGen(ctx, family); err != nil {
			return err
		}
		if gen == 0 || w.truncated {
			newGen = uint64(time.Now().UnixNano())
		}
	}
	for srcName, byTime := range e.rollupKPIs(family) {
		src := e.cat.Sources[srcName]
		switch {
		case src.Events:
		case newGen != 0:
			if err := e.rebuildContribs(ctx, src, byTime, newGen, h0); err != nil {
				return err
			}
			allDays = true
			continue
		case !w.full:
			if len(w.subjects) > 0 {
				var og <-chan uint64
				if openGen != nil && src == e.openSource(family) {
					og = openGen
				}
				if err := e.applyContribs(ctx, src, byTime, w.quotedIDs(), gen, h0, og); err != nil {
					return fmt.Errorf("rollup %s: %w", src.View, err)
				}
			}
			continue
		}
		hours, err := e.touchedHours(ctx, src, byTime, w, h0, gen)
		if err != nil {
			return fmt.Errorf("hours touched in %s: %w", src.View, err)
		}
		for col, kpis := range byTime {
			hs := hours[col]
			if hs == nil || hs.empty() {
				continue
			}
			for _, part := range hs.split(maxListedHours) {
				var delta map[rollupRow]sums
				var err error
				if bucketed(src, part) {
					if delta, err = e.eventDelta(ctx, src, col, kpis, part); err == nil {
						for r, d := range delta {
							bumpSums(hourly, r, d)
						}
					}
				} else {
					delta, err = e.updateHourly(ctx, src, col, kpis, part, gen)
				}
				if err != nil {
					return fmt.Errorf("rollup %s by %s: %w", src.View, col, err)
				}
				addDays(daily, delta, e.b.Loc)
			}
			if hs.all {
				allDays = true
			}
			for t := range hs.hours {
				days[localDay(t, e.b.Loc)] = true
			}
		}
	}
	var kpis []string
	for _, byTime := range e.rollupKPIs(family) {
		for _, ks := range byTime {
			for _, k := range ks {
				kpis = append(kpis, k.ID)
			}
		}
	}
	dropZero(hourly)
	var err error
	switch {
	case allDays || w.full && len(days) > 0:
		// The days are summed from kpi_hourly: its rows come first.
		if err = e.addRollup(ctx, "kpi_hourly", hourly); err != nil {
			return err
		}
		if allDays {
			err = e.updateDaily(ctx, kpis, nil, localDay(h0, e.b.Loc))
		} else {
			err = e.updateDaily(ctx, kpis, days, time.Time{})
		}
	default:
		// The days follow from the hours' changes: both written at once.
		// Should one fail, the retry recomputes the days from their hours.
		dropZero(daily)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return e.addRollup(gctx, "kpi_hourly", hourly) })
		g.Go(func() error { return e.addRollup(gctx, "kpi_daily", daily) })
		err = g.Wait()
	}
	if err != nil {
		return err
	}
	if newGen != 0 {
		if err := e.markContribs(ctx, family, newGen); err != nil {
			return err
		}
	}
	return e.noteProgress(ctx, family, w.truncated || w.full)
}

func localDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// addDays adds changes of hourly rows to the rows of their local days.
func addDays(daily, hourly map[rollupRow]sums, loc *time.Location) {
	for r, s := range hourly {
		bumpSums(daily, rollupRow{r.kpi, localDay(r.t, loc), r.unit}, s)
	}
}

// dropZero removes the rows whose changes sum to nothing.
func dropZero(m map[rollupRow]sums) {
	maps.DeleteFunc(m, func(_ rollupRow, s sums) bool { return s == (sums{}) })
}

// touchedHours finds, per time column, the hours whose rollup the work
// changes: for an entity view, the hours its touched entities fall in now
// (a lookup by key); for an event view, every hour the events' times span.
func (e *Engine) touchedHours(ctx context.Context, src *Source, byTime map[string][]*KPI, w *work, h0 time.Time, gen uint64) (map[string]*hourSet, error) {
	out := map[string]*hourSet{}
	if w.truncated {
		for col := range byTime {
			out[col] = &hourSet{all: true, from: h0}
		}
		return out, nil
	}
	if src.Events {
		if w.minT.IsZero() {
			return out, nil
		}
		from := w.minT.Truncate(time.Hour)
		if from.Before(h0) {
			from = h0
		}
		for col := range byTime {
			hs := &hourSet{lo: w.minT, hi: w.maxT}
			for t := from; !t.After(w.maxT); t = t.Add(time.Hour) {
				hs.addHour(t)
			}
			out[col] = hs
		}
		return out, nil
	}
	if len(w.subjects) == 0 {
		return out, nil
	}
	cols := sortedCols(byTime)
	ids := w.quotedIDs()
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "toStartOfHour(" + c + ")"
	}
	colOf := map[string]string{}
	for col, kind := range src.Hours {
		colOf[kind] = col
	}
	for chunk := range query.Chunks(ids, true) {
		q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s IN (%s)", strings.Join(sel, ", "), e.b.DB, src.View, src.ID, strings.Join(chunk, ", "))
		if err := e.hoursOf(ctx, q, cols, h0, out); err != nil {
			return nil, err
		}
		// The hours the entities' stored contributions are in: where
		// they were counted before.
		stored, err := e.storedContribs(ctx, src.Family, gen, chunk)
		if err != nil {
			return nil, err
		}
		for k, c := range stored {
			if col := colOf[k.kind]; byTime[col] != nil && !c.hour.Before(h0) {
				if out[col] == nil {
					out[col] = &hourSet{}
				}
				out[col].addHour(c.hour)
			}
		}
	}
	return out, nil
}

// hoursOf adds the hours of the rows of q (one time per column) to out.
func (e *Engine) hoursOf(ctx context.Context, q string, cols []string, h0 time.Time, out map[string]*hourSet) error {
	rows, err := e.db.Conn.Query(query.Pushdown(ctx), q)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]time.Time, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, t := range vals {
			if t.Unix() <= 0 || t.Before(h0) {
				continue
			}
			if out[cols[i]] == nil {
				out[cols[i]] = &hourSet{}
			}
			out[cols[i]].addHour(t)
		}
	}
	return rows.Err()
}

// rollupRow is one (kpi, bucket, unit) of a rollup table.
type rollupRow struct {
	kpi  string
	t    time.Time
	unit string
}

type sums struct{ n, d int64 }

// updateHourly recomputes the hours of the KPIs counted by one time column
// of a source, writes the rows that changed and returns their changes.
func (e *Engine) updateHourly(ctx context.Context, src *Source, col string, kpis []*KPI, hs *hourSet, gen uint64) (map[rollupRow]sums, error) {
	inner := append([]string{"toStartOfHour(" + col + ") AS h", src.Unit + " AS unit"}, e.sumTerms(kpis)...)
	base := "SELECT " + strings.Join(inner, ", ") + " FROM " + e.sourceExpr(src, hs.cond(e.b, col))
	fresh := map[rollupRow]sums{}
	add := func(q string) error {
		rows, err := e.db.Conn.Query(query.Pushdown(ctx), q)
		if err != nil {
			return err
		}
		defer rows.Close()
		var h time.Time
		var unit string
		vals := make([]int64, 2*len(kpis))
		dest := []any{&h, &unit}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			for i, k := range kpis {
				if vals[2*i] != 0 || vals[2*i+1] != 0 {
					bumpSums(fresh, rollupRow{k.ID, h, unit}, sums{vals[2*i], vals[2*i+1]})
				}
			}
		}
		return rows.Err()
	}
	if src.Events {
		// Event views are found by their time.
		if err := add(base + " GROUP BY h, unit"); err != nil {
			return nil, err
		}
		return e.writeHourly(ctx, kpis, hs, fresh)
	}
	// The entities of those hours, by key: ClickHouse then merges the
	// state of these entities only. (A key set from a subquery is not used
	// that way by 18.16; a literal list is.) Their contributions are
	// stored anew from the same read.
	ids, err := e.entityIDs(ctx, src, col, hs)
	if err != nil {
		return nil, err
	}
	var contribs []contribRow
	byTime := map[string][]*KPI{col: kpis}
	for len(ids) > 0 {
		n := min(len(ids), query.MaxKeys)
		cond := hs.cond(e.b, col) + " AND " + src.ID + " IN (" + strings.Join(ids[:n], ", ") + ")"
		cs, err := e.viewContribs(ctx, src, byTime, cond, time.Time{}, nil)
		if err != nil {
			return nil, err
		}
		for k, c := range cs {
			c.addTo(fresh, 1)
			contribs = append(contribs, contribRow{k, c})
		}
		ids = ids[n:]
	}
	delta, err := e.writeHourly(ctx, kpis, hs, fresh)
	if err != nil {
		return nil, err
	}
	return delta, e.writeContribs(ctx, src.Family, gen, contribs)
}

// bucketed reports whether the hours of a source are found from the
// buckets its commit's events span (eventHours).
func bucketed(src *Source, hs *hourSet) bool {
	return src.Events && !hs.all && !hs.lo.IsZero()
}

// eventDelta returns the changes of the listed hours of an event source's
// time column, for a commit whose events' times are within [hs.lo,
// hs.hi], without writing them: their fresh sums and the rollup's are read
// at once.
func (e *Engine) eventDelta(ctx context.Context, src *Source, col string, kpis []*KPI, hs *hourSet) (map[rollupRow]sums, error) {
	var fresh, old map[rollupRow]sums
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		fresh, err = e.eventHours(gctx, src, col, kpis, hs)
		return err
	})
	g.Go(func() (err error) {
		old, err = e.readRollup(gctx, "kpi_hourly", "hour", kpiIDs(kpis), hs.cond(e.b, "hour"))
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return rollupDelta(old, fresh), nil
}

// writeHourly writes the hourly rows of the hours that changed, and
// returns their changes.
func (e *Engine) writeHourly(ctx context.Context, kpis []*KPI, hs *hourSet, fresh map[rollupRow]sums) (map[rollupRow]sums, error) {
	old, err := e.readRollup(ctx, "kpi_hourly", "hour", kpiIDs(kpis), hs.cond(e.b, "hour"))
	if err != nil {
		return nil, err
	}
	return e.writeRollup(ctx, "kpi_hourly", old, fresh)
}

// entityIDs lists, quoted, the entities whose time column may fall in the
// hours.
func (e *Engine) entityIDs(ctx context.Context, src *Source, col string, hs *hourSet) ([]string, error) {
	q := fmt.Sprintf("SELECT DISTINCT id FROM %s.entity_hours WHERE family = %s AND kind = %s AND %s",
		e.b.DB, query.Quote(src.Family), query.Quote(src.Hours[col]), hs.cond(e.b, "hour"))
	ids, err := query.Strings(ctx, e.db.Conn, q)
	for i, id := range ids {
		ids[i] = query.Quote(id)
	}
	return ids, err
}

// updateDaily recomputes days of the KPIs from their hourly rows: the days
// listed, or every day from `from` on when days is nil.
func (e *Engine) updateDaily(ctx context.Context, kpis []string, days map[time.Time]bool, from time.Time) error {
	if len(kpis) == 0 {
		return nil
	}
	var hourCond, dayCond string
	if days == nil {
		hourCond = "hour >= " + e.b.literal(from)
		dayCond = "day >= " + dateLiteral(from)
	} else {
		var hc, dc []string
		for d := range days {
			hc = append(hc, fmt.Sprintf("(hour >= %s AND hour < %s)", e.b.literal(d), e.b.literal(d.AddDate(0, 0, 1))))
			dc = append(dc, dateLiteral(d))
		}
		slices.Sort(hc)
		slices.Sort(dc)
		hourCond = "(" + strings.Join(hc, " OR ") + ")"
		dayCond = "day IN (" + strings.Join(dc, ", ") + ")"
	}
	tz := query.Quote(e.b.Loc.String())
	q := fmt.Sprintf(`SELECT kpi, toDate(hour, %s) AS day, unit, sum(numerator), sum(denominator)
FROM %s.kpi_hourly WHERE kpi IN (%s) AND %s GROUP BY kpi, day, unit`, tz, e.b.DB, quoteList(kpis), hourCond)
	fresh := map[rollupRow]sums{}
	rows, err := e.db.Conn.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r rollupRow
		var s sums
		if err := rows.Scan(&r.kpi, &r.t, &r.unit, &s.n, &s.d); err != nil {
			return err
		}
		if s.n != 0 || s.d != 0 {
			r.t = localDay(r.t, e.b.Loc)
			fresh[r] = s
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	old, err := e.readRollup(ctx, "kpi_daily", "day", kpis, dayCond)
	if err != nil {
		return err
	}
	_, err = e.writeRollup(ctx, "kpi_daily", old, fresh)
	return err
}

// readRollup reads rollup rows: the sums of their changes.
func (e *Engine) readRollup(ctx context.Context, table, tcol string, kpis []string, cond string) (map[rollupRow]sums, error) {
	q := fmt.Sprintf("SELECT kpi, %s, unit, sum(numerator), sum(denominator) FROM %s.%s WHERE kpi IN (%s) AND %s GROUP BY kpi, %[1]s, unit",
		tcol, e.b.DB, table, quoteList(kpis), cond)
	rows, err := e.db.Conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[rollupRow]sums{}
	for rows.Next() {
		var r rollupRow
		var s sums
		if err := rows.Scan(&r.kpi, &r.t, &r.unit, &s.n, &s.d); err != nil {
			return nil, err
		}
		if tcol == "day" {
			r.t = localDay(r.t, e.b.Loc)
		}
		out[r] = s
	}
	return out, rows.Err()
}

// writeRollup brings rollup rows from old to fresh: it adds the
// difference of the rows whose sums changed (those missing from fresh go
// to zero), and returns it.
func (e *Engine) writeRollup(ctx context.Context, table string, old, fresh map[rollupRow]sums) (map[rollupRow]sums, error) {
	delta := rollupDelta(old, fresh)
	return delta, e.addRollup(ctx, table, delta)
}

// rollupDelta is what brings rollup rows from old to fresh.
func rollupDelta(old, fresh map[rollupRow]sums) map[rollupRow]sums {
	delta := map[rollupRow]sums{}
	for r, s := range fresh {
		if o := old[r]; o != s {
			delta[r] = sums{s.n - o.n, s.d - o.d}
		}
	}
	for r, o := range old {
		if _, ok := fresh[r]; !ok && o != (sums{}) {
			delta[r] = sums{-o.n, -o.d}
		}
	}
	return delta
}

// addRollup adds changes to rollup rows (kpi_hourly by hour, kpi_daily by
// local day).
func (e *Engine) addRollup(ctx context.Context, table string, delta map[rollupRow]sums) error {
	if len(delta) == 0 {
		return nil
	}
	tcol := "hour"
	if table == "kpi_daily" {
		tcol = "day"
	}
	e.memMu.Lock()
	for e.memLoading > 0 {
		e.memCond.Wait()
	}
	e.memWriting++
	e.memMu.Unlock()
	send := func() error { return e.sendRollup(ctx, table, tcol, delta) }
	var err error
	if e.rollupSend != nil {
		err = e.rollupSend(table, send) // tests: a write failing before or after it is sent
	} else {
		err = send()
	}
	e.memMu.Lock()
	e.memWriting--
	if err == nil && e.mem != nil {
		e.mem.add(table, delta)
	}
	e.memCond.Broadcast()
	e.memMu.Unlock()
	if err != nil {
		return err
	}
	e.metrics.rollupRows.WithLabelValues(table).Add(float64(len(delta)))
	return nil
}

func (e *Engine) sendRollup(ctx context.Context, table, tcol string, delta map[rollupRow]sums) error {
	// A delta added twice counts twice: not past the lease by this node's
	// clock (a paused leader must not add beside the next one).
	if err := lease.Check(ctx); err != nil {
		return err
	}
	return e.db.Insert(e.db.AdditiveContext(ctx), fmt.Sprintf("INSERT INTO %s.%s (kpi, %s, unit, numerator, denominator)", e.b.DB, table, tcol), func(b driver.Batch) error {
		for r, s := range delta {
			t := r.t
			if tcol == "day" { // a Date: the local date, as UTC midnight
				t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			}
			if err := b.Append(r.kpi, t, r.unit, s.n, s.d); err != nil {
				return err
			}
		}
		return nil
	})
}

func kpiIDs(kpis []*KPI) []string {
	out := make([]string, len(kpis))
	for i, k := range kpis {
		out[i] = k.ID
	}
	return out
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = query.Quote(s)
	}
	return strings.Join(q, ", ")
}

func dateLiteral(d time.Time) string { return "toDate('" + d.Format("2006-01-02") + "')" }

// Fingerprint is a digest of what the family's rollups and open entities
// are built from: its KPIs over entity or event views (id, version, source,
// time column, filter, numerator, denominator), their sources (less the
// dimensions of their breakdowns) and the digests of the reference data
// they take from (References; refs by kind).
func (c *Catalog) Fingerprint(family string, refs map[string]string) string {
	type kpiDef struct {
		ID, Source, Time, Filter, Numerator, Denominator string
		Version                                          int
	}
	var defs []kpiDef
	sources := map[string]*Source{}
	for _, k := range c.KPIs {
		if k.Family != family {
			continue
		}
		defs = append(defs, kpiDef{k.ID, k.Source, k.Time, k.Filter, k.Numerator, k.Denominator, k.Version})
		if s := c.Sources[k.Source]; s != nil {
			// What the KPIs may be broken down by changes no sum.
			bare := *s
			bare.Dimensions = nil
			sources[k.Source] = &bare
		}
	}
	slices.SortFunc(defs, func(a, b kpiDef) int { return strings.Compare(a.ID, b.ID) })
	filtered := map[string]string{}
	for name, src := range sources {
		filtered[name] = src.Filtered
	}
	b, _ := json.Marshal(struct {
		KPIs       []kpiDef
		Sources    map[string]*Source
		Filtered   map[string]string
		References map[string]string `json:",omitempty"`
	}{defs, sources, filtered, refs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// builtWith is the fingerprint the family's rollups were last built with
// ("" when none was noted, or while a rebuild runs) and when the engine
// last wrote them (unix nanoseconds; 0 never).
func builtWith(ctx context.Context, db *query.DB, database, family string) (fp string, written uint64, err error) {
	f := query.Quote(family)
	err = db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT
    (SELECT argMax(fingerprint, written) FROM %[1]s.kpi_definitions WHERE family = %[2]s),
    (SELECT max(written) FROM %[1]s.kpi_progress WHERE family = %[2]s)`, database, f)).Scan(&fp, &written)
	return fp, written, err
}

// setBuilt keeps the fingerprint the family's rollups are built with ("":
// a rebuild under way, or cut short).
func (e *Engine) setBuilt(family, fp string) {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if e.builtFP == nil {
		e.builtFP = map[string]string{}
	}
	e.builtFP[family] = fp
}

// noteDefinitions records the fingerprint the family was built with.
func (e *Engine) noteDefinitions(ctx context.Context, family, fp string) error {
	e.setBuilt(family, fp)
	q := fmt.Sprintf("INSERT INTO %s.kpi_definitions (family, fingerprint, written) SELECT %s, %s, %d",
		e.b.DB, query.Quote(family), query.Quote(fp), time.Now().UnixNano())
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), q); err != nil {
		return fmt.Errorf("note the kpi definitions: %w", err)
	}
	return nil
}
