package kpi

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/query"
)

// Open entities. An instant KPI over an entity view (dossier.overdue_open,
// dossier.due_soon, feedback.overdue_open) counts the entities that are
// open now; scanning the view for them merges the state of every entity
// ever seen. The engine instead keeps, per family, the unit and due_at of
// its open entities in kpi_open (schema 0010) and sums the instant KPIs
// over that table: what is open, not what history holds.
//
// The table follows the state view the way the rollups do: every commit
// re-reads the state of the entities it touched from the view (a lookup by
// key; the rollups' own lookup when they read the same view) and writes a
// row for each, open or not, as a new version; so a repeated delivery or a
// replay changes nothing. Rows are kept in
// generations: a full one is built from the view when a node takes over
// with none, on a rebuild or when a commit's subjects were truncated; every
// Config.OpenCompact the open rows are copied into a new generation and the
// older ones dropped, so the rows of closed entities do not pile up.

// openSource is the family's source with open entities that instant KPIs
// read, or nil.
func (e *Engine) openSource(family string) *Source {
	for _, k := range e.cat.KPIs {
		if k.Family == family && k.Instant() {
			if src := e.cat.Sources[k.Source]; src.Open != "" {
				return src
			}
		}
	}
	return nil
}

// openGen is the family's current generation of kpi_open: the newest one
// with its marker row, 0 when none was built.
func (e *Engine) openGen(ctx context.Context, family string) (uint64, error) {
	return e.gen(ctx, "kpi_open", family)
}

func (e *Engine) setOpenGen(family string, g uint64) { e.setGen("kpi_open", family, g) }

// gen is the family's current generation of a generation table (kpi_open,
// kpi_contrib): the newest one with its marker row (id = ”), 0 when none
// was built.
func (e *Engine) gen(ctx context.Context, table, family string) (uint64, error) {
	e.openMu.Lock()
	g, ok := e.gens[table+"/"+family]
	e.openMu.Unlock()
	if ok {
		return g, nil
	}
	g, err := Generation(ctx, e.db.Conn, e.b.DB, table, family)
	if err != nil {
		return 0, err
	}
	if g != 0 {
		e.setGen(table, family, g)
	}
	return g, nil
}

// Generation reads the family's current generation of a generation table
// (kpi_open, kpi_contrib) of database db: the newest one with its marker
// row, 0 when none was built. Other readers of kpi_open (the alert
// evaluator) take the same one.
func Generation(ctx context.Context, conn driver.Conn, db, table, family string) (uint64, error) {
	var g uint64
	q := fmt.Sprintf("SELECT max(gen) FROM %s.%s WHERE family = %s AND id = ''", db, table, query.Quote(family))
	if err := conn.QueryRow(ctx, q).Scan(&g); err != nil {
		return 0, fmt.Errorf("%s generation: %w", table, err)
	}
	return g, nil
}

// OpenSQL is the SQL of the open entities in generation gen of the
// family's kpi_open whose latest row satisfies cond, a condition over that
// row's unit and deadline written with the column names cond is given:
// columns id, unit and due_at, of that row.
//
// Readers that must not scan the whole history of a state view (the alert
// evaluator, the drill-down lists, the map) take their candidates here
// and then read those entities from the view, by key: the view stays the
// judge, kpi_open only says which entities to read. An entity the engine
// has not yet taken up from the latest commit is missing until it has.
func OpenSQL(db, family string, gen uint64, cond func(unit, due string) string) string {
	// An entity's latest row decides; the ids are first narrowed to those
	// with an open row that satisfies cond (the latest row is one of them
	// when it matches), so only their rows are grouped.
	rows := fmt.Sprintf("%s.kpi_open WHERE family = %s AND gen = %d AND id != ''", db, query.Quote(family), gen)
	return fmt.Sprintf(`SELECT id, u AS unit, d AS due_at FROM (
    SELECT id, argMax(open, version) AS o, argMax(unit, version) AS u, argMax(due_at, version) AS d
    FROM %[1]s
      AND id IN (SELECT id FROM %[1]s AND open = 1 AND %[2]s)
    GROUP BY id
) WHERE o = 1 AND %[3]s`, rows, cond("unit", "due_at"), cond("u", "d"))
}

// OpenIDs reads the ids of OpenSQL from the family's current generation,
// sorted. gen is the generation read: 0, and no ids, when the engine has
// built none (the caller then reads the view).
func OpenIDs(ctx context.Context, conn driver.Conn, db, family string, cond func(unit, due string) string) (ids []string, gen uint64, err error) {
	if gen, err = Generation(ctx, conn, db, "kpi_open", family); err != nil || gen == 0 {
		return nil, gen, err
	}
	ids, err = query.Strings(ctx, conn, "SELECT id FROM ("+OpenSQL(db, family, gen, cond)+") ORDER BY id")
	if err != nil {
		return nil, gen, fmt.Errorf("open %s: %w", family, err)
	}
	return ids, gen, nil
}

func (e *Engine) setGen(table, family string, g uint64) {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if e.gens == nil {
		e.gens = map[string]uint64{}
	}
	if g == 0 {
		delete(e.gens, table+"/"+family)
		return
	}
	e.gens[table+"/"+family] = g
}

// refreshOpen brings the family's open entities up to date with the work:
// the entities it touched, or all of them when it was truncated. With
// handOff, the rows of the entities touched are written by the rollups'
// lookup of them (applyContribs): refreshOpen hands it the generation to
// write them into, or 0 when it rebuilt the generation whole.
func (e *Engine) refreshOpen(ctx context.Context, family string, w *work, handOff chan<- uint64) error {
	src := e.openSource(family)
	if src == nil {
		return nil
	}
	gen, err := e.openGen(ctx, family)
	if err != nil {
		return err
	}
	if gen == 0 || w.truncated {
		if err := e.buildOpen(ctx, src, gen); err != nil {
			return err
		}
		if handOff != nil {
			handOff <- 0
		}
		return nil
	}
	if time.Since(time.Unix(0, int64(gen))) >= e.cfg.OpenCompact {
		if gen, err = e.compactOpen(ctx, src, gen); err != nil {
			return err
		}
	}
	if handOff != nil {
		handOff <- gen
		return nil
	}
	if len(w.subjects) == 0 {
		return nil
	}
	ids := w.quotedIDs()
	version := uint64(time.Now().UnixNano())
	for chunk := range query.Chunks(ids, true) {
		// The state of these entities only (a literal key list, with the
		// predicate pushed below the view's GROUP BY).
		q := fmt.Sprintf("%s SELECT %s, %d, %s, %s, due_at, toUInt8(%s), %d FROM %s.%s WHERE %[4]s IN (%[10]s)",
			openInsert(e.b.DB), query.Quote(src.Family), gen, src.ID, src.Unit, src.Open, version, e.b.DB, src.View, strings.Join(chunk, ", "))
		if err := e.db.Conn.Exec(query.Pushdown(e.db.InsertContext(ctx)), q); err != nil {
			return fmt.Errorf("refresh open %s: %w", src.Family, err)
		}
	}
	return nil
}

// writeOpen writes rows of kpi_open, as a new version, into the
// generation gen.
func (e *Engine) writeOpen(ctx context.Context, family string, gen uint64, rows []openRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := lease.Check(ctx); err != nil {
		return err
	}
	version := uint64(time.Now().UnixNano())
	err := e.db.Insert(ctx, openInsert(e.b.DB), func(b driver.Batch) error {
		for _, r := range rows {
			if err := b.Append(family, gen, r.id, r.unit, r.due, r.open, version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("refresh open %s: %w", family, err)
	}
	return nil
}

func openInsert(db string) string {
	return "INSERT INTO " + db + ".kpi_open (family, gen, id, unit, due_at, open, version)"
}

// buildOpen fills a new generation with the open entities of the view, and
// makes it the current one.
func (e *Engine) buildOpen(ctx context.Context, src *Source, old uint64) error {
	gen := uint64(time.Now().UnixNano())
	q := fmt.Sprintf("%s SELECT %s, %d, %s, %s, due_at, 1, %[3]d FROM %[6]s.%[7]s WHERE %[8]s",
		openInsert(e.b.DB), query.Quote(src.Family), gen, src.ID, src.Unit, e.b.DB, src.View, src.Open)
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), q); err != nil {
		return fmt.Errorf("build open %s: %w", src.Family, err)
	}
	return e.switchOpen(ctx, src.Family, gen, old)
}

// compactOpen copies the open entities of the generation old into a new
// one, which becomes the current one.
func (e *Engine) compactOpen(ctx context.Context, src *Source, old uint64) (uint64, error) {
	gen := uint64(time.Now().UnixNano())
	q := fmt.Sprintf(`%s SELECT %s, %d, id, u, d, 1, %[3]d FROM (
    SELECT id, argMax(unit, version) AS u, argMax(due_at, version) AS d, argMax(open, version) AS o
    FROM %[4]s.kpi_open WHERE family = %[2]s AND gen = %[5]d AND id != '' GROUP BY id
) WHERE o = 1`, openInsert(e.b.DB), query.Quote(src.Family), gen, e.b.DB, old)
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), q); err != nil {
		return 0, fmt.Errorf("compact open %s: %w", src.Family, err)
	}
	return gen, e.switchOpen(ctx, src.Family, gen, old)
}

// switchOpen marks the generation gen complete, makes it current, and
// drops the generations before old (old itself is kept for the instant
// queries that may still read it; the next switch drops it).
func (e *Engine) switchOpen(ctx context.Context, family string, gen, old uint64) error {
	mark := fmt.Sprintf("%s SELECT %s, %d, '', '', toDateTime(0), 0, %[3]d", openInsert(e.b.DB), query.Quote(family), gen)
	if err := e.db.Conn.Exec(e.db.InsertContext(ctx), mark); err != nil {
		return fmt.Errorf("mark open generation: %w", err)
	}
	e.setOpenGen(family, gen)
	if old == 0 {
		return nil
	}
	return e.dropGens(ctx, "kpi_open", family, old)
}

// dropGens drops the family's generations of a generation table before
// the generation before.
func (e *Engine) dropGens(ctx context.Context, table, family string, before uint64) error {
	rows, err := e.db.Conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT gen FROM %s.%s WHERE family = %s AND gen < %d",
		e.b.DB, table, query.Quote(family), before))
	if err != nil {
		return fmt.Errorf("old %s generations: %w", table, err)
	}
	var gens []uint64
	for rows.Next() {
		var g uint64
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		gens = append(gens, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	name, on := e.b.DB+"."+table, ""
	if c := e.db.Config().Cluster; c != "" {
		name, on = e.b.DB+"."+table+"_local", " ON CLUSTER "+c
	}
	for _, g := range gens {
		q := fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION (%s, %d)", name, on, query.Quote(family), g)
		if err := e.db.Conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("drop %s generation: %w", table, err)
		}
	}
	return nil
}

// DropOrphanOpen drops every generation of kpi_open of a family whose open
// entities the catalog does not keep (no instant KPI over them, or no KPI
// of the family at all): left by an earlier catalog, it would be taken as
// current by the other readers of kpi_open (the lists, the map, the alert
// rules) and never updated again. A node runs it when it takes over.
func (e *Engine) DropOrphanOpen(ctx context.Context) error {
	families, err := query.Strings(ctx, e.db.Conn, "SELECT DISTINCT family FROM "+e.b.DB+".kpi_open")
	if err != nil {
		return fmt.Errorf("kpi_open families: %w", err)
	}
	for _, f := range families {
		if e.openSource(f) == nil {
			if err := e.dropGens(ctx, "kpi_open", f, math.MaxUint64); err != nil {
				return err
			}
		}
	}
	return nil
}

// instantSQL is the engine's query of the instant KPIs of a source: over
// the current generation of kpi_open when the source has open entities and
// one was built, else over the view.
func (e *Engine) instantSQL(ctx context.Context, source string, kpis []*KPI, spans map[string]Span) (string, []column, error) {
	src := e.cat.Sources[source]
	if src.Open != "" {
		gen, err := e.openGen(ctx, src.Family)
		if err != nil {
			return "", nil, err
		}
		if gen != 0 {
			sql, cols := e.b.OpenUnits(e.cat, source, kpis, spans, gen)
			return sql, cols, nil
		}
	}
	sql, cols := e.b.AllUnits(e.cat, source, kpis, spans)
	return sql, cols, nil
}
