package kpi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vn-ioc/ioc/query"
)

// Rollups of event views. A row of an event view never changes once
// written (a repeated event collapses into its first), so a commit changes
// an hour's sums only in the seconds its events fall in. For the hours it
// has recently touched, the engine keeps each event source's sums per
// bucket of eventBucket seconds and unit; a commit re-reads only the
// buckets its events span, and the hour's sums follow from its buckets.
// An hour not held, or held for longer than eventHourTTL, is read whole:
// the cost of a commit follows its events, not the hour's volume.

const (
	eventBucket  = 10 // seconds
	eventHourTTL = 10 * time.Minute
	// An hour no commit touched for this long is let go.
	eventHourIdle = time.Hour
)

// eventHour is one hour of one event source and time column.
type eventHour struct {
	at      time.Time // the hour as ClickHouse returns it (the rollup's key)
	loaded  time.Time
	used    time.Time
	buckets map[int64]map[string][]int64 // bucket start (unix) → unit → n0, d0, n1, d1, …
	total   map[string][]int64           // unit → the hour's sums
}

// eventCache holds the hours of every event source and time column.
type eventCache struct {
	mu      sync.Mutex
	sources map[string]*eventSource // "source.column"
}

// eventSource is the held hours of one event source and time column; its
// lock is held while they are read, without holding back the others.
type eventSource struct {
	mu    sync.Mutex
	hours map[int64]*eventHour // by the hour's unix time
}

func (c *eventCache) source(key string) *eventSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sources == nil {
		c.sources = map[string]*eventSource{}
	}
	es := c.sources[key]
	if es == nil {
		es = &eventSource{}
		c.sources[key] = es
	}
	return es
}

// drop forgets every held hour (a read under way finishes on what it
// holds, which is then dropped too).
func (c *eventCache) drop() {
	c.mu.Lock()
	c.sources = nil
	c.mu.Unlock()
}

// sourceExpr is what the engine reads a source through, cond applied: the
// source's filtered expression when it has one (a view ClickHouse 18.16
// cannot push the condition into), else the view.
func (e *Engine) sourceExpr(src *Source, cond string) string {
	if src.Filtered == "" {
		return fmt.Sprintf("%s.%s WHERE %s", e.b.DB, src.View, cond)
	}
	return strings.NewReplacer("{db}", e.b.DB, "{where}", cond).Replace(src.Filtered) + " WHERE " + cond
}

// eventHours returns the fresh sums of the listed hours of an event
// source's time column, for a commit whose events' times are within
// [hs.lo, hs.hi].
func (e *Engine) eventHours(ctx context.Context, src *Source, col string, kpis []*KPI, hs *hourSet) (map[rollupRow]sums, error) {
	hours, lo, hi := hs.sorted(), hs.lo, hs.hi
	first, last := hours[0], hours[len(hours)-1]
	now := e.now()
	es := e.events.source(src.Name + "." + col)
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.hours == nil {
		es.hours = map[int64]*eventHour{}
	}
	held := es.hours
	for h, eh := range held {
		if now.Sub(eh.used) > eventHourIdle {
			delete(held, h)
		}
	}
	fresh := func(h time.Time) bool {
		eh := held[h.Unix()]
		return eh != nil && now.Sub(eh.loaded) < eventHourTTL
	}
	// What to read: the buckets of [lo, hi], widened to a whole hour at
	// either end when that hour is not held (hours in between are wholly
	// inside the span).
	from := time.Unix(lo.Unix()-lo.Unix()%eventBucket, 0)
	if from.Before(first) || !fresh(first) {
		from = first
	}
	to := time.Unix(hi.Unix()-hi.Unix()%eventBucket+eventBucket, 0)
	if end := last.Add(time.Hour); to.After(end) || !fresh(last) {
		to = end
	}
	for _, h := range hours {
		if !fresh(h) {
			held[h.Unix()] = &eventHour{loaded: now, buckets: map[int64]map[string][]int64{}, total: map[string][]int64{}}
		}
		held[h.Unix()].used = now
	}

	kind := "span"
	if from.Equal(first) && to.Equal(last.Add(time.Hour)) {
		kind = "hours"
	}
	e.metrics.eventReads.WithLabelValues(src.Name, kind).Inc()
	inner := []string{"toStartOfHour(" + col + ") AS h", fmt.Sprintf("intDiv(toUInt32(%s), %d) * %d AS b", col, eventBucket, eventBucket), src.Unit + " AS unit"}
	inner = append(inner, e.sumTerms(kpis)...)
	cond := fmt.Sprintf("%[1]s >= %[2]s AND %[1]s < %[3]s", col, e.b.literal(from), e.b.literal(to))
	q := fmt.Sprintf("SELECT %s FROM %s GROUP BY h, b, unit", strings.Join(inner, ", "), e.sourceExpr(src, cond))
	read, at, err := e.readBuckets(ctx, q, len(kpis))
	if err != nil {
		es.hours = nil // partly replaced: read again next time
		return nil, err
	}
	for hu, t := range at {
		if eh := held[hu]; eh != nil {
			eh.at = t
		}
	}

	// Every bucket read replaces what was held for it.
	for t := from.Unix(); t < to.Unix(); t += eventBucket {
		eh := held[t-t%3600]
		if eh == nil {
			continue
		}
		for u, v := range eh.buckets[t] {
			addSums(eh.total, u, v, -1)
		}
		delete(eh.buckets, t)
		if units := read[t]; units != nil {
			eh.buckets[t] = units
			for u, v := range units {
				addSums(eh.total, u, v, 1)
			}
		}
	}
	out := map[rollupRow]sums{}
	for _, h := range hours {
		eh := held[h.Unix()]
		for u, v := range eh.total {
			for i, k := range kpis {
				if v[2*i] != 0 || v[2*i+1] != 0 {
					out[rollupRow{k.ID, eh.at, u}] = sums{v[2*i], v[2*i+1]}
				}
			}
		}
	}
	return out, nil
}

// readBuckets runs q (columns h, b, unit, then the sums) and returns the
// sums by bucket and unit, and each hour as ClickHouse returns it.
func (e *Engine) readBuckets(ctx context.Context, q string, nkpis int) (map[int64]map[string][]int64, map[int64]time.Time, error) {
	rows, err := e.db.Conn.Query(query.Pushdown(ctx), q)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	read := map[int64]map[string][]int64{}
	at := map[int64]time.Time{}
	var h time.Time
	var b uint64
	var unit string
	vals := make([]int64, 2*nkpis)
	dest := []any{&h, &b, &unit}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		at[h.Unix()] = h
		if read[int64(b)] == nil {
			read[int64(b)] = map[string][]int64{}
		}
		read[int64(b)][unit] = slices.Clone(vals)
	}
	return read, at, rows.Err()
}

// addSums adds sign × v to total[u], dropping a unit whose sums are all zero.
func addSums(total map[string][]int64, u string, v []int64, sign int64) {
	t := total[u]
	if t == nil {
		t = make([]int64, len(v))
		total[u] = t
	}
	zero := true
	for i := range v {
		t[i] += sign * v[i]
		zero = zero && t[i] == 0
	}
	if zero {
		delete(total, u)
	}
}

// sumTerms are the numerator and denominator sums of the KPIs, n<i> and
// d<i>, over the rows of their source.
func (e *Engine) sumTerms(kpis []*KPI) []string {
	var out []string
	for i, k := range kpis {
		out = append(out, e.sumPair(k, i)...)
	}
	return out
}

// sumPair is the KPI's numerator and denominator sums, n<i> and d<i>.
func (e *Engine) sumPair(k *KPI, i int) []string {
	num, den, _ := e.b.rowTerms(k, Span{})
	cond := e.filterCond(k)
	return []string{fmt.Sprintf("sumIf(%s, %s) AS n%d", num, cond, i), fmt.Sprintf("sumIf(%s, %s) AS d%d", den, cond, i)}
}

// filterCond is a KPI's row filter as a condition ("1" without one).
func (e *Engine) filterCond(k *KPI) string {
	if k.Filter == "" {
		return "1"
	}
	return "(" + e.b.expand(k.Filter, time.Time{}) + ")"
}
