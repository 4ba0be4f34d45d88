package kpi

import (
	"context"
	"fmt"
	"time"

	"github.com/vn-ioc/ioc/query"
)

// Reader answers the REST API: values from the store when the engine
// published them, else computed with the same SQL /sql shows.
type Reader struct {
	Cat   *Catalog
	B     *Builder
	DB    *query.DB
	Store *Store
	// LastCommit, when set, is when this node last heard of a commit of
	// the family: rollups the engine has not written for RollupsStale
	// after it are not read (no node leads, or its rounds fail).
	LastCommit func(family string) time.Time
}

// RollupsStale: how long after a commit the rollups the engine has not
// written since are still read (it notes its progress every 10 s while
// it works).
const RollupsStale = time.Minute

// Compute runs the key's SQL (Builder.SQL) and returns its value.
func (r *Reader) Compute(ctx context.Context, k *KPI, unit string, s Span) (Value, error) {
	var num, den int64
	var val *float64
	if err := r.DB.Conn.QueryRow(ctx, r.B.SQL(r.Cat, k, unit, s)).Scan(&num, &den, &val); err != nil {
		return Value{}, fmt.Errorf("compute %s: %w", k.ID, err)
	}
	v := newValue(k, unit, s, num, den)
	return v, nil
}

// Value is the latest published value of a standard key, or the key
// computed now when the engine has published none.
func (r *Reader) Value(ctx context.Context, k *KPI, unit, window string, now time.Time) (Value, error) {
	v, ok, err := r.published(ctx, k, unit, window)
	if err != nil || ok {
		return v, err
	}
	s, err := Resolve(window, now, r.B.Loc)
	if err != nil {
		return Value{}, err
	}
	// Never published: the engine has not caught up yet (a node starting),
	// when its rollups may still lack commits it holds: computed as /sql.
	return r.Compute(ctx, k, unit, s)
}

// Span of a key for /sql: the span of its latest published value, so that
// the statement reproduces exactly the number the wall shows; the span at
// now when none was published.
func (r *Reader) Span(ctx context.Context, k *KPI, unit, window string, now time.Time) (Span, error) {
	v, ok, err := r.published(ctx, k, unit, window)
	if err != nil {
		return Span{}, err
	}
	if ok {
		return Span{Window: window, From: v.From.In(r.B.Loc), To: v.To.In(r.B.Loc), At: v.At.In(r.B.Loc)}, nil
	}
	return Resolve(window, now, r.B.Loc)
}

// published is the key's value in the store, if the engine published one.
func (r *Reader) published(ctx context.Context, k *KPI, unit, window string) (Value, bool, error) {
	if err := k.CheckWindow(window); err != nil {
		return Value{}, false, err
	}
	if r.Store == nil {
		return Value{}, false, nil
	}
	return r.Store.Get(ctx, Key{KPI: k.ID, Unit: unit, Window: window})
}

// Point of a series.
type Point struct {
	T           time.Time `json:"t"`
	Numerator   int64     `json:"numerator"`
	Denominator int64     `json:"denominator"`
	Value       *float64  `json:"value"`
}

// Series is the KPI's trend over the span by step: read from the KPI
// engine's rollups when they hold the span (SeriesRollupSQL), else from the
// view (SeriesSQL).
func (r *Reader) Series(ctx context.Context, k *KPI, unit string, s Span, step string) (string, []Point, error) {
	sql, err := r.seriesSQL(ctx, k, unit, s, step)
	if err != nil {
		return "", nil, err
	}
	rows, err := r.DB.Conn.Query(ctx, sql)
	if err != nil {
		return sql, nil, fmt.Errorf("series %s: %w", k.ID, err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		if err := rows.Scan(&p.T, &p.Numerator, &p.Denominator, &p.Value); err != nil {
			return sql, nil, err
		}
		p.T = p.T.In(r.B.Loc)
		out = append(out, p)
	}
	return sql, out, rows.Err()
}

// seriesSQL is the statement Series runs.
func (r *Reader) seriesSQL(ctx context.Context, k *KPI, unit string, s Span, step string) (string, error) {
	q, ok, err := r.B.SeriesRollupSQL(r.Cat, k, unit, s, step)
	if err != nil {
		return "", err
	}
	if ok {
		if ok, err = r.rollupsHold(ctx, k, s); err != nil || ok {
			return q, err
		}
	}
	return r.B.SeriesSQL(r.Cat, k, unit, s, step)
}

// Custom is the value of a key over a custom span: read from the KPI
// engine's rollups when they hold the span (RollupSQL), else computed as
// /sql shows (Compute). Both give the same numbers.
func (r *Reader) Custom(ctx context.Context, k *KPI, unit string, s Span) (Value, error) {
	q, ok := r.B.RollupSQL(r.Cat, k, unit, s)
	if ok {
		if held, err := r.rollupsHold(ctx, k, s); err != nil {
			return Value{}, err
		} else if held {
			var num, den int64
			var val *float64
			if err := r.DB.Conn.QueryRow(ctx, q).Scan(&num, &den, &val); err != nil {
				return Value{}, fmt.Errorf("compute %s: %w", k.ID, err)
			}
			return newValue(k, unit, s, num, den), nil
		}
	}
	return r.Compute(ctx, k, unit, s)
}

// rollupsHold says whether the rollups hold the KPI's sums over the span:
// it lies after the horizon of its instant (the rollups are kept from
// there on, which every standard window does), they were built with the
// definitions in force (a node taking over with others rebuilds them, and
// notes the new definitions when done), and the engine is writing them
// (LastCommit).
func (r *Reader) rollupsHold(ctx context.Context, k *KPI, s Span) (bool, error) {
	if s.From.Before(horizon(s.At, r.B.Loc)) {
		return false, nil
	}
	built, written, err := builtWith(ctx, r.DB, r.B.DB, k.Family)
	if err != nil {
		return false, fmt.Errorf("%s: the definitions the rollups were built with: %w", k.ID, err)
	}
	fp, err := fingerprintNow(ctx, r.Cat, r.DB, r.B, k.Family)
	if err != nil {
		return false, fmt.Errorf("%s: %w", k.ID, err)
	}
	if built != fp {
		return false, nil
	}
	if r.LastCommit != nil {
		if c := r.LastCommit(k.Family); c.Sub(time.Unix(0, int64(written))) > RollupsStale {
			return false, nil
		}
	}
	return true, nil
}

// Group is one row of a breakdown: the KPI over the rows whose dimension
// has the value Key.
type Group struct {
	Key         string   `json:"key"`
	Name        string   `json:"name,omitempty"`
	Numerator   int64    `json:"numerator"`
	Denominator int64    `json:"denominator"`
	Value       *float64 `json:"value"`
}

// Breakdown is the KPI over the span by the dimension by, at most limit
// groups; truncated says whether there were more.
func (r *Reader) Breakdown(ctx context.Context, k *KPI, unit string, s Span, by string, limit int) (sql string, groups []Group, truncated bool, err error) {
	if sql, err = r.B.BreakdownSQL(r.Cat, k, unit, s, by, limit+1); err != nil {
		return "", nil, false, err
	}
	rows, err := r.DB.Conn.Query(ctx, sql)
	if err != nil {
		return sql, nil, false, fmt.Errorf("breakdown %s: %w", k.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g Group
		var val *float64
		if err := rows.Scan(&g.Key, &g.Name, &g.Numerator, &g.Denominator, &val); err != nil {
			return sql, nil, false, err
		}
		g.Value = newValue(k, unit, s, g.Numerator, g.Denominator).Value
		groups = append(groups, g)
	}
	if len(groups) > limit {
		groups, truncated = groups[:limit], true
	}
	return sql, groups, truncated, rows.Err()
}
