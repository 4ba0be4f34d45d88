package kpi

import (
	"fmt"
	"slices"
	"time"
)

// Window names, in Asia/Ho_Chi_Minh. Every window is a whole number of
// days, but 24h, a whole number of hours, so that the engine reads it from
// its rollups: calendar windows span the whole period (its remainder holds
// no data yet); 7d and 30d are the last 7 and 30 days including today; 24h
// is the last 24 hours including the current one.
const (
	WindowNow     = "now" // instant KPIs only
	WindowToday   = "today"
	WindowWeek    = "week" // Monday to Sunday
	WindowMonth   = "month"
	WindowQuarter = "quarter"
	WindowYTD     = "ytd"
	Window24h     = "24h"
	Window7d      = "7d"
	Window30d     = "30d"
	// WindowCustom is a [from, to) given on REST.
	WindowCustom = "custom"
)

// StandardWindows are the windows the engine publishes for every window KPI.
var StandardWindows = []string{WindowToday, WindowWeek, WindowMonth, WindowQuarter, WindowYTD, Window24h, Window7d, Window30d}

// Span is a window resolved at an instant: [From, To), and At, the instant
// the value is taken (what {now} means in the SQL).
type Span struct {
	Window string    `json:"window"`
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	At     time.Time `json:"at"`
}

// Minutes of the span that have passed by At: the divisor of a
// per_minute KPI.
func (s Span) Minutes() float64 {
	end := s.To
	if s.At.Before(end) {
		end = s.At
	}
	m := end.Sub(s.From).Minutes()
	if m < 1 {
		m = 1
	}
	return m
}

// Resolve turns a window name into a span at the instant at (truncated to
// the second, as ClickHouse's DateTime).
func Resolve(window string, at time.Time, loc *time.Location) (Span, error) {
	at = at.Truncate(time.Second).In(loc)
	s := Span{Window: window, At: at}
	y, m, d := at.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, loc)
	switch window {
	case WindowNow:
	case WindowToday:
		s.From, s.To = day, day.AddDate(0, 0, 1)
	case WindowWeek:
		back := (int(at.Weekday()) + 6) % 7 // days since Monday
		s.From = day.AddDate(0, 0, -back)
		s.To = s.From.AddDate(0, 0, 7)
	case WindowMonth:
		s.From = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		s.To = s.From.AddDate(0, 1, 0)
	case WindowQuarter:
		s.From = time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, loc)
		s.To = s.From.AddDate(0, 3, 0)
	case WindowYTD:
		s.From = time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		s.To = s.From.AddDate(1, 0, 0)
	case Window24h:
		s.To = at.Truncate(time.Hour).Add(time.Hour)
		s.From = s.To.Add(-24 * time.Hour)
	case Window7d:
		s.From, s.To = day.AddDate(0, 0, -6), day.AddDate(0, 0, 1)
	case Window30d:
		s.From, s.To = day.AddDate(0, 0, -29), day.AddDate(0, 0, 1)
	default:
		return s, fmt.Errorf("window %q: use one of now, %v, or from and to", window, StandardWindows)
	}
	return s, nil
}

// Custom is the span [from, to) taken at the instant at.
// Its bounds lie within the years events may have (2000 to 2100, as the
// intake accepts them): ClickHouse's DateTime holds 1970 to 2105 only, and
// a bound outside it would be read as another instant (1900 as 2106: a
// window counting nothing).
func Custom(from, to, at time.Time, loc *time.Location) (Span, error) {
	if !from.Before(to) {
		return Span{}, fmt.Errorf("from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	for i, t := range []time.Time{from, to} {
		if t.Before(customFirst) || t.After(customLast) {
			return Span{}, fmt.Errorf("%s (%s) must be between %s and %s", [2]string{"from", "to"}[i], t.Format(time.RFC3339),
				customFirst.Format(time.DateOnly), customLast.Format(time.DateOnly))
		}
	}
	return Span{Window: WindowCustom, From: from.Truncate(time.Second).In(loc), To: to.Truncate(time.Second).In(loc),
		At: at.Truncate(time.Second).In(loc)}, nil
}

// The bounds of a custom window.
var (
	customFirst = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	customLast  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CheckWindow says whether the KPI is published for the window.
func (k *KPI) CheckWindow(window string) error { return checkWindow(k.ID, k.Instant(), window) }

// CheckCompositeWindow says whether a composite (score766.total …) is
// given for the window: those of its components, KPIs over windows.
func CheckCompositeWindow(id, window string) error { return checkWindow(id, false, window) }

func checkWindow(id string, instant bool, window string) error {
	if instant {
		if window != WindowNow {
			return fmt.Errorf("%s is taken at an instant: its only window is now", id)
		}
		return nil
	}
	if window == WindowNow {
		return fmt.Errorf("%s is counted over a window: use one of %v or from and to", id, StandardWindows)
	}
	if window != WindowCustom && !slices.Contains(StandardWindows, window) {
		return fmt.Errorf("window %q: use one of %v or from and to", window, StandardWindows)
	}
	return nil
}
