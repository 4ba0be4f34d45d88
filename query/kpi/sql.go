package kpi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
)

// Builder writes the SQL of KPIs over the curated views of one database.
// The SQL of a single key (the /sql endpoint) and the engine's query for
// every unit at once sum the same integer expressions over the same rows,
// so they give the same numbers.
type Builder struct {
	DB  string
	Loc *time.Location
	// Calendar resolves {now_plus_working_hours:H}, {working_seconds:a,b}
	// and {working_seconds_sum:as,bs}.
	Calendar func() *worktime.Calendar
}

// literal is a DateTime literal in local time, readable by an analyst.
func (b *Builder) literal(t time.Time) string {
	return "toDateTime('" + t.In(b.Loc).Format("2006-01-02 15:04:05") + "', '" + b.Loc.String() + "')"
}

// expand replaces the placeholders of a fragment for the instant at.
func (b *Builder) expand(frag string, at time.Time) string {
	return placeholderRE.ReplaceAllStringFunc(frag, func(m string) string {
		p := placeholderRE.FindStringSubmatch(m)
		n, _ := strconv.ParseFloat(p[2], 64) // validated at load
		from, to, _ := strings.Cut(p[2], ",")
		switch p[1] {
		case "working_seconds":
			return newWorkingSQL(b.Calendar()).between(from, to)
		case "working_seconds_sum":
			return newWorkingSQL(b.Calendar()).sum(from, to)
		case "now":
			return b.literal(at)
		case "now_minus":
			return b.literal(at.Add(-time.Duration(n * float64(time.Second))))
		case "now_plus_working_hours":
			return b.literal(b.Calendar().AddWorkingHours(at, n).Truncate(time.Second))
		}
		return m
	})
}

// rowTerms are the per-row numerator and denominator and the row condition
// of a KPI over a span.
func (b *Builder) rowTerms(k *KPI, s Span) (num, den, cond string) {
	return b.rowTermsFiltered(k, s, k.Filter)
}

// denTerm is the per-row denominator of a KPI at the instant at.
func (b *Builder) denTerm(k *KPI, at time.Time) string {
	if k.Denominator == "" {
		return "toInt64(1)"
	}
	return "toInt64(" + b.expand(k.Denominator, at) + ")"
}

// rowTermsFiltered are the row terms with filter in place of the KPI's.
func (b *Builder) rowTermsFiltered(k *KPI, s Span, filter string) (num, den, cond string) {
	num = "toInt64(" + b.expand(k.Numerator, s.At) + ")"
	den = b.denTerm(k, s.At)
	var conds []string
	if !k.Instant() {
		conds = append(conds, k.Time+" >= "+b.literal(s.From), k.Time+" < "+b.literal(s.To))
	}
	if filter != "" {
		conds = append(conds, "("+b.expand(filter, s.At)+")")
	}
	if len(conds) == 0 {
		conds = []string{"1"}
	}
	return num, den, strings.Join(conds, " AND ")
}

// valueExpr is the SQL of the value from the numerator and denominator
// aliases, computed the way Value computes it in Go.
func valueExpr(k *KPI, s Span) string {
	scale := ""
	if k.Scale != 1 {
		scale = " * " + strconv.FormatFloat(k.Scale, 'g', -1, 64)
	}
	switch k.Kind {
	case KindCount:
		return "toFloat64(numerator)" + scale
	case KindPerMinute:
		return "numerator / " + strconv.FormatFloat(s.Minutes(), 'g', -1, 64)
	}
	return "if(denominator = 0, NULL, numerator / denominator" + scale + ")"
}

// SQL is the statement that gives the value of one key: the KPI over the
// unit and its whole subtree. Run in clickhouse-client it returns the
// numerator, the denominator and the value the API reports.
func (b *Builder) SQL(cat *Catalog, k *KPI, unit string, s Span) string {
	src := cat.Sources[k.Source]
	num, den, cond := b.rowTerms(k, s)
	var w strings.Builder
	fmt.Fprintf(&w, "-- %s (version %d): %s\n", k.ID, k.Version, k.Title.EN)
	fmt.Fprintf(&w, "-- unit %s and its subtree; %s\n", unit, describeSpan(s, b))
	fmt.Fprintf(&w, "SELECT\n    sum(n) AS numerator,\n    sum(d) AS denominator,\n    %s AS value\nFROM (\n", valueExpr(k, s))
	fmt.Fprintf(&w, "    SELECT %s AS n, %s AS d\n", num, den)
	fmt.Fprintf(&w, "    FROM %s.%s\n", b.DB, src.View)
	fmt.Fprintf(&w, "    WHERE %s\n", query.Subtree(b.DB, src.Unit, unit))
	fmt.Fprintf(&w, "      AND %s\n)", cond)
	return w.String()
}

// BreakdownSQL is the statement of a KPI over the unit subtree and span,
// one row per value of the dimension by: its key, its name (from the
// dimension's labels view, else empty), numerator, denominator and value,
// largest denominators first. Its rows sum to the key's value (SQL). It
// returns at most limit rows.
func (b *Builder) BreakdownSQL(cat *Catalog, k *KPI, unit string, s Span, by string, limit int) (string, error) {
	dim := cat.Sources[k.Source].Dimensions[by]
	if dim == nil || !slices.Contains(k.Breakdowns, by) {
		if len(k.Breakdowns) == 0 {
			return "", fmt.Errorf("by: %s has no breakdowns", k.ID)
		}
		return "", fmt.Errorf("by %q: %s is broken down by %s", by, k.ID, strings.Join(k.Breakdowns, ", "))
	}
	src := cat.Sources[k.Source]
	num, den, cond := b.rowTerms(k, s)
	name := "'' AS name"
	if dim.Labels != "" {
		name = "name"
	}
	var w strings.Builder
	fmt.Fprintf(&w, "-- %s (version %d) by %s: unit %s and its subtree; %s\n", k.ID, k.Version, by, unit, describeSpan(s, b))
	fmt.Fprintf(&w, "SELECT key, %s, numerator, denominator, value\nFROM (\n", name)
	fmt.Fprintf(&w, "    SELECT key, sum(n) AS numerator, sum(d) AS denominator, %s AS value\n    FROM (\n", valueExpr(k, s))
	fmt.Fprintf(&w, "        SELECT toString(%s) AS key, %s AS n, %s AS d\n", by, num, den)
	if src.Filtered != "" && !k.Instant() {
		// The view's rows of the span, read as the engine reads them (a
		// view ClickHouse 18.16 does not move the condition into).
		span := k.Time + " >= " + b.literal(s.From) + " AND " + k.Time + " < " + b.literal(s.To)
		fmt.Fprintf(&w, "        FROM %s\n", strings.NewReplacer("{db}", b.DB, "{where}", span).Replace(src.Filtered))
	} else {
		fmt.Fprintf(&w, "        FROM %s.%s\n", b.DB, src.View)
	}
	fmt.Fprintf(&w, "        WHERE %s\n", query.Subtree(b.DB, src.Unit, unit))
	fmt.Fprintf(&w, "          AND %s\n    )\n    GROUP BY key\n)", cond)
	if dim.Labels != "" {
		fmt.Fprintf(&w, " ANY LEFT JOIN (SELECT id AS key, name FROM %s) USING key", query.Ref(b.DB, dim.Labels, ""))
	}
	fmt.Fprintf(&w, "\nORDER BY denominator DESC, numerator DESC, key\nLIMIT %d", limit)
	return w.String(), nil
}

func describeSpan(s Span, b *Builder) string {
	if s.From.IsZero() {
		return "at " + s.At.In(b.Loc).Format("2006-01-02 15:04:05") + " " + b.Loc.String()
	}
	return fmt.Sprintf("window %s = [%s, %s) %s, taken at %s", s.Window, s.From.In(b.Loc).Format("2006-01-02 15:04:05"),
		s.To.In(b.Loc).Format("2006-01-02 15:04:05"), b.Loc.String(), s.At.In(b.Loc).Format("2006-01-02 15:04:05"))
}

// column is one sum of the engine's query: a KPI's numerator or
// denominator over one span.
type column struct {
	kpi  *KPI
	span Span
	den  bool
}

// AllUnits is the engine's query for the KPIs of one source over the
// spans: one pass over the view, grouped by unit, then rolled up to every
// ancestor through units.path. It returns the statement and, in the order
// of its columns after `unit`, what each sum is.
func (b *Builder) AllUnits(cat *Catalog, source string, kpis []*KPI, spans map[string]Span) (string, []column) {
	src := cat.Sources[source]
	return b.allUnits(b.DB+"."+src.View, src.Unit, kpis, spans, func(k *KPI) string { return k.Filter })
}

// OpenUnits is AllUnits for instant KPIs of a source with open entities,
// over the rows of one generation of kpi_open instead of the view: the
// latest version of each entity, if it is open, with the view's unit
// column and due_at, and the filter of each KPI less the open condition
// that the table already applied. Its sums are those of AllUnits while the
// generation holds, for every open entity, its unit and due_at in the view.
func (b *Builder) OpenUnits(cat *Catalog, source string, kpis []*KPI, spans map[string]Span, gen uint64) (string, []column) {
	src := cat.Sources[source]
	from := fmt.Sprintf(`(
            SELECT u AS %s, d AS due_at FROM (
                SELECT argMax(unit, version) AS u, argMax(due_at, version) AS d, argMax(open, version) AS o
                FROM %s.kpi_open WHERE family = %s AND gen = %d AND id != '' GROUP BY id
            ) WHERE o = 1
        )`, src.Unit, b.DB, query.Quote(src.Family), gen)
	return b.allUnits(from, src.Unit, kpis, spans, func(k *KPI) string { return k.openFilter })
}

func (b *Builder) allUnits(from, unit string, kpis []*KPI, spans map[string]Span, filter func(*KPI) string) (string, []column) {
	var cols []column
	var inner, outer []string
	for _, k := range kpis {
		for _, win := range k.Windows() {
			s := spans[win]
			num, den, cond := b.rowTermsFiltered(k, s, filter(k))
			for _, isDen := range []bool{false, true} {
				expr := num
				if isDen {
					expr = den
				}
				name := "c" + strconv.Itoa(len(cols))
				inner = append(inner, "sumIf("+expr+", "+cond+") AS "+name)
				outer = append(outer, "sum("+name+") AS "+name)
				cols = append(cols, column{kpi: k, span: s, den: isDen})
			}
		}
	}
	names := make([]string, len(cols))
	for i := range cols {
		names[i] = "c" + strconv.Itoa(i)
	}
	var w strings.Builder
	fmt.Fprintf(&w, "SELECT anc AS unit, %s\nFROM (\n", strings.Join(outer, ", "))
	fmt.Fprintf(&w, "    SELECT path, %s\n    FROM (\n", strings.Join(names, ", "))
	fmt.Fprintf(&w, "        SELECT %s AS unit, %s\n        FROM %s\n        GROUP BY unit\n", unit, strings.Join(inner, ", "), from)
	fmt.Fprintf(&w, "    ) ANY INNER JOIN (SELECT code AS unit, path FROM %s) USING unit\n", query.Ref(b.DB, "units", ""))
	fmt.Fprintf(&w, ") ARRAY JOIN path AS anc\nGROUP BY anc")
	return w.String(), cols
}

// KnownStep reports whether a series takes the step (hour, day, week,
// month).
func KnownStep(step string) bool { _, ok := steps[step]; return ok }

// Steps of a series.
var steps = map[string]string{
	"hour":  "toStartOfHour(%s, '%s')",
	"day":   "toDateTime(toDate(%s, '%s'), '%[2]s')",
	"week":  "toDateTime(toMonday(%s, '%s'), '%[2]s')",
	"month": "toDateTime(toStartOfMonth(%s, '%s'), '%[2]s')",
}

// SeriesSQL is the statement of a KPI's trend over a span, one row per step
// that counts something, read from the view.
func (b *Builder) SeriesSQL(cat *Catalog, k *KPI, unit string, s Span, step string) (string, error) {
	f, err := b.seriesStep(k, step)
	if err != nil {
		return "", err
	}
	src := cat.Sources[k.Source]
	num, den, cond := b.rowTerms(k, s)
	var w strings.Builder
	fmt.Fprintf(&w, "-- %s (version %d) by %s: unit %s and its subtree; %s\n", k.ID, k.Version, step, unit, describeSpan(s, b))
	b.seriesHead(&w, k, s, step)
	fmt.Fprintf(&w, "    SELECT %s AS t, %s AS n, %s AS d\n", fmt.Sprintf(f, k.Time, b.Loc.String()), num, den)
	fmt.Fprintf(&w, "    FROM %s.%s\n", b.DB, src.View)
	fmt.Fprintf(&w, "    WHERE %s\n", query.Subtree(b.DB, src.Unit, unit))
	fmt.Fprintf(&w, "      AND %s\n", cond)
	seriesTail(&w)
	return w.String(), nil
}

// SeriesRollupSQL is SeriesSQL read from the sums the KPI engine keeps per
// hour and unit (kpi_hourly), or per local day and unit (kpi_daily) when
// the span is whole days and the step a day or more: its cost grows with
// the span, not with the history. Its rows are those of SeriesSQL while
// the rollups hold the sums of the view (the engine has taken up the
// commits, with the definitions in force, over the span). ok is false
// when the span is not whole hours, which the rollups cannot cut.
func (b *Builder) SeriesRollupSQL(cat *Catalog, k *KPI, unit string, s Span, step string) (sql string, ok bool, err error) {
	f, err := b.seriesStep(k, step)
	if err != nil {
		return "", false, err
	}
	r, ok := b.rollupOf(s, step != "hour")
	if !ok {
		return "", false, nil
	}
	var w strings.Builder
	fmt.Fprintf(&w, "-- %s (version %d) by %s: unit %s and its subtree; %s\n", k.ID, k.Version, step, unit, describeSpan(s, b))
	r.comment(&w, cat, k)
	b.seriesHead(&w, k, s, step)
	fmt.Fprintf(&w, "    SELECT %s AS t, numerator AS n, denominator AS d\n", fmt.Sprintf(f, r.time, b.Loc.String()))
	r.from(&w, b, k, unit)
	seriesTail(&w)
	return w.String(), true, nil
}

// RollupSQL is SQL read from the rollups, for a span of whole hours (ok is
// false otherwise): its numbers are those of SQL while the rollups hold the
// sums of the view over the span.
func (b *Builder) RollupSQL(cat *Catalog, k *KPI, unit string, s Span) (sql string, ok bool) {
	if k.Instant() {
		return "", false
	}
	r, ok := b.rollupOf(s, true)
	if !ok {
		return "", false
	}
	var w strings.Builder
	fmt.Fprintf(&w, "-- %s (version %d): %s\n", k.ID, k.Version, k.Title.EN)
	fmt.Fprintf(&w, "-- unit %s and its subtree; %s\n", unit, describeSpan(s, b))
	r.comment(&w, cat, k)
	fmt.Fprintf(&w, "SELECT\n    sum(n) AS numerator,\n    sum(d) AS denominator,\n    %s AS value\nFROM (\n", valueExpr(k, s))
	w.WriteString("    SELECT numerator AS n, denominator AS d\n")
	r.from(&w, b, k, unit)
	w.WriteString(")")
	return w.String(), true
}

// rollupSpan is where the rollups hold a span: a table, its time column as
// a DateTime, and the condition of the span.
type rollupSpan struct{ table, time, cond string }

// rollupOf is the rollup of a span of whole hours: kpi_daily when it is
// whole local days and days may be (a step of a day or more, or none),
// else kpi_hourly.
func (b *Builder) rollupOf(s Span, days bool) (rollupSpan, bool) {
	if !wholeHour(s.From) || !wholeHour(s.To) {
		return rollupSpan{}, false
	}
	if days && b.wholeDay(s.From) && b.wholeDay(s.To) {
		return rollupSpan{"kpi_daily", "toDateTime(day, '" + b.Loc.String() + "')",
			"day >= " + dateLiteral(s.From.In(b.Loc)) + " AND day < " + dateLiteral(s.To.In(b.Loc))}, true
	}
	return rollupSpan{"kpi_hourly", "hour", "hour >= " + b.literal(s.From) + " AND hour < " + b.literal(s.To)}, true
}

func (r rollupSpan) comment(w *strings.Builder, cat *Catalog, k *KPI) {
	fmt.Fprintf(w, "-- read from %s: the KPI engine's sums over the view %s, by %s and unit\n",
		r.table, cat.Sources[k.Source].View, map[string]string{"kpi_hourly": "hour", "kpi_daily": "day"}[r.table])
}

// from is the rows of the key's subtree over the span.
func (r rollupSpan) from(w *strings.Builder, b *Builder, k *KPI, unit string) {
	fmt.Fprintf(w, "    FROM %s.%s\n", b.DB, r.table)
	fmt.Fprintf(w, "    WHERE kpi = %s AND %s\n", query.Quote(k.ID), query.Subtree(b.DB, "unit", unit))
	fmt.Fprintf(w, "      AND %s\n", r.cond)
}

// seriesStep is the bucket expression of a step (with %s for the time
// column and the zone), for a KPI that has a series.
func (b *Builder) seriesStep(k *KPI, step string) (string, error) {
	if k.Instant() {
		return "", fmt.Errorf("%s is taken at an instant and has no series: the state it reads keeps no history", k.ID)
	}
	f, ok := steps[step]
	if !ok {
		return "", fmt.Errorf("step %q: use hour, day, week or month", step)
	}
	return f, nil
}

// seriesHead opens a series statement: the sums and the value by step t.
func (b *Builder) seriesHead(w *strings.Builder, k *KPI, s Span, step string) {
	val := valueExpr(k, s)
	if k.Kind == KindPerMinute {
		// The minutes of the step that lie in the window and have passed
		// (at least one, as Span.Minutes): the step still running, and a
		// first or last step the window cuts, are not whole.
		upper := s.To
		if s.At.Before(upper) {
			upper = s.At
		}
		val = fmt.Sprintf("numerator / greatest(1, (toUnixTimestamp(least(%s, %s)) - toUnixTimestamp(greatest(t, %s))) / 60)",
			stepEnd[step], b.literal(upper), b.literal(s.From))
	}
	fmt.Fprintf(w, "SELECT\n    t,\n    sum(n) AS numerator,\n    sum(d) AS denominator,\n    %s AS value\nFROM (\n", val)
}

// seriesTail closes a series statement. A step whose rows sum to nothing
// is left out: the rollups keep the hours an entity left (a resolution
// moved to another hour) as zero sums, where the view has no row.
func seriesTail(w *strings.Builder) {
	w.WriteString(")\nGROUP BY t\nHAVING numerator != 0 OR denominator != 0\nORDER BY t")
}

// wholeHour says whether t is at the start of an hour, as the rollups'
// hours are (hours of UTC, which are those of Asia/Ho_Chi_Minh, +07:00).
func wholeHour(t time.Time) bool { return t.Equal(t.Truncate(time.Hour)) }

// wholeDay says whether t is a local midnight.
func (b *Builder) wholeDay(t time.Time) bool {
	l := t.In(b.Loc)
	return l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 && l.Nanosecond() == 0
}

// stepEnd is the end of the step that starts at t.
var stepEnd = map[string]string{"hour": "t + 3600", "day": "addDays(t, 1)", "week": "addDays(t, 7)", "month": "addMonths(t, 1)"}
