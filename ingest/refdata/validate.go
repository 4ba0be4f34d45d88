package refdata

import (
	"math"
	"regexp"
	"time"
)

// Service levels of a procedure.
const (
	ServiceFullOnline    = "full_online"
	ServicePartialOnline = "partial_online"
	ServiceOffline       = "offline"
)

// UnitKinds are the known kinds of org unit.
var UnitKinds = []string{KindCity, KindDepartment, KindWard, KindCommune, KindSpecialZone, KindLegacyDistrict, KindLegacyWard}

func knownUnitKind(k string) bool {
	for _, u := range UnitKinds {
		if u == k {
			return true
		}
	}
	return false
}

// Validate checks the set as a whole: codes unique within each kind, every
// unit's parent exists with a level one less, a single tree without cycles
// rooted at a city, known kinds, coordinates in range, successors that
// exist, officers and cameras in units that exist, procedures with one
// positive deadline (days or hours) and a known service level, calendar
// days with a date and a known kind. It returns nil or a *ValidationError
// listing the first MaxProblems problems, each naming the kind, the row
// (index and code) and the field.
func (s *Set) Validate() error {
	ps := problems{lines: s.lines}
	units := s.validateUnits(&ps)
	s.validateProcedures(&ps)
	ids := map[string]int{}
	for i, o := range s.Officers {
		const kind = "officers"
		uniqueKey(&ps, kind, i, o.ID, ids)
		if o.Unit == "" {
			ps.addf(kind, i, o.ID, "unit", "is empty")
		} else if _, ok := units[o.Unit]; !ok {
			ps.addf(kind, i, o.ID, "unit", "%q does not exist", o.Unit)
		}
	}
	ids = map[string]int{}
	for i, c := range s.Cameras {
		const kind = "cameras"
		uniqueKey(&ps, kind, i, c.ID, ids)
		if c.Unit == "" {
			ps.addf(kind, i, c.ID, "unit", "is empty")
		} else if _, ok := units[c.Unit]; !ok {
			ps.addf(kind, i, c.ID, "unit", "%q does not exist", c.Unit)
		}
		checkLatLon(&ps, kind, i, c.ID, c.Lat, c.Lon)
	}
	dates := map[string]int{}
	for i, d := range s.Calendar {
		const kind = "calendar"
		key := ""
		if !d.Date.IsZero() {
			key = d.Date.Format(time.DateOnly)
		}
		uniqueKey(&ps, kind, i, key, dates)
		checkDate(&ps, kind, i, key, "date", d.Date)
		switch {
		case d.Kind != DayHoliday && d.Kind != DayWorkday:
			ps.addf(kind, i, key, "kind", "%q is not %q or %q", d.Kind, DayHoliday, DayWorkday)
		case d.Kind == DayWorkday && !d.Date.IsZero() && d.Date.Weekday() != time.Saturday && d.Date.Weekday() != time.Sunday:
			// A swap day makes a weekend day worked; on a weekday it
			// would change nothing, so it is a mistake (the wrong date).
			ps.addf(kind, i, key, "kind", "workday on a %s: only a Saturday or a Sunday can be made a working day", d.Date.Weekday())
		}
	}
	return ps.result()
}

// validateUnits checks the org tree and returns the index of each code.
// unitCode: a unit's code is part of KPI keys in NATS KV
// (<kpi>.<unit>.<window>) and of websocket channels (kpi:<kpi>:<unit>:…).
var unitCode = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (s *Set) validateUnits(ps *problems) map[string]int {
	const kind = "units"
	at := make(map[string]int, len(s.Units))
	for i, u := range s.Units {
		uniqueKey(ps, kind, i, u.Code, at)
		if u.Code != "" && !unitCode.MatchString(u.Code) {
			ps.addf(kind, i, u.Code, "code", "%q may hold only letters, digits, '-' and '_' (it names NATS subjects and websocket channels)", u.Code)
		}
		if !knownUnitKind(u.Kind) {
			ps.addf(kind, i, u.Code, "kind", "%q is not a known kind (%v)", u.Kind, UnitKinds)
		}
		checkLatLon(ps, kind, i, u.Code, u.Lat, u.Lon)
		if math.IsNaN(u.AreaKm2) || u.AreaKm2 < 0 {
			ps.addf(kind, i, u.Code, "area_km2", "%v is negative", u.AreaKm2)
		}
		checkDate(ps, kind, i, u.Code, "valid_from", u.ValidFrom)
		checkDate(ps, kind, i, u.Code, "valid_to", u.ValidTo)
		if !u.ValidTo.IsZero() && !u.ValidTo.After(u.ValidFrom) {
			ps.addf(kind, i, u.Code, "valid_to", "%s is not after valid_from %s",
				u.ValidTo.Format(time.DateOnly), u.ValidFrom.Format(time.DateOnly))
		}
	}
	root := -1
	for i, u := range s.Units {
		if u.Parent == "" {
			switch {
			case u.Kind != KindCity:
				ps.addf(kind, i, u.Code, "parent", "is empty (only a city is a root)")
			case u.Level != 0:
				ps.addf(kind, i, u.Code, "level", "%d, want 0 for a root", u.Level)
			case root >= 0:
				// A second tree would be outside the city's totals.
				ps.addf(kind, i, u.Code, "parent", "is empty, but %q is the root already: the units form one tree", s.Units[root].Code)
			default:
				root = i
			}
		} else if j, ok := at[u.Parent]; !ok {
			ps.addf(kind, i, u.Code, "parent", "%q does not exist", u.Parent)
		} else if p := s.Units[j]; u.Level != p.Level+1 {
			ps.addf(kind, i, u.Code, "level", "%d, want %d (one more than parent %q)", u.Level, p.Level+1, u.Parent)
		}
		for _, succ := range u.Successors {
			if _, ok := at[succ]; !ok {
				ps.addf(kind, i, u.Code, "successors", "%q does not exist", succ)
			}
		}
	}
	// Cycles: walk up from each unit; state 1 = on the current walk, 2 = known to reach a root.
	state := make([]uint8, len(s.Units))
	for i := range s.Units {
		var walk []int
		j := i
		for j >= 0 && state[j] == 0 {
			state[j] = 1
			walk = append(walk, j)
			next, ok := at[s.Units[j].Parent]
			if !ok || s.Units[j].Parent == "" {
				next = -1
			}
			j = next
		}
		if j >= 0 && state[j] == 1 {
			u := s.Units[j]
			ps.addf(kind, j, u.Code, "parent", "%q makes a cycle", u.Parent)
		}
		for _, k := range walk {
			state[k] = 2
		}
	}
	return at
}

func (s *Set) validateProcedures(ps *problems) {
	const kind = "procedures"
	codes := map[string]int{}
	for i, p := range s.Procedures {
		uniqueKey(ps, kind, i, p.Code, codes)
		if p.Name == "" {
			ps.addf(kind, i, p.Code, "name", "is empty")
		}
		days, hours := p.DeadlineDays, p.DeadlineHours
		switch {
		case math.IsNaN(days) || days < 0:
			ps.addf(kind, i, p.Code, "deadline_days", "%v is negative", days)
		case math.IsNaN(hours) || hours < 0:
			ps.addf(kind, i, p.Code, "deadline_hours", "%v is negative", hours)
		case days > 0 && hours > 0:
			ps.addf(kind, i, p.Code, "deadline_hours", "%v is set with deadline_days %v: give one of them", hours, days)
		case !(days > 0) && !(hours > 0):
			ps.addf(kind, i, p.Code, "deadline_days", "is not positive, nor is deadline_hours")
		}
		switch p.ServiceLevel {
		case ServiceFullOnline, ServicePartialOnline, ServiceOffline:
		default:
			ps.addf(kind, i, p.Code, "service_level", "%q is not %s, %s or %s", p.ServiceLevel, ServiceFullOnline, ServicePartialOnline, ServiceOffline)
		}
		if !knownUnitKind(p.UnitKind) {
			ps.addf(kind, i, p.Code, "unit_kind", "%q is not a known unit kind", p.UnitKind)
		}
	}
}

// uniqueKey checks that key is set and not seen before in seen (key → index).
func uniqueKey(ps *problems, kind string, i int, key string, seen map[string]int) {
	if key == "" {
		ps.addf(kind, i, "", keyName(kind), "is empty")
		return
	}
	if j, dup := seen[key]; dup {
		ps.addf(kind, i, key, keyName(kind), "%q is not unique (also %s)", key, ps.row(kind, j))
		return
	}
	seen[key] = i
}

// Dates that ClickHouse's Date holds and reads back as they were: 1970-01-01
// itself stands for "no date".
var (
	firstDate = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	lastDate  = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
)

// checkDate refuses a date that would be stored as another one.
func checkDate(ps *problems, kind string, i int, key, field string, t time.Time) {
	if t.IsZero() {
		return
	}
	if d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC); d.Before(firstDate) || d.After(lastDate) {
		ps.addf(kind, i, key, field, "%s is out of range (1970-01-02 to 2105-12-31)", t.Format(time.DateOnly))
	}
}

func checkLatLon(ps *problems, kind string, i int, key string, lat, lon float64) {
	if !(lat >= -90 && lat <= 90) {
		ps.addf(kind, i, key, "lat", "%v is out of range (-90 to 90)", lat)
	}
	if !(lon >= -180 && lon <= 180) {
		ps.addf(kind, i, key, "lon", "%v is out of range (-180 to 180)", lon)
	}
}
