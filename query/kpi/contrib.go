package kpi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
)

// Contributions. For a view of entities (dossiers, tickets) the engine keeps
// what each entity adds to the rollups (kpi_contrib, schema 0012): per time
// column, the entity's hour and unit and its numerator and denominator of
// every KPI counted by that column. A commit reads the new state of the
// entities it touched (a lookup by key) and their stored contributions,
// and adds the differences to kpi_hourly and kpi_daily, which are sums of
// changes; then it stores the new contributions. The cost of a commit is
// then what its entities changed, whatever the history and however many
// other entities share their hours. A repeated delivery or a replay finds
// every contribution unchanged and writes nothing.
//
// The contributions are kept in generations, as kpi_open: a complete one is
// built from the views (with the rollups summed from it, so that both
// agree) when a node takes over with none, on a rebuild or when a commit's
// subjects were truncated. A node taking over recomputes the hours the
// entities accepted recently fall in, and their previous hours, from the
// views, rewriting the contributions of every entity of those hours: so a
// leader that stopped between writing the rollups and the contributions
// leaves nothing wrong behind.

// contribKey is one entity's contribution by one time column.
type contribKey struct{ id, kind string }

// contribution is what an entity adds to the rollups of one time column:
// for each KPI with something counted, its numerator and denominator in
// the hour and unit.
type contribution struct {
	hour time.Time
	unit string
	kpis []string
	n, d []int64
}

func (c contribution) empty() bool { return len(c.kpis) == 0 }

func (c contribution) equal(o contribution) bool {
	if c.empty() || o.empty() {
		return c.empty() == o.empty()
	}
	return c.hour.Equal(o.hour) && c.unit == o.unit && slices.Equal(c.kpis, o.kpis) &&
		slices.Equal(c.n, o.n) && slices.Equal(c.d, o.d)
}

// addTo adds the contribution, times sign, to hourly rollup changes.
func (c contribution) addTo(out map[rollupRow]sums, sign int64) {
	for i, k := range c.kpis {
		bumpSums(out, rollupRow{k, c.hour, c.unit}, sums{sign * c.n[i], sign * c.d[i]})
	}
}

// compact leaves out the KPIs with nothing counted.
func compact(kpis []string, n, d []int64) contribution {
	var c contribution
	for i, k := range kpis {
		if i < len(n) && i < len(d) && (n[i] != 0 || d[i] != 0) {
			c.kpis = append(c.kpis, k)
			c.n = append(c.n, n[i])
			c.d = append(c.d, d[i])
		}
	}
	return c
}

// entitySources tells whether the family has windowed KPIs over a view of
// entities.
func (e *Engine) entitySources(family string) bool {
	for srcName := range e.rollupKPIs(family) {
		if !e.cat.Sources[srcName].Events {
			return true
		}
	}
	return false
}

// contribGen is the family's current generation of kpi_contrib, 0 when
// none was built.
func (e *Engine) contribGen(ctx context.Context, family string) (uint64, error) {
	return e.gen(ctx, "kpi_contrib", family)
}

// storedContribs reads the current contributions of some entities (quoted
// ids); an entity with none has no entry.
func (e *Engine) storedContribs(ctx context.Context, family string, gen uint64, ids []string) (map[contribKey]contribution, error) {
	q := fmt.Sprintf(`SELECT id, kind, argMax(hour, version), argMax(unit, version), argMax(kpis, version),
       argMax(numerators, version), argMax(denominators, version)
FROM %s.kpi_contrib WHERE family = %s AND gen = %d AND id IN (%s) GROUP BY id, kind`,
		e.b.DB, query.Quote(family), gen, strings.Join(ids, ", "))
	rows, err := e.db.Conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("stored contributions: %w", err)
	}
	defer rows.Close()
	out := map[contribKey]contribution{}
	for rows.Next() {
		var k contribKey
		var hour time.Time
		var unit string
		var kpis []string
		var n, d []int64
		if err := rows.Scan(&k.id, &k.kind, &hour, &unit, &kpis, &n, &d); err != nil {
			return nil, err
		}
		if c := compact(kpis, n, d); !c.empty() {
			c.hour, c.unit = hour, unit
			out[k] = c
		}
	}
	return out, rows.Err()
}

// openRow is an entity's row of kpi_open: its unit and due time, and
// whether it is open.
type openRow struct {
	id, unit string
	due      time.Time
	open     uint8
}

// viewContribs reads the contributions of the entities of a source that
// meet cond, for every time column at once, from the view: the entity's
// state now, read once. An entity whose time is unset or before h0
// contributes nothing by that column. With open (a source with open
// entities), the same statement gives each entity's row of kpi_open.
func (e *Engine) viewContribs(ctx context.Context, src *Source, byTime map[string][]*KPI, cond string, h0 time.Time, open *[]openRow) (map[contribKey]contribution, error) {
	cols := sortedCols(byTime)
	var all []*KPI
	sel := []string{src.ID + " AS eid", src.Unit + " AS u"}
	group := []string{"eid", "u"}
	if open != nil {
		sel = append(sel, "due_at AS ioc_due", "toUInt8("+src.Open+") AS ioc_open")
		group = append(group, "ioc_due", "ioc_open")
	}
	for i, col := range cols {
		all = append(all, byTime[col]...)
		sel = append(sel, fmt.Sprintf("toStartOfHour(%s) AS h%d", col, i))
		group = append(group, fmt.Sprintf("h%d", i))
	}
	terms, work, cal := e.lookupTerms(all)
	q := fmt.Sprintf("SELECT %s, %s FROM %s GROUP BY %s",
		strings.Join(sel, ", "), strings.Join(terms, ", "), e.sourceExpr(src, cond), strings.Join(group, ", "))
	rows, err := e.db.Conn.Query(query.Pushdown(ctx), q)
	if err != nil {
		return nil, fmt.Errorf("contributions from %s: %w", src.View, err)
	}
	defer rows.Close()
	var id, unit string
	var due time.Time
	var isOpen uint8
	hours := make([]time.Time, len(cols))
	vals := make([]int64, 2*len(all))
	dest := []any{&id, &unit}
	if open != nil {
		dest = append(dest, &due, &isOpen)
	}
	for i := range hours {
		dest = append(dest, &hours[i])
	}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	for _, w := range work {
		for j := range w.terms {
			dest = append(dest, w.from[j], w.to[j])
		}
	}
	ids := make([][]string, len(cols))
	for i, col := range cols {
		ids[i] = kpiIDs(byTime[col])
	}
	out := map[contribKey]contribution{}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for _, w := range work {
			switch n := vals[2*w.kpi]; {
			case n == 1:
				v, err := workingValue(cal, w.terms, w.from, w.to)
				if err != nil {
					return nil, fmt.Errorf("%s of %s: %w", all[w.kpi].ID, id, err)
				}
				vals[2*w.kpi] = v
			case n != 0:
				return nil, fmt.Errorf("%s: %d rows of %s in %s", all[w.kpi].ID, n, id, src.View)
			}
		}
		if open != nil {
			*open = append(*open, openRow{id, unit, due, isOpen})
		}
		off := 0 // the column's first KPI in all
		for i, col := range cols {
			k := len(ids[i])
			h := hours[i]
			if h.Unix() > 0 && !h.Before(h0) {
				n, d := make([]int64, k), make([]int64, k)
				for j := range k {
					n[j], d[j] = vals[2*(off+j)], vals[2*(off+j)+1]
				}
				if c := compact(ids[i], n, d); !c.empty() {
					c.hour, c.unit = h, unit
					out[contribKey{id, src.Hours[col]}] = c
				}
			}
			off += k
		}
	}
	return out, rows.Err()
}

// goWorking is a KPI of a lookup whose numerator is measured in Go (see
// workingTerms): the lookup gives 1 as its numerator when the entity meets
// its filter, and the columns of its terms.
type goWorking struct {
	kpi      int // its rank in the lookup's KPIs
	terms    []workingTerm
	from, to []any // scan destinations of the terms' columns
}

// lookupTerms are the numerator and denominator sums of the KPIs, n<i> and
// d<i>, for a lookup of entities, then the columns of the terms of the
// numerators measured in Go, in the order of work (whose SQL expansion is
// then never built).
func (e *Engine) lookupTerms(kpis []*KPI) (terms []string, work []goWorking, cal *worktime.Calendar) {
	if e.b.Calendar != nil {
		cal = e.b.Calendar()
	}
	var extra []string
	for i, k := range kpis {
		wt, ok := workingTerms(k.Numerator)
		if !ok || cal == nil {
			terms = append(terms, e.sumPair(k, i)...)
			continue
		}
		cond := e.filterCond(k)
		terms = append(terms, fmt.Sprintf("sumIf(toInt64(1), %s) AS n%d", cond, i), fmt.Sprintf("sumIf(%s, %s) AS d%d", e.b.denTerm(k, time.Time{}), cond, i))
		w := goWorking{kpi: i, terms: wt}
		for j, t := range wt {
			extra = append(extra, fmt.Sprintf("any(%s) AS ws_from%d_%d", t.from, i, j), fmt.Sprintf("any(%s) AS ws_to%d_%d", t.to, i, j))
			if t.sum {
				w.from, w.to = append(w.from, new([]time.Time)), append(w.to, new([]time.Time))
			} else {
				w.from, w.to = append(w.from, new(time.Time)), append(w.to, new(time.Time))
			}
		}
		work = append(work, w)
	}
	return append(terms, extra...), work, cal
}

func sortedCols(byTime map[string][]*KPI) []string {
	cols := make([]string, 0, len(byTime))
	for col := range byTime {
		cols = append(cols, col)
	}
	slices.Sort(cols)
	return cols
}

type contribRow struct {
	key contribKey
	c   contribution
}

// writeContribs stores contributions as a new version; an empty one
// replaces one that was not.
func (e *Engine) writeContribs(ctx context.Context, family string, gen uint64, rows []contribRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := lease.Check(ctx); err != nil {
		return err
	}
	version := uint64(time.Now().UnixNano())
	err := e.db.Insert(ctx, "INSERT INTO "+e.b.DB+".kpi_contrib (family, gen, id, kind, hour, unit, kpis, numerators, denominators, version)", func(b driver.Batch) error {
		for _, r := range rows {
			c := r.c
			if c.empty() {
				c = contribution{hour: time.Unix(0, 0), kpis: []string{}, n: []int64{}, d: []int64{}}
			}
			if err := b.Append(family, gen, r.key.id, r.key.kind, c.hour, c.unit, c.kpis, c.n, c.d, version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write contributions: %w", err)
	}
	return nil
}

// applyContribs brings the rollups of an entity source up to date with the
// entities a commit touched (ids: quoted, sorted): the difference between their contributions
// now and the stored ones is added to the hours and days, then the new
// contributions are stored. With openGen (the source is the family's one
// with open entities), the same lookup gives their rows of kpi_open, which
// are written, alongside the rollups, into the generation openGen hands
// over (none when it sends 0).
func (e *Engine) applyContribs(ctx context.Context, src *Source, byTime map[string][]*KPI, ids []string, gen uint64, h0 time.Time, openGen <-chan uint64) error {
	hourly := map[rollupRow]sums{}
	var changed []contribRow
	var opens *[]openRow
	if openGen != nil {
		opens = &[]openRow{}
	}
	for chunk := range query.Chunks(ids, true) {
		var old, fresh map[contribKey]contribution
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() (err error) {
			old, err = e.storedContribs(gctx, src.Family, gen, chunk)
			return err
		})
		g.Go(func() (err error) {
			fresh, err = e.viewContribs(gctx, src, byTime, src.ID+" IN ("+strings.Join(chunk, ", ")+")", h0, opens)
			return err
		})
		if err := g.Wait(); err != nil {
			return err
		}
		for k, o := range old {
			if n := fresh[k]; !n.equal(o) {
				o.addTo(hourly, -1)
				n.addTo(hourly, 1)
				changed = append(changed, contribRow{k, n})
			}
		}
		for k, n := range fresh {
			if _, ok := old[k]; !ok {
				n.addTo(hourly, 1)
				changed = append(changed, contribRow{k, n})
			}
		}
	}
	dropZero(hourly)
	daily := map[rollupRow]sums{}
	addDays(daily, hourly, e.b.Loc)
	dropZero(daily)
	// The contributions are stored after both rollups: a node stopped in
	// between leaves the old ones, which the takeover's catch-up reads.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.addRollup(gctx, "kpi_hourly", hourly) })
	g.Go(func() error { return e.addRollup(gctx, "kpi_daily", daily) })
	if openGen != nil {
		g.Go(func() error {
			select {
			case og := <-openGen:
				if og == 0 {
					return nil
				}
				return e.writeOpen(gctx, src.Family, og, *opens)
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if e.beforeContribWrite != nil {
		if err := e.beforeContribWrite(); err != nil {
			return err
		}
	}
	return e.writeContribs(ctx, src.Family, gen, changed)
}

// rebuildContribs fills the generation gen with the contributions of every
// entity of the source from h0 on, from the view, and brings the hourly
// rollups to their sums.
func (e *Engine) rebuildContribs(ctx context.Context, src *Source, byTime map[string][]*KPI, gen uint64, h0 time.Time) error {
	for _, col := range sortedCols(byTime) {
		kpis, kind := byTime[col], src.Hours[col]
		ns, ds, nonzero := make([]string, len(kpis)), make([]string, len(kpis)), make([]string, len(kpis))
		for i := range kpis {
			ns[i], ds[i] = fmt.Sprintf("toInt64(n%d)", i), fmt.Sprintf("toInt64(d%d)", i)
			nonzero[i] = fmt.Sprintf("n%[1]d != 0 OR d%[1]d != 0", i)
		}
		q := fmt.Sprintf(`INSERT INTO %[1]s.kpi_contrib (family, gen, id, kind, hour, unit, kpis, numerators, denominators, version)
SELECT %[2]s, %[3]d, eid, %[4]s, h, u, [%[5]s], [%[6]s], [%[7]s], %[3]d FROM (
    SELECT %[8]s AS eid, toStartOfHour(%[9]s) AS h, %[10]s AS u, %[11]s FROM %[12]s GROUP BY eid, h, u
) WHERE %[13]s`,
			e.b.DB, query.Quote(src.Family), gen, query.Quote(kind), quoteList(kpiIDs(kpis)), strings.Join(ns, ", "), strings.Join(ds, ", "),
			src.ID, col, src.Unit, strings.Join(e.sumTerms(kpis), ", "), e.sourceExpr(src, col+" >= "+e.b.literal(h0)), strings.Join(nonzero, " OR "))
		if err := e.db.Conn.Exec(query.Pushdown(e.db.InsertContext(ctx)), q); err != nil {
			return fmt.Errorf("build contributions of %s by %s: %w", src.View, col, err)
		}
		fresh := map[rollupRow]sums{}
		rows, err := e.db.Conn.Query(ctx, fmt.Sprintf(`SELECT kpi, hour, unit, sum(n), sum(d) FROM %s.kpi_contrib
ARRAY JOIN kpis AS kpi, numerators AS n, denominators AS d
WHERE family = %s AND gen = %d AND kind = %s AND id != '' GROUP BY kpi, hour, unit`, e.b.DB, query.Quote(src.Family), gen, query.Quote(kind)))
		if err != nil {
			return fmt.Errorf("sum contributions: %w", err)
		}
		for rows.Next() {
			var r rollupRow
			var s sums
			if err := rows.Scan(&r.kpi, &r.t, &r.unit, &s.n, &s.d); err != nil {
				rows.Close()
				return err
			}
			if s != (sums{}) {
				fresh[r] = s
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		old, err := e.readRollup(ctx, "kpi_hourly", "hour", kpiIDs(kpis), "hour >= "+e.b.literal(h0))
		if err != nil {
			return err
		}
		if _, err := e.writeRollup(ctx, "kpi_hourly", old, fresh); err != nil {
			return err
		}
	}
	return nil
}

// markContribs makes the generation gen, complete, the family's current one
// and drops the older ones.
func (e *Engine) markContribs(ctx context.Context, family string, gen uint64) error {
	q := fmt.Sprintf("INSERT INTO %s.kpi_contrib (family, gen, id, kind, hour, unit, kpis, numerators, denominators, version) SELECT %s, %d, '', '', toDateTime(0), '', [], [], [], %[3]d",
		e.b.DB, query.Quote(family), gen)
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), q); err != nil {
		return fmt.Errorf("mark contributions: %w", err)
	}
	e.setGen("kpi_contrib", family, gen)
	return e.dropGens(ctx, "kpi_contrib", family, gen)
}

// progressEvery: a family's progress is written at most this often (the
// catch-up of a takeover goes back further, catchUpMargin).
const progressEvery = 10 * time.Second

// noteProgress records when the family's rollups were written.
func (e *Engine) noteProgress(ctx context.Context, family string, force bool) error {
	now := time.Now()
	e.openMu.Lock()
	last := e.progress[family]
	e.openMu.Unlock()
	if !force && now.Sub(last) < progressEvery {
		return nil
	}
	q := fmt.Sprintf("INSERT INTO %s.kpi_progress (family, written) SELECT %s, %d", e.b.DB, query.Quote(family), now.UnixNano())
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), q); err != nil {
		return fmt.Errorf("note progress: %w", err)
	}
	e.openMu.Lock()
	if e.progress == nil {
		e.progress = map[string]time.Time{}
	}
	e.progress[family] = now
	e.openMu.Unlock()
	return nil
}
