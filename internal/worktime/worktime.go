package worktime

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

// Session is a working period of a working day, in local wall-clock time
// measured from midnight (7*time.Hour + 30*time.Minute is 07:30).
type Session struct {
	Start time.Duration
	End   time.Duration
}

// Config of a Calendar. The zero value is Ho Chi Minh City's administration.
type Config struct {
	// Location whose local dates and wall clock the calendar follows.
	// Default Asia/Ho_Chi_Minh (a fixed UTC+7 zone when the system has no
	// time zone database).
	Location *time.Location
	// Sessions are the working periods of a working day, in order and not
	// overlapping. Default 07:30–11:30 and 13:00–17:00 (8 working hours).
	Sessions []Session
	// Cutoff: a dossier received on a working day after this local time
	// counts from the next working day. Default 15:00. A cutoff of 24h or
	// more disables the rule.
	Cutoff time.Duration
}

// DefaultSessions are the working sessions of Vietnamese state agencies.
var DefaultSessions = []Session{
	{Start: 7*time.Hour + 30*time.Minute, End: 11*time.Hour + 30*time.Minute},
	{Start: 13 * time.Hour, End: 17 * time.Hour},
}

// DefaultCutoff is the time of day after which a dossier counts from the
// next working day.
const DefaultCutoff = 15 * time.Hour

// MaxHours bounds the working time the calendar adds: AddWorkingHours and
// AddWorkingDays treat longer spans (about 480 years of 8-hour days) as this
// long, so that no input overflows time.Duration.
const MaxHours = 1e6

const day = 24 * time.Hour

func (c *Config) setDefaults() {
	if c.Location == nil {
		c.Location = hcmc()
	}
	if len(c.Sessions) == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Cutoff == 0 {
		c.Cutoff = DefaultCutoff
	}
}

// Validate rejects sessions that are out of the day, empty, unordered or
// overlapping, and a negative cutoff.
func (c Config) Validate() error {
	c.setDefaults()
	prev := time.Duration(-1)
	for i, s := range c.Sessions {
		switch {
		case s.Start < 0 || s.End > day:
			return fmt.Errorf("worktime: Sessions[%d] %v–%v: must lie within 0–24h", i, s.Start, s.End)
		case s.End <= s.Start:
			return fmt.Errorf("worktime: Sessions[%d] %v–%v: end must be after start", i, s.Start, s.End)
		case s.Start < prev:
			return fmt.Errorf("worktime: Sessions[%d] %v–%v: starts before the previous session ends", i, s.Start, s.End)
		}
		prev = s.End
	}
	if c.Cutoff < 0 {
		return fmt.Errorf("worktime: Cutoff %v: must not be negative", c.Cutoff)
	}
	return nil
}

func hcmc() *time.Location {
	if loc, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return loc
	}
	return time.FixedZone("+07", 7*3600)
}

// Calendar is a business calendar. It is immutable and safe for concurrent
// use.
type Calendar struct {
	loc      *time.Location
	sessions []Session
	cutoff   time.Duration
	dayLen   time.Duration // working time of a working day
	except   map[int64]bool
	offs     []int64 // weekdays off, sorted day numbers
	ons      []int64 // weekend days worked, sorted day numbers
}

// New builds a calendar from its exceptions to the Monday–Friday week: days
// of kind refdata.DayHoliday are off, days of kind refdata.DayWorkday are
// worked. A Day's date is read in its own location (refdata stores midnight
// UTC of the local date). A holiday on a weekend and a workday on a weekday
// change nothing. The same date given twice with different kinds is an
// error.
func New(days []refdata.Day, cfg Config) (*Calendar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Calendar{
		loc:      cfg.Location,
		sessions: slices.Clone(cfg.Sessions),
		cutoff:   cfg.Cutoff,
		except:   make(map[int64]bool, len(days)),
	}
	for _, s := range c.sessions {
		c.dayLen += s.End - s.Start
	}
	kinds := make(map[int64]string, len(days))
	for i, d := range days {
		if d.Date.IsZero() {
			return nil, fmt.Errorf("worktime: days[%d] (%q): date is missing", i, d.Name)
		}
		var work bool
		switch d.Kind {
		case refdata.DayHoliday:
		case refdata.DayWorkday:
			work = true
		default:
			return nil, fmt.Errorf("worktime: days[%d] (%s): kind %q is not %q or %q",
				i, d.Date.Format(time.DateOnly), d.Kind, refdata.DayHoliday, refdata.DayWorkday)
		}
		y, m, dd := d.Date.Date()
		n := dayNumber(y, m, dd)
		if k, dup := kinds[n]; dup {
			if k != d.Kind {
				return nil, fmt.Errorf("worktime: days[%d] (%s): both %s and %s", i, d.Date.Format(time.DateOnly), k, d.Kind)
			}
			continue
		}
		kinds[n] = d.Kind
		if work == isWeekday(n) {
			continue // no change to the ordinary week
		}
		c.except[n] = work
		if work {
			c.ons = append(c.ons, n)
		} else {
			c.offs = append(c.offs, n)
		}
	}
	slices.Sort(c.offs)
	slices.Sort(c.ons)
	return c, nil
}

// Location of the calendar.
func (c *Calendar) Location() *time.Location { return c.loc }

// Sessions of a working day.
func (c *Calendar) Sessions() []Session { return slices.Clone(c.sessions) }

// Exceptions are the calendar's changes to the Monday–Friday week, as local
// dates at midnight UTC, sorted: the weekdays off and the weekend days
// worked. Together with the sessions they are the whole calendar, so that
// another engine (ClickHouse's SQL) can compute the same working time.
func (c *Calendar) Exceptions() (off, worked []time.Time) {
	conv := func(ns []int64) []time.Time {
		out := make([]time.Time, len(ns))
		for i, n := range ns {
			y, m, d := civil(n)
			out[i] = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		}
		return out
	}
	return conv(c.offs), conv(c.ons)
}

// HoursPerDay is the working time of a working day, in hours (8 by default).
func (c *Calendar) HoursPerDay() float64 { return c.dayLen.Hours() }

// IsWorkingDay reports whether the local date of t is a working day.
func (c *Calendar) IsWorkingDay(t time.Time) bool {
	n, _ := c.split(t)
	return c.working(n)
}

// AddWorkingHours returns the instant h working hours after from. Working
// time starts at from when from is within a session, else at the next start
// of a session. A span that ends exactly at the end of a session ends there
// (17:00), not at the start of the next one. h <= 0 (or NaN) returns from;
// h is capped at MaxHours.
func (c *Calendar) AddWorkingHours(from time.Time, h float64) time.Time {
	if !(h > 0) {
		return from
	}
	return c.addDuration(from, hoursToDuration(h))
}

// AddWorkingDays returns the legal deadline of a procedure whose deadline
// is n working days, for a dossier received at from: see the package
// documentation for the rules (15:00 cutoff, end of the nth working day,
// fractions of 8 working hours). n <= 0 (or NaN) returns from.
func (c *Calendar) AddWorkingDays(from time.Time, n float64) time.Time {
	if !(n > 0) {
		return from
	}
	n = min(n, MaxHours/c.HoursPerDay())
	day0, off := c.split(from)
	first := day0 // the first counted working day
	// After the cutoff, or after the day's last session when the cutoff
	// is later (a cutoff of 24h, an agency open mornings only), the day
	// does not count: its deadline would be before the receipt.
	if !c.working(day0) || off > c.cutoff || off >= c.sessions[len(c.sessions)-1].End {
		first = c.nthWorkingAfter(day0, 1)
	}
	whole := math.Floor(n)
	frac := time.Duration(math.Round((n - whole) * float64(c.dayLen)))
	endOfFirst := c.at(first, c.sessions[len(c.sessions)-1].End)
	if whole == 0 {
		start := from
		if first != day0 {
			start = c.at(first, c.sessions[0].Start)
		}
		if d := c.addDuration(start, frac); d.Before(endOfFirst) {
			return d
		}
		return endOfFirst
	}
	last := first
	if whole > 1 {
		last = c.nthWorkingAfter(first, int64(whole)-1)
	}
	end := c.at(last, c.sessions[len(c.sessions)-1].End)
	if frac > 0 {
		end = c.addDuration(end, frac)
	}
	return end
}

// WorkingHoursBetween is the working time from a to b, in hours; negative
// when b is before a.
func (c *Calendar) WorkingHoursBetween(a, b time.Time) float64 {
	if b.Before(a) {
		return -c.WorkingHoursBetween(b, a)
	}
	da, oa := c.split(a)
	db, ob := c.split(b)
	if da == db {
		if !c.working(da) {
			return 0
		}
		return (c.worked(ob) - c.worked(oa)).Hours()
	}
	var partial time.Duration
	if c.working(da) {
		partial += c.dayLen - c.worked(oa)
	}
	if c.working(db) {
		partial += c.worked(ob)
	}
	whole := c.countWorking(da+1, db)
	// In float64: centuries of working time overflow a time.Duration.
	return (float64(whole)*float64(c.dayLen) + float64(partial)) / float64(time.Hour)
}

// WorkingSecondsBetween is the working time from a to b in whole seconds
// (the fractions of a second of a and b dropped), 0 when b is before a:
// what the KPIs' SQL measures between two DateTime values.
func (c *Calendar) WorkingSecondsBetween(a, b time.Time) int64 {
	a, b = a.Truncate(time.Second), b.Truncate(time.Second)
	if !a.Before(b) {
		return 0
	}
	da, oa := c.split(a)
	db, ob := c.split(b)
	if da == db {
		if !c.working(da) {
			return 0
		}
		return int64((c.worked(ob) - c.worked(oa)) / time.Second)
	}
	var partial time.Duration
	if c.working(da) {
		partial += c.dayLen - c.worked(oa)
	}
	if c.working(db) {
		partial += c.worked(ob)
	}
	return c.countWorking(da+1, db)*int64(c.dayLen/time.Second) + int64(partial/time.Second)
}

// WorkingDaysBetween is WorkingHoursBetween in working days (hours / 8 by
// default).
func (c *Calendar) WorkingDaysBetween(a, b time.Time) float64 {
	return c.WorkingHoursBetween(a, b) / c.HoursPerDay()
}

func hoursToDuration(h float64) time.Duration {
	return time.Duration(math.Round(min(h, MaxHours) * float64(time.Hour)))
}

// addDuration moves d (> 0) of working time forward from t.
func (c *Calendar) addDuration(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	n, off := c.split(t)
	if c.working(n) {
		done := c.worked(off)
		if rest := c.dayLen - done; d <= rest {
			return c.at(n, c.offsetOf(done+d))
		}
		d -= c.dayLen - done
	}
	skip := (d - 1) / c.dayLen // whole working days passed over
	d -= skip * c.dayLen       // in (0, dayLen]
	return c.at(c.nthWorkingAfter(n, int64(skip)+1), c.offsetOf(d))
}

// worked is the working time of a working day before the wall-clock offset off.
func (c *Calendar) worked(off time.Duration) time.Duration {
	var w time.Duration
	for _, s := range c.sessions {
		if off <= s.Start {
			break
		}
		w += min(off, s.End) - s.Start
	}
	return w
}

// offsetOf is the earliest wall-clock offset at which w (in (0, dayLen]) of
// working time is done: the end of a session rather than the start of the
// next.
func (c *Calendar) offsetOf(w time.Duration) time.Duration {
	for _, s := range c.sessions {
		if l := s.End - s.Start; w <= l {
			return s.Start + w
		} else {
			w -= l
		}
	}
	return c.sessions[len(c.sessions)-1].End
}

// split returns the local day number of t and its wall-clock offset from
// midnight.
func (c *Calendar) split(t time.Time) (int64, time.Duration) {
	lt := t.In(c.loc)
	y, m, d := lt.Date()
	h, mi, s := lt.Clock()
	off := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute +
		time.Duration(s)*time.Second + time.Duration(lt.Nanosecond())
	return dayNumber(y, m, d), off
}

// at is the instant of wall-clock offset off on local day n.
func (c *Calendar) at(n int64, off time.Duration) time.Time {
	y, m, d := civil(n)
	return time.Date(y, m, d, 0, 0, 0, int(off), c.loc)
}

func (c *Calendar) working(n int64) bool {
	if w, ok := c.except[n]; ok {
		return w
	}
	return isWeekday(n)
}

// countWorking counts the working days in [lo, hi).
func (c *Calendar) countWorking(lo, hi int64) int64 {
	if hi <= lo {
		return 0
	}
	weeks := (hi - lo) / 7
	cnt := weeks * 5
	for n := lo + weeks*7; n < hi; n++ {
		if isWeekday(n) {
			cnt++
		}
	}
	return cnt - countIn(c.offs, lo, hi) + countIn(c.ons, lo, hi)
}

// nthWorkingAfter is the kth (k >= 1) working day after day n.
func (c *Calendar) nthWorkingAfter(n, k int64) int64 {
	// Exponential then binary search on countWorking(n+1, x+1) >= k: there
	// are finitely many exceptions, so a bound always exists.
	hi := n + k + k/2 + 7
	for c.countWorking(n+1, hi+1) < k {
		hi += hi - n
	}
	lo := n + 1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if c.countWorking(n+1, mid+1) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// countIn counts the elements of sorted s in [lo, hi).
func countIn(s []int64, lo, hi int64) int64 {
	i := sort.Search(len(s), func(i int) bool { return s[i] >= lo })
	j := sort.Search(len(s), func(i int) bool { return s[i] >= hi })
	return int64(j - i)
}

// isWeekday reports whether day number n is Monday to Friday
// (day 0, 1970-01-01, was a Thursday).
func isWeekday(n int64) bool {
	wd := ((n % 7) + 7 + 4) % 7 // 0 Sunday … 6 Saturday
	return wd != 0 && wd != 6
}

// dayNumber is the number of days from 1970-01-01 to the civil date y-m-d
// (proleptic Gregorian; H. Hinnant's days_from_civil).
func dayNumber(y int, m time.Month, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := yy / 400
	if yy < 0 && yy%400 != 0 {
		era--
	}
	yoe := yy - era*400
	mp := (int64(m) + 9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civil is the inverse of dayNumber.
func civil(n int64) (int, time.Month, int) {
	n += 719468
	era := n / 146097
	if n < 0 && n%146097 != 0 {
		era--
	}
	doe := n - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), time.Month(m), int(d)
}
