package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
)

// class is how a dossier's life ends.
type class uint8

const (
	classNatural   class = iota // drawn from the unit's traits
	classEarly                  // resolved on a calendar day before the due day
	classOnTime                 // resolved on the due day, at or before due_at
	classOverdue                // resolved after due_at
	classWithdrawn              // withdrawn by the applicant before its deadline
	classOpen                   // still open
	classLater                  // extended, then resolved after the period (scenarios)
)

// tri is an attribute a scenario may force.
type tri uint8

const (
	triNatural tri = iota
	triYes
	triNo
)

// Step kinds of a dossier.
const (
	stReceived uint8 = iota
	stAssigned
	stSuppRequested
	stSuppReceived
	stDueChanged
	stResolved
	stReturned
	stWithdrawn
	stApology
	stSynced
	stDigitized
	stPaid
	stSurvey
)

const maxSteps = 14

type step struct {
	at   time.Time
	kind uint8
}

// dossier is one dossier's planned life; the engine plays its steps at
// their times.
type dossier struct {
	code     string
	unit     *unit
	proc     *procedure
	officer  string
	channel  string
	received time.Time
	due      time.Time // first deadline
	suppDue  time.Time // deadline after the supplement
	extDue   time.Time // deadline after the extension
	outcome  string
	eResult  bool
	retCh    string
	reason   string
	applKind string
	applID   string
	applName string
	fee      int64
	payBy    string
	comps    int
	reused   int
	survey   *surveyData

	steps [maxSteps]step
	n, i  int
}

func (d *dossier) add(at time.Time, kind uint8) {
	d.steps[d.n] = step{at, kind}
	d.n++
}

// sortSteps orders the steps by time, keeping the planned order on ties
// (received always comes first).
func (d *dossier) sortSteps() {
	for i := 1; i < d.n; i++ {
		for j := i; j > 0 && d.steps[j].at.Before(d.steps[j-1].at); j-- {
			d.steps[j], d.steps[j-1] = d.steps[j-1], d.steps[j]
		}
	}
}

// planSpec says what a dossier's plan must satisfy.
type planSpec struct {
	class       class
	full        bool      // the whole lifecycle, not only received/resolved/synced
	limit       time.Time // not zero: resolution (or withdrawal) strictly before it
	synced      tri
	digitized   tri
	syncShare   float64 // when synced is natural
	surveyShare float64 // share of resolved dossiers with a survey
	noExtras    bool    // no supplement or extension (later attempts of a scenario)
}

var (
	suppReasons = []string{
		"Thiếu bản sao giấy tờ tùy thân",
		"Thành phần hồ sơ chưa đầy đủ",
		"Thông tin tờ khai chưa chính xác",
		"Bổ sung bản vẽ hiện trạng",
		"Bổ sung giấy tờ chứng minh quyền sử dụng đất",
	}
	extReasons = []string{
		"Gia hạn để xác minh thông tin",
		"Gia hạn do phải lấy ý kiến cơ quan liên quan",
		"Gia hạn theo đề nghị của người nộp",
	}
	withdrawReasons = []string{
		"Người nộp rút hồ sơ",
		"Nộp nhầm thủ tục",
		"Không còn nhu cầu giải quyết",
	}
	fees = []int64{10_000, 20_000, 30_000, 50_000, 100_000, 150_000, 200_000, 500_000, 1_000_000}
)

// deadlineHours is the legal deadline of a procedure in working hours.
func deadlineHours(p *procedure, cal *worktime.Calendar) float64 {
	if p.DeadlineHours > 0 {
		return p.DeadlineHours
	}
	if p.DeadlineDays > 0 {
		return p.DeadlineDays * cal.HoursPerDay()
	}
	return cal.HoursPerDay()
}

// deadline is the due_at of a dossier of p received at t.
func deadline(cal *worktime.Calendar, p *procedure, t time.Time) time.Time {
	switch {
	case p.DeadlineHours > 0:
		// Hours that make whole working days follow the rule of days: 8
		// working hours of a certification are "the same day; after 15:00,
		// the next working day" (Decree 23/2015/NĐ-CP art. 7).
		if d := p.DeadlineHours / cal.HoursPerDay(); d == math.Trunc(d) {
			return trunc(cal.AddWorkingDays(t, d))
		}
		return trunc(cal.AddWorkingHours(t, p.DeadlineHours))
	case p.DeadlineDays > 0:
		return trunc(cal.AddWorkingDays(t, p.DeadlineDays))
	}
	return trunc(cal.AddWorkingDays(t, 1))
}

// trunc drops sub-second parts: events carry times to the second, and the
// plan must classify the same way as anyone reading the events.
func trunc(t time.Time) time.Time { return t.Truncate(time.Second).In(ict) }

// dayStart is local midnight of t's day.
func dayStart(t time.Time) time.Time {
	y, m, d := t.In(ict).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, ict)
}

// classify a resolved dossier as KPIS.md defines it (local days).
func classify(due, resolved time.Time) class {
	switch {
	case resolved.After(due):
		return classOverdue
	case dayStart(resolved).Before(dayStart(due)):
		return classEarly
	default:
		return classOnTime
	}
}

// between draws an instant in [a, b), preferring working time.
func between(r *rand.Rand, cal *worktime.Calendar, a, b time.Time, u float64) time.Time {
	if !a.Before(b) {
		return a
	}
	var t time.Time
	if h := cal.WorkingHoursBetween(a, b); h > 0.02 {
		t = cal.AddWorkingHours(a, h*u)
	} else {
		t = a.Add(time.Duration(u * float64(b.Sub(a))))
	}
	t = trunc(t)
	if t.Before(a) {
		t = a
	}
	if !t.Before(b) {
		t = b.Add(-time.Second)
	}
	return t
}

func minutes(r *rand.Rand, lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*r.Float64()) * float64(time.Minute)).Truncate(time.Second)
}

// naturalClass draws how a dossier of u ends, from the unit's traits.
func naturalClass(r *rand.Rand, u *unit) class {
	x := r.Float64()
	switch {
	case x < 0.004:
		return classWithdrawn
	case x < 0.004+u.overdue:
		return classOverdue
	case x < 0.004+u.overdue+u.onTime:
		return classOnTime
	}
	return classEarly
}

// plan fills in a dossier whose unit, procedure, channel and reception
// time are set. It reports false when the class cannot be met (e.g. an
// early resolution of a same-day procedure, or an on-time one whose due
// day falls after the limit); the caller then draws again.
func (e *engine) plan(r *rand.Rand, d *dossier, sp planSpec) bool {
	cal := e.cal
	d.n, d.i = 0, 0
	d.suppDue, d.extDue, d.survey = time.Time{}, time.Time{}, nil
	t0 := d.received
	d.due = deadline(cal, d.proc, t0)
	d.add(t0, stReceived)
	d.officer = pick(r, d.unit.officers)
	if r.Float64() < 0.85 {
		d.applKind = "citizen"
		d.applID, d.applName = person(r)
	} else {
		d.applKind = "business"
		d.applID, d.applName = business(r)
	}
	cur, lo := d.due, t0
	total := deadlineHours(d.proc, cal)
	want := sp.class
	if sp.full {
		a := trunc(cal.AddWorkingHours(t0, min(2, 0.15*total)*r.Float64()))
		if !a.After(t0) {
			a = t0.Add(minutes(r, 1, 20))
		}
		d.add(a, stAssigned)
		lo = a
	}
	resolving := want == classEarly || want == classOnTime || want == classOverdue
	if sp.full && !sp.noExtras && resolving && total >= 16 && r.Float64() < 0.06 {
		rq := trunc(cal.AddWorkingHours(lo, (0.1+0.4*r.Float64())*max(cal.WorkingHoursBetween(lo, cur), 0.5)))
		if !rq.After(lo) {
			rq = lo.Add(time.Minute)
		}
		rv := trunc(cal.AddWorkingHours(rq, 2+38*r.Float64()))
		if !rv.After(rq) {
			rv = rq.Add(time.Hour)
		}
		d.reason = pick(r, suppReasons)
		d.add(rq, stSuppRequested)
		d.add(rv, stSuppReceived)
		d.suppDue = deadline(cal, d.proc, rv)
		cur, lo = d.suppDue, rv
	}
	extend := want == classLater || (sp.full && !sp.noExtras && resolving && r.Float64() < 0.02)
	if extend {
		end := cur
		if !sp.limit.IsZero() && sp.limit.Before(end) {
			end = sp.limit
		}
		span := max(end.Sub(lo), 2*time.Minute)
		at := trunc(lo.Add(time.Duration((0.3 + 0.6*r.Float64()) * float64(span))))
		if !at.After(lo) {
			at = lo.Add(time.Minute)
		}
		from := cur
		if want == classLater {
			from = max64(cur, sp.limit)
		}
		d.extDue = trunc(cal.AddWorkingDays(from, float64(3+r.IntN(12))))
		d.add(at, stDueChanged)
		cur, lo = d.extDue, at
	}

	var end time.Time
	switch want {
	case classEarly:
		hi := dayStart(cur)
		if !sp.limit.IsZero() && sp.limit.Before(hi) {
			hi = sp.limit
		}
		a := lo.Add(time.Minute)
		if !a.Before(hi) {
			return false
		}
		end = between(r, cal, a, hi, r.Float64())
	case classOnTime:
		a := max64(lo.Add(time.Minute), dayStart(cur))
		b := cur.Add(time.Second)
		if !sp.limit.IsZero() && sp.limit.Before(b) {
			b = sp.limit
		}
		if !a.Before(b) {
			return false
		}
		end = between(r, cal, a, b, r.Float64())
	case classOverdue:
		a := max64(lo, cur).Add(time.Second)
		u := r.Float64()
		end = trunc(cal.AddWorkingHours(a, 0.1+d.unit.lateScale*u*u))
		if !sp.limit.IsZero() && !end.Before(sp.limit) {
			if !a.Before(sp.limit) {
				return false
			}
			end = between(r, cal, a, sp.limit, r.Float64())
		}
		if !end.After(cur) {
			end = cur.Add(time.Second)
		}
	case classWithdrawn:
		b := cur
		if !sp.limit.IsZero() && sp.limit.Before(b) {
			b = sp.limit
		}
		a := lo.Add(time.Minute)
		if !a.Before(b) {
			return false
		}
		end = between(r, cal, a, b, r.Float64())
	case classLater:
		start := max64(sp.limit, lo)
		h := cal.WorkingHoursBetween(start, cur)
		end = trunc(cal.AddWorkingHours(start, max(0.5, h*(0.05+0.9*r.Float64()))))
		if !end.After(start) || end.After(cur) {
			end = cur
		}
	}
	if resolving {
		if !end.After(lo) || classify(cur, end) != want || (!sp.limit.IsZero() && !end.Before(sp.limit)) {
			return false
		}
	}

	online := d.channel == "online"
	if !end.IsZero() {
		if want == classWithdrawn {
			d.reason = pick(r, withdrawReasons)
			d.add(end, stWithdrawn)
		} else {
			d.outcome = "approved"
			if r.Float64() < 0.04 {
				d.outcome = "rejected"
			}
			d.eResult = r.Float64() < 0.55 || (online && r.Float64() < 0.7)
			d.add(end, stResolved)
			if sp.full {
				ret := trunc(cal.AddWorkingHours(end, 0.1+8*r.Float64()))
				if !ret.After(end) {
					ret = end.Add(minutes(r, 1, 30))
				}
				switch {
				case d.eResult && online:
					d.retCh = "online"
				case r.Float64() < 0.1:
					d.retCh = "postal"
				default:
					d.retCh = "counter"
				}
				d.add(ret, stReturned)
				if want == classOverdue && r.Float64() < 0.9 {
					ap := trunc(cur.Add(time.Duration((0.1 + 0.8*r.Float64()) * float64(end.Sub(cur)))))
					d.add(max64(ap, cur.Add(time.Second)), stApology)
				}
				if sp.surveyShare > 0 && r.Float64() < sp.surveyShare {
					d.survey = newSurveyData(r, d.unit, d.unit.satisfied)
					d.add(ret.Add(minutes(r, 2, 180)), stSurvey)
				}
			}
		}
	}
	// Syncing, digitizing and paying happen while the dossier is being
	// handled: before its resolution or withdrawal.
	during := func(t time.Time) time.Time {
		if end.IsZero() || t.Before(end) {
			return t
		}
		return trunc(t0.Add(end.Sub(t0) / 2))
	}
	if sp.synced == triYes || (sp.synced == triNatural && r.Float64() < sp.syncShare) {
		d.add(during(t0.Add(minutes(r, 0.1, 10))), stSynced)
	}
	if sp.digitized == triYes || (sp.digitized == triNatural && sp.full && r.Float64() < 0.7) {
		d.comps = 1 + r.IntN(8)
		d.reused = r.IntN(d.comps + 1)
		d.add(during(t0.Add(minutes(r, 5, 240))), stDigitized)
	}
	d.fee, d.payBy = 0, ""
	if sp.full && d.proc.Fee {
		d.fee = pick(r, fees)
		switch {
		case online && r.Float64() < 0.85:
			d.payBy = "online"
		case online:
			d.payBy = "bank_transfer"
		default:
			d.payBy = "counter"
		}
		d.add(during(t0.Add(minutes(r, 1, 30))), stPaid)
	}
	d.sortSteps()
	return true
}

func max64(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// act plays the dossier's next step.
func (d *dossier) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	ev := e.dossierEvent(d, d.steps[d.i])
	d.i++
	if d.i < d.n {
		return ev, true, d.steps[d.i].at, true
	}
	return ev, true, time.Time{}, false
}

func (e *engine) dossierEvent(d *dossier, s step) Event {
	o := e.data()
	typ := ""
	switch s.kind {
	case stReceived:
		typ = typeDossierReceived
		p := d.proc
		o.str("procedure_code", p.Code)
		if p.Name != "" {
			o.str("procedure_name", truncStr(p.Name, 512))
		}
		if p.Field != "" {
			o.str("field", truncStr(p.Field, 128))
		}
		if p.ServiceLevel != "" {
			o.str("service_level", p.ServiceLevel)
		}
		o.str("channel", d.channel)
		o.str("unit", d.unit.Code)
		o.time("due_at", d.due)
		a := o.sub("applicant")
		a.str("kind", d.applKind)
		a.str("id", d.applID)
		a.str("name", d.applName)
		o.endSub(a)
		if p.Fee {
			// Paid online at submission; a bank transfer is not (its
			// paid event says which).
			o.bool("fee_paid_online", d.payBy == "online")
		}
	case stAssigned:
		typ = typeDossierAssigned
		o.str("unit", d.unit.Code)
		o.str("officer", d.officer)
		o.str("step", "Thẩm định hồ sơ")
	case stSuppRequested:
		typ = typeDossierSuppRequested
		o.str("reason", d.reason)
	case stSuppReceived:
		typ = typeDossierSuppReceived
		o.time("due_at", d.suppDue)
	case stDueChanged:
		typ = typeDossierDueChanged
		o.time("due_at", d.extDue)
		o.str("reason", extReasons[int(d.extDue.Unix())%len(extReasons)])
	case stResolved:
		typ = typeDossierResolved
		o.str("outcome", d.outcome)
		o.str("officer", d.officer)
		o.bool("e_result", d.eResult)
	case stReturned:
		typ = typeDossierReturned
		o.str("channel", d.retCh)
	case stWithdrawn:
		typ = typeDossierWithdrawn
		o.str("reason", d.reason)
	case stApology:
		typ = typeDossierApology
	case stSynced:
		typ = typeDossierSynced
		o.str("portal", "national")
	case stDigitized:
		typ = typeDossierDigitized
		o.int("components", int64(d.comps))
		o.int("reused", int64(d.reused))
	case stPaid:
		typ = typeDossierPaid
		o.int("amount", d.fee)
		o.str("method", d.payBy)
	case stSurvey:
		sv := d.survey
		sv.unit, sv.officer, sv.dossier = d.unit.Code, d.officer, d.code
		return e.surveyEvent(sv, s.at)
	}
	return e.event(e.src.dossier, typ, d.code, s.at, e.done(o))
}

// dossierCode is "<unit>-<yymmdd>-<run tag>-<n>".
func (e *engine) dossierCode(u *unit, t time.Time, n uint64) string {
	b := make([]byte, 0, 40)
	b = append(b, u.Code...)
	b = append(b, '-')
	b = t.In(ict).AppendFormat(b, "060102")
	b = append(b, '-')
	b = append(b, e.tag...)
	b = append(b, '-')
	b = strconv.AppendUint(b, n, 10)
	return string(b)
}

func truncStr(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
