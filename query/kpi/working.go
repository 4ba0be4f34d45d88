package kpi

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
)

// Working time in SQL. {working_seconds:a,b} and {working_seconds_sum:as,bs}
// expand into one self-contained integer expression that measures working
// time on the business calendar exactly as worktime.WorkingHoursBetween
// does, in seconds: the calendar is spliced in as a string literal (below),
// the sessions as offsets, so the expression depends on nothing but its row
// (and may be kept in rollups). It uses only integer arithmetic, substring,
// reinterpretAsUInt8 and arrayMap/arraySum over one or two elements, which
// ClickHouse 18.16 and current releases both have, and costs the same
// whatever the number of holidays.
//
// Let L be a time as local seconds since 1970-01-01 (toInt64(t) + the
// zone's offset; Asia/Ho_Chi_Minh keeps UTC+7 without daylight saving),
// n = L div 86400 its local day number and o its offset in the day. The
// working time from day 0 to L is
//
//	day length × (weekdays before n + net(n))
//	+ (n is a weekday + net(n+1) − net(n)) × (working time of the sessions before o)
//
// where net(n) is the weekend days worked minus the weekdays off before day
// n (day -3, 1969-12-29, was a Monday, so the weekdays before n are
// (n+3) div 7 × 5 + min((n+3) mod 7, 5), up to a constant). The working
// time from a to b is its difference, 0 when b is before a.
//
// net is a table of one entry per day from the day before the calendar's
// first exception to the day after its last, plus one (before: the first
// entry; after: the last), each entry two characters of base 64 from '0'
// (net + bias, never negative): some 7,700 days, 15 kB, for the 2015–2035
// calendar. One substring of four characters gives net(n) and net(n+1)
// together, so the literal appears once in each expansion: ClickHouse
// analyses a statement in time that grows with the literal's length times
// its occurrences (with the literal at six places, a lookup of 1,000
// dossiers spent most of its ~100 ms analysing it; evaluating it per row
// costs little).

// workingSQL builds the expressions for one calendar.
type workingSQL struct {
	offset   int64 // seconds east of UTC
	dayLen   int64
	sessions []worktime.Session
	first    int64  // day number of the first exception (the table starts the day before)
	last     int64  // the day after the last exception, as days after first
	bias     int64  // added to net before encoding
	table    string // the literal; "" when the calendar has no exceptions
}

func newWorkingSQL(cal *worktime.Calendar) *workingSQL {
	_, off := time.Date(2000, 1, 1, 0, 0, 0, 0, cal.Location()).Zone()
	w := &workingSQL{offset: int64(off), sessions: cal.Sessions()}
	for _, s := range w.sessions {
		w.dayLen += int64((s.End - s.Start) / time.Second)
	}
	offs, ons := cal.Exceptions()
	if len(offs)+len(ons) == 0 {
		return w
	}
	delta := map[int64]int64{}
	w.first, w.bias = math.MaxInt64, int64(len(offs))
	var lastDay int64
	for _, d := range offs {
		n := d.Unix() / 86400
		delta[n]--
		w.first, lastDay = min(w.first, n), max(lastDay, n)
	}
	for _, d := range ons {
		n := d.Unix() / 86400
		delta[n]++
		w.first, lastDay = min(w.first, n), max(lastDay, n)
	}
	w.last = lastDay + 1 - w.first
	var b strings.Builder
	b.WriteString("'")
	net := int64(0)
	// Entry k is net(first - 1 + k), for k = 0 … last + 2.
	for k := int64(0); k <= w.last+2; k++ {
		if k >= 2 {
			net += delta[w.first+k-2]
		}
		v := net + w.bias
		for _, c := range []byte{byte(48 + v/64), byte(48 + v%64)} {
			if c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	w.table = b.String()
	return w
}

// cumulative is the working time from day 0 to the local seconds ws_l: a
// lambda binds ws_n (the day), ws_o (the offset in the day) and ws_v (the
// four table characters of net(ws_n) and net(ws_n + 1) as a UInt32, first
// character lowest).
func (w *workingSQL) cumulative() string {
	worked := make([]string, len(w.sessions))
	for i, s := range w.sessions {
		a, b := int64(s.Start/time.Second), int64(s.End/time.Second)
		worked[i] = fmt.Sprintf("(least(greatest(ws_o, %d), %d) - %d)", a, b, a)
	}
	netN, netN1, lookup := "0", "0", "toUInt32(0)"
	if w.table != "" {
		c := 48*64 + 48 + w.bias
		netN = fmt.Sprintf("(toInt64(bitAnd(ws_v, 255)) * 64 + bitAnd(bitShiftRight(ws_v, 8), 255) - %d)", c)
		netN1 = fmt.Sprintf("(toInt64(bitAnd(bitShiftRight(ws_v, 16), 255)) * 64 + bitShiftRight(ws_v, 24) - %d)", c)
		lookup = fmt.Sprintf("reinterpretAsUInt32(substring(%s, 2 * least(greatest(intDiv(ws_l, 86400) - %d, 0), %d) + 1, 4))",
			w.table, w.first-1, w.last+1)
	}
	return fmt.Sprintf("arraySum(arrayMap((ws_n, ws_o, ws_v) -> %d * (intDiv(ws_n + 3, 7) * 5 + least(modulo(ws_n + 3, 7), 5) + %s)"+
		" + (toInt64(modulo(ws_n + 3, 7) < 5) + %[3]s - %[2]s) * (%[4]s), [intDiv(ws_l, 86400)], [modulo(ws_l, 86400)], [%[5]s]))",
		w.dayLen, netN, netN1, strings.Join(worked, " + "), lookup)
}

// sum is the working seconds from each element of the DateTime array
// expression from to the element of the same rank of to, summed.
func (w *workingSQL) sum(from, to string) string {
	return fmt.Sprintf("arraySum(arrayMap((ws_a, ws_b) -> greatest(toInt64(0), arraySum(arrayMap((ws_l, ws_s) -> ws_s * %s,"+
		" [toInt64(ws_a) + %d, toInt64(ws_b) + %[2]d], [-1, 1]))), %s, %s))", w.cumulative(), w.offset, from, to)
}

// between is the working seconds from the DateTime expression a to b.
func (w *workingSQL) between(a, b string) string { return w.sum("["+a+"]", "["+b+"]") }

// Working time in Go. A numerator (or denominator) made of working-time
// placeholders alone, added and subtracted, is measured in Go by the
// engine's lookups of single entities (contributions): the SQL expansion
// evaluated per row costs ClickHouse more than the rest of such a lookup
// (about half of a lookup of 1,000 dossiers), while Go measures the same
// seconds with worktime.WorkingSecondsBetween, which the SQL is tested to
// equal. The /sql of a key, the rebuilds and the window queries keep the
// SQL.

// workingTerm is one placeholder of such a fragment, with its sign.
type workingTerm struct {
	sign     int64
	sum      bool   // {working_seconds_sum:as,bs}: over the pairs of two arrays
	from, to string // column names
}

// workingTerms returns the terms of a fragment that holds nothing but
// working-time placeholders joined by + and - (the first may carry a
// sign); ok is false for any other fragment.
func workingTerms(frag string) (terms []workingTerm, ok bool) {
	locs := placeholderRE.FindAllStringSubmatchIndex(frag, -1)
	if len(locs) == 0 {
		return nil, false
	}
	prev := 0
	for i, l := range locs {
		kind := frag[l[2]:l[3]]
		if kind != "working_seconds" && kind != "working_seconds_sum" || l[4] < 0 {
			return nil, false
		}
		sign := int64(1)
		switch gap := strings.TrimSpace(frag[prev:l[0]]); {
		case gap == "-":
			sign = -1
		case gap == "+", gap == "" && i == 0:
		default:
			return nil, false
		}
		from, to, _ := strings.Cut(frag[l[4]:l[5]], ",")
		terms = append(terms, workingTerm{sign: sign, sum: kind == "working_seconds_sum", from: from, to: to})
		prev = l[1]
	}
	if strings.TrimSpace(frag[prev:]) != "" {
		return nil, false
	}
	return terms, true
}

// workingValue is the value of the terms for one row: from[i] and to[i]
// hold the i-th term's columns (*time.Time, or *[]time.Time for a sum).
func workingValue(cal *worktime.Calendar, terms []workingTerm, from, to []any) (int64, error) {
	var v int64
	for i, t := range terms {
		if !t.sum {
			v += t.sign * cal.WorkingSecondsBetween(*from[i].(*time.Time), *to[i].(*time.Time))
			continue
		}
		as, bs := *from[i].(*[]time.Time), *to[i].(*[]time.Time)
		if len(as) != len(bs) {
			return 0, fmt.Errorf("{working_seconds_sum:%s,%s}: arrays of %d and %d elements", t.from, t.to, len(as), len(bs))
		}
		for j := range as {
			v += t.sign * cal.WorkingSecondsBetween(as[j], bs[j])
		}
	}
	return v, nil
}
