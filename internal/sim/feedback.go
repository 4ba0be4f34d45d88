package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// ticket is one citizen feedback ticket (phản ánh kiến nghị, 1022 portal).
type ticket struct {
	id       string
	unit     *unit // ward where it happened
	assignee *unit // unit that handles it
	officer  string
	category string
	channel  string
	received time.Time
	due      time.Time
	lat, lon float64
	addr     string
	citID    string
	citName  string
	citPhone string
	outcome  string
	rating   int

	steps [5]step
	n, i  int
}

const (
	ftReceived uint8 = iota
	ftAssigned
	ftResolved
	ftClosed
	ftRated
)

var (
	// The 1022 portal's categories, with their share of tickets and their
	// processing deadline in working days: 15 by default, less for urgent
	// incidents (a broken traffic light, a fallen tree, a sewer overflow).
	feedbackCats = []struct {
		name string
		cum  float64
		days float64
	}{
		{"urban_order", 0.25, 10},
		{"environment", 0.45, 7},
		{"infrastructure", 0.63, 5},
		{"traffic", 0.78, 3},
		{"other", 0.88, 15},
		{"health", 0.93, 5},
		{"leaders", 0.97, 15},
		{"tourism", 1.00, 10},
	}
	feedbackChannels = []string{"app", "phone", "zalo", "web", "qr", "email", "counter"}
	feedbackChanCum  = []float64{0.30, 0.55, 0.75, 0.90, 0.95, 0.98, 1.0}
	feedbackOutcomes = []string{"Đã xử lý xong", "Đã xử lý, trả lời công dân", "Đã chuyển cơ quan có thẩm quyền", "Không thuộc thẩm quyền, đã hướng dẫn"}
)

// newTicket draws a ticket received at t in ward u.
func (e *engine) newTicket(r *rand.Rand, u *unit, t time.Time) *ticket {
	e.tickets++
	tk := &ticket{unit: u, assignee: u, received: t, id: ticketID(e.tag, t, e.tickets)}
	x := r.Float64()
	days := 15.0
	for _, c := range feedbackCats {
		if x < c.cum {
			tk.category, days = c.name, c.days
			break
		}
	}
	if tk.category == "" {
		tk.category = "other"
	}
	tk.channel = feedbackChannels[pickCum(r, feedbackChanCum)]
	tk.due = trunc(e.cal.AddWorkingDays(t, days))
	// Within 800 m of the ward's centre, and within 60 % of the radius of
	// a disc of the ward's area: small central wards are under 1 km².
	d := wardRadius(u.AreaKm2) * math.Sqrt(r.Float64())
	th := 2 * math.Pi * r.Float64()
	lat, lon := u.Lat, u.Lon
	if lat == 0 && lon == 0 { // no point in the reference data: the city centre
		lat, lon = 10.7769, 106.7009
	}
	tk.lat = round6(lat + d*math.Cos(th)/111_320)
	tk.lon = round6(lon + d*math.Sin(th)/(111_320*math.Cos(lat*math.Pi/180)))
	tk.addr = address(r, u.Name)
	tk.citID, tk.citName = person(r)
	tk.citPhone = phone(r)
	if len(e.city.depts) > 0 && r.Float64() < 0.15 {
		tk.assignee = pick(r, e.city.depts)
	}
	tk.officer = pick(r, tk.assignee.officers)
	return tk
}

// ticketID is "PA-<yymmdd>-<run tag>-<n>" (phản ánh).
func ticketID(tag string, t time.Time, n uint64) string {
	b := make([]byte, 0, 32)
	b = append(b, "PA-"...)
	b = t.In(ict).AppendFormat(b, "060102")
	b = append(b, '-')
	b = append(b, tag...)
	b = append(b, '-')
	b = strconv.AppendUint(b, n, 10)
	return string(b)
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// planTicket plans a ticket's life: c is classOnTime (resolved at or
// before due_at), classOverdue, classOpen or classNatural; limit, when not
// zero, bounds the resolution. It reports false when c cannot be met.
func (e *engine) planTicket(r *rand.Rand, tk *ticket, c class, limit time.Time) bool {
	cal := e.cal
	tk.n, tk.i = 0, 0
	tk.steps[tk.n] = step{tk.received, ftReceived}
	tk.n++
	a := trunc(cal.AddWorkingHours(tk.received, 0.05+3*r.Float64()))
	if !a.After(tk.received) {
		a = tk.received.Add(minutes(r, 1, 30))
	}
	tk.steps[tk.n] = step{a, ftAssigned}
	tk.n++
	if c == classNatural {
		c = classOnTime
		if r.Float64() < tk.unit.ticketLate {
			c = classOverdue
		}
	}
	var end time.Time
	switch c {
	case classOpen:
		return true
	case classOnTime:
		b := tk.due.Add(time.Second)
		if !limit.IsZero() && limit.Before(b) {
			b = limit
		}
		lo := a.Add(time.Minute)
		if !lo.Before(b) {
			return false
		}
		u := r.Float64()
		end = between(r, cal, lo, b, u*u)
	case classOverdue:
		lo := max64(a, tk.due).Add(time.Second)
		end = trunc(cal.AddWorkingHours(lo, 0.5+40*r.Float64()))
		if !limit.IsZero() && !end.Before(limit) {
			if !lo.Before(limit) {
				return false
			}
			end = between(r, cal, lo, limit, r.Float64())
		}
	}
	if !end.After(a) || (c == classOnTime) == end.After(tk.due) {
		return false
	}
	tk.outcome = pick(r, feedbackOutcomes)
	tk.steps[tk.n] = step{end, ftResolved}
	tk.n++
	closed := end.Add(minutes(r, 30, 48*60))
	tk.steps[tk.n] = step{closed, ftClosed}
	tk.n++
	if r.Float64() < 0.45 {
		w := []float64{0.04, 0.10, 0.25, 0.55, 1.0} // 1..5 stars, on time
		if c == classOverdue {
			w = []float64{0.15, 0.35, 0.65, 0.88, 1.0}
		}
		tk.rating = 1 + pickCum(r, w)
		tk.steps[tk.n] = step{closed.Add(minutes(r, 5, 24*60)), ftRated}
		tk.n++
	}
	return true
}

func (tk *ticket) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	ev := e.ticketEvent(tk, tk.steps[tk.i])
	tk.i++
	if tk.i < tk.n {
		return ev, true, tk.steps[tk.i].at, true
	}
	return ev, true, time.Time{}, false
}

func (e *engine) ticketEvent(tk *ticket, s step) Event {
	o := e.data()
	typ := ""
	switch s.kind {
	case ftReceived:
		typ = typeFeedbackReceived
		o.str("channel", tk.channel)
		o.str("category", tk.category)
		o.str("unit", tk.unit.Code)
		o.time("due_at", tk.due)
		l := o.sub("location")
		l.num("lat", tk.lat, 6)
		l.num("lon", tk.lon, 6)
		l.str("address", tk.addr)
		o.endSub(l)
		c := o.sub("citizen")
		c.str("id", tk.citID)
		c.str("name", tk.citName)
		c.str("phone", tk.citPhone)
		o.endSub(c)
	case ftAssigned:
		typ = typeFeedbackAssigned
		o.str("unit", tk.assignee.Code)
		o.str("officer", tk.officer)
	case ftResolved:
		typ = typeFeedbackResolved
		o.str("outcome", tk.outcome)
	case ftClosed:
		typ = typeFeedbackClosed
	case ftRated:
		typ = typeFeedbackRated
		o.int("rating", int64(tk.rating))
	}
	return e.event(e.src.feedback, typ, tk.id, s.at, e.done(o))
}

// wardRadius is how far from its ward's centre a ticket may lie, in metres.
func wardRadius(areaKm2 float64) float64 {
	if areaKm2 <= 0 {
		return 800
	}
	return min(800, 0.6*math.Sqrt(areaKm2*1e6/math.Pi))
}
