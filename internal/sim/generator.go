package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/worktime"
)

// Config sets up a Generator. The zero value is a valid configuration: each
// field documents its default.
type Config struct {
	// Seed of the random source (PCG). The same seed and configuration give
	// the same event stream, byte for byte. Default 0 (itself a seed).
	Seed uint64
	// Start is the simulated time of the first event. Default: now, to the
	// second — which makes the stream depend on the wall clock; set it for
	// reproducible runs.
	Start time.Time
	// SourcePrefix of the CloudEvents sources: <prefix>/one-stop, /1022,
	// /cameras, /surveys, /reports. Default "hcmc".
	SourcePrefix string
	// DossiersPerDay is the mean number of new dossiers per day, city-wide,
	// over a week (more on working days, few at night). Default 5,000.
	DossiersPerDay float64
	// FeedbackPerDay is the mean number of new feedback tickets per day.
	// Default 3,000.
	FeedbackPerDay float64
	// Cameras is the number of cameras simulated, taken from the reference
	// data in id order. Default 0: all of them (721 for HCMC); -1: none.
	Cameras int
	// CamerasFrom is the simulated time the cameras start at, when later
	// than Start: a replay of weeks of dossiers and tickets then carries
	// only the last minutes of the cameras' far denser stream. Default:
	// Start.
	CamerasFrom time.Time
	// DetectionEvery is the mean interval between two detections of one
	// camera. Default 5s.
	DetectionEvery time.Duration
	// HeartbeatEvery is the interval between two status heartbeats of one
	// camera. Default 1 minute.
	HeartbeatEvery time.Duration
	// SurveyShare is the share of resolved dossiers that get a satisfaction
	// survey. Default 0.30; negative: none.
	SurveyShare float64
	// SyncShare is the share of dossiers synced to the national portal.
	// Default 0.18; negative: none.
	SyncShare float64
	// NoIndicators turns off the monthly, quarterly and yearly indicator
	// reports. Default false (reports on).
	NoIndicators bool
	// InvalidShare is the share of extra events that are broken on purpose
	// (to exercise intake's rejections); they are marked in Event.Flaw.
	// Default 0: none.
	InvalidShare float64
	// DuplicateShare is the share of events sent a second time, unchanged
	// (same source and id), a little later. Default 0: none.
	DuplicateShare float64
	// MaxPending bounds the dossiers and tickets in progress held in the
	// queue of future events. When it is reached, new arrivals are dropped
	// (counted by Dropped) rather than let memory grow. Default 1,000,000
	// (the default city holds about 120,000).
	MaxPending int
}

func (c *Config) setDefaults() {
	if c.Start.IsZero() {
		c.Start = time.Now().Truncate(time.Second)
	}
	if c.SourcePrefix == "" {
		c.SourcePrefix = "hcmc"
	}
	if c.DossiersPerDay == 0 {
		c.DossiersPerDay = 5000
	}
	if c.FeedbackPerDay == 0 {
		c.FeedbackPerDay = 3000
	}
	if c.DetectionEvery == 0 {
		c.DetectionEvery = 5 * time.Second
	}
	if c.HeartbeatEvery == 0 {
		c.HeartbeatEvery = time.Minute
	}
	if c.SurveyShare == 0 {
		c.SurveyShare = 0.30
	}
	if c.SyncShare == 0 {
		c.SyncShare = 0.18
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1_000_000
	}
}

// Validate names the first field that is wrong. It accepts the zero value.
func (c Config) Validate() error {
	switch {
	case strings.ContainsAny(c.SourcePrefix, " \t\r\n\x00"):
		return fmt.Errorf("SourcePrefix %q: must not contain spaces or control characters", c.SourcePrefix)
	case len(c.SourcePrefix) > 200:
		return errors.New("SourcePrefix: must be at most 200 bytes")
	case c.DossiersPerDay < 0 || math.IsNaN(c.DossiersPerDay) || c.DossiersPerDay > 1e8:
		return fmt.Errorf("DossiersPerDay %v: must be between 0 and 1e8", c.DossiersPerDay)
	case c.FeedbackPerDay < 0 || math.IsNaN(c.FeedbackPerDay) || c.FeedbackPerDay > 1e8:
		return fmt.Errorf("FeedbackPerDay %v: must be between 0 and 1e8", c.FeedbackPerDay)
	case c.Cameras < -1:
		return fmt.Errorf("Cameras %d: must be ≥ -1 (-1: none, 0: all)", c.Cameras)
	case c.DetectionEvery < 0 || (c.DetectionEvery > 0 && c.DetectionEvery < time.Second):
		return fmt.Errorf("DetectionEvery %v: must be at least 1s", c.DetectionEvery)
	case c.HeartbeatEvery < 0 || (c.HeartbeatEvery > 0 && c.HeartbeatEvery < time.Second):
		return fmt.Errorf("HeartbeatEvery %v: must be at least 1s", c.HeartbeatEvery)
	case c.SurveyShare > 1 || math.IsNaN(c.SurveyShare):
		return fmt.Errorf("SurveyShare %v: must be at most 1", c.SurveyShare)
	case c.SyncShare > 1 || math.IsNaN(c.SyncShare):
		return fmt.Errorf("SyncShare %v: must be at most 1", c.SyncShare)
	case c.InvalidShare < 0 || c.InvalidShare > 0.5 || math.IsNaN(c.InvalidShare):
		return fmt.Errorf("InvalidShare %v: must be between 0 and 0.5", c.InvalidShare)
	case c.DuplicateShare < 0 || c.DuplicateShare > 0.5 || math.IsNaN(c.DuplicateShare):
		return fmt.Errorf("DuplicateShare %v: must be between 0 and 0.5", c.DuplicateShare)
	case c.MaxPending < 0:
		return fmt.Errorf("MaxPending %d: must not be negative", c.MaxPending)
	case !c.Start.IsZero() && c.Start.Year() < 2000:
		return fmt.Errorf("Start %v: must be in year 2000 or later", c.Start)
	}
	return nil
}

// Generator simulates the city live: dossiers, feedback tickets, cameras,
// surveys and indicator reports, as one stream of CloudEvents in simulated
// time order. It is not safe for concurrent use.
type Generator struct {
	engine
	cfg     Config
	extras  []Event // duplicates and broken events waiting to go out
	dropped uint64
	last    time.Time
}

var _ Source = (*Generator)(nil)

// NewGenerator builds a generator over the city's reference data and
// business calendar.
func NewGenerator(cfg Config, set *refdata.Set, cal *worktime.Calendar) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cal == nil {
		return nil, errors.New("nil calendar")
	}
	c, err := newCity(set, cfg.Seed)
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg}
	g.engine = engine{
		tag:  runTag(cfg.Seed, uint64(cfg.Start.Unix())),
		src:  newSources(cfg.SourcePrefix),
		city: c,
		cal:  cal,
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed_c17e)),
	}
	start := cfg.Start.In(ict)
	r := g.rng
	if cfg.Cameras >= 0 {
		camStart := start
		if cfg.CamerasFrom.After(start) {
			camStart = cfg.CamerasFrom.In(ict).Truncate(time.Second)
		}
		n := len(c.cameras)
		if cfg.Cameras > 0 {
			n = min(n, cfg.Cameras)
		}
		for i := range n {
			s := newCamState(r, &c.cameras[i])
			phase := time.Duration(r.Int64N(int64(cfg.HeartbeatEvery))).Truncate(time.Second)
			g.schedule(camStart.Add(phase), &camHeartbeat{s, cfg.HeartbeatEvery}, false)
			phase = time.Duration(r.Int64N(int64(cfg.DetectionEvery))).Truncate(time.Second)
			g.schedule(camStart.Add(phase), &camDetector{s, cfg.DetectionEvery}, false)
		}
	}
	if cfg.DossiersPerDay > 0 && len(c.current) > 0 {
		a := &arrivals{rate: cfg.DossiersPerDay, weight: dossierWeight, dossier: true, g: g}
		a.init()
		g.schedule(a.nextAfter(r, start), a, false)
	}
	if cfg.FeedbackPerDay > 0 {
		a := &arrivals{rate: cfg.FeedbackPerDay, weight: feedbackWeight, g: g}
		a.init()
		g.schedule(a.nextAfter(r, start), a, false)
	}
	if !cfg.NoIndicators {
		// The reports of the month before the start, at the start (as
		// published on its month's 1st), then each month's on the 1st.
		ir := &indicatorReports{}
		if last := lastReport(start); start.After(last) {
			ir.as = last
			g.schedule(start, ir, false)
		} else {
			g.schedule(last, ir, false) // the 1st, before 08:00
		}
	}
	return g, nil
}

// Config returns the effective configuration (defaults filled in).
func (g *Generator) Config() Config { return g.cfg }

// Dropped is the number of arrivals dropped because MaxPending was reached.
func (g *Generator) Dropped() uint64 { return g.dropped }

// Next returns the next event. The stream is endless: Next always reports
// true. Events come in nondecreasing Time, except duplicates, which repeat
// an earlier event unchanged.
func (g *Generator) Next() (Event, bool) {
	if len(g.extras) > 0 {
		ev := g.extras[0]
		g.extras = g.extras[1:]
		return ev, true
	}
	ev, ok := g.next()
	if !ok {
		return Event{}, false
	}
	g.last = ev.Time
	if g.cfg.InvalidShare > 0 && g.rng.Float64() < g.cfg.InvalidShare {
		g.extras = append(g.extras, g.broken(ev))
	}
	if g.cfg.DuplicateShare > 0 && g.rng.Float64() < g.cfg.DuplicateShare {
		d := ev
		d.Flaw = "duplicate"
		g.extras = append(g.extras, d)
	}
	return ev, true
}

// Batch returns the next n events, encoded.
func (g *Generator) Batch(n int) []json.RawMessage {
	out := make([]json.RawMessage, 0, n)
	for range n {
		ev, ok := g.Next()
		if !ok {
			break
		}
		out = append(out, ev.AppendJSON(nil))
	}
	return out
}

// broken derives an event that intake must reject, with its own id.
func (g *Generator) broken(ev Event) Event {
	g.seq++
	b := ev
	b.ID = g.tag + "-" + fmt.Sprint(g.seq)
	o := beginObj(nil)
	switch g.rng.IntN(5) {
	case 0:
		b.Flaw = "invalid: unknown type"
		b.Type = strings.TrimSuffix(ev.Type, ev.Type[strings.LastIndexByte(ev.Type, '.'):]) + ".teleported"
		return b
	case 1:
		b.Flaw = "invalid: time without offset"
		o.str("specversion", "1.0")
		o.str("id", b.ID)
		o.str("source", b.Source)
		o.str("type", b.Type)
		o.str("subject", b.Subject)
		o.str("time", ev.Time.In(ict).Format("2006-01-02T15:04:05"))
		o.raw("data", ev.Data)
	case 2:
		b.Flaw = "invalid: missing subject"
		o.str("specversion", "1.0")
		o.str("id", b.ID)
		o.str("source", b.Source)
		o.str("type", b.Type)
		o.time("time", ev.Time)
		o.raw("data", ev.Data)
	case 3:
		b.Flaw = "invalid: specversion 0.3"
		o.str("specversion", "0.3")
		o.str("id", b.ID)
		o.str("source", b.Source)
		o.str("type", b.Type)
		o.str("subject", b.Subject)
		o.time("time", ev.Time)
		o.raw("data", ev.Data)
	default:
		b.Flaw = "invalid: data is not an object"
		o.str("specversion", "1.0")
		o.str("id", b.ID)
		o.str("source", b.Source)
		o.str("type", b.Type)
		o.str("subject", b.Subject)
		o.time("time", ev.Time)
		o.raw("data", []byte(`["not","an","object"]`))
	}
	b.raw = o.end()
	return b
}

// dossierWeight is the relative arrival rate of dossiers at local time t:
// the counters' opening hours on working days, online filings round the
// clock. online reports that only online filing is possible then.
func dossierWeight(t time.Time, workday bool) (w float64, online bool) {
	m := t.Hour()*60 + t.Minute()
	switch {
	case workday && ((m >= 450 && m < 690) || (m >= 780 && m < 1020)):
		return 1, false
	case m >= 360 && m < 1320:
		if workday {
			return 0.2, true
		}
		return 0.1, true
	}
	return 0.02, true
}

// feedbackWeight is the relative arrival rate of feedback tickets.
func feedbackWeight(t time.Time, workday bool) (float64, bool) {
	h := t.Hour()
	f := 0.08
	switch {
	case (h >= 8 && h < 11) || (h >= 14 && h < 17):
		f = 1
	case h >= 6 && h < 22:
		f = 0.7
	}
	if !workday {
		f *= 0.8
	}
	return f, false
}

// arrivals is a non-homogeneous Poisson process of new dossiers or
// tickets, drawn by thinning: candidates at the peak rate, each kept with
// the probability weight(t) / peak weight (1).
type arrivals struct {
	rate    float64 // mean per day
	peak    float64 // per second, at weight 1
	weight  func(time.Time, bool) (float64, bool)
	dossier bool
	g       *Generator
	// at is the exact time of the latest candidate drawn. Events carry
	// whole seconds, but the draws go on from the exact time: restarting
	// from the truncated one would lose up to a second per arrival, and
	// at a peak of more than one arrival per second never leave that
	// second.
	at time.Time
}

func (a *arrivals) init() {
	// Mean weight over a plain week (five working days), by the minute.
	var sum float64
	d0 := time.Date(2024, 6, 3, 0, 0, 0, 0, ict) // a Monday
	for m := 0; m < 7*24*60; m++ {
		w, _ := a.weight(d0.Add(time.Duration(m)*time.Minute), m < 5*24*60)
		sum += w
	}
	mean := sum / (7 * 24 * 60)
	a.peak = a.rate / 86400 / mean
}

// nextAfter draws the next arrival after t, to the second.
func (a *arrivals) nextAfter(r *rand.Rand, t time.Time) time.Time {
	for {
		t = t.Add(time.Duration(r.ExpFloat64() / a.peak * float64(time.Second)))
		w, _ := a.weight(t.In(ict), a.g.cal.IsWorkingDay(t))
		if r.Float64() < w {
			a.at = t
			return trunc(t)
		}
	}
}

func (a *arrivals) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	g, r := a.g, e.rng
	next := a.nextAfter(r, a.at)
	if e.pending >= g.cfg.MaxPending {
		g.dropped++
		return Event{}, false, next, true
	}
	var ev Event
	if a.dossier {
		d := g.newDossier(r, now)
		ev, _, _, _ = d.act(e, now)
		if d.i < d.n {
			e.schedule(d.steps[d.i].at, d, true)
		}
	} else {
		tk := e.newTicket(r, e.city.wards[pickCum(r, e.city.wardCum)], now)
		e.planTicket(r, tk, classNatural, time.Time{})
		ev, _, _, _ = tk.act(e, now)
		if tk.i < tk.n {
			e.schedule(tk.steps[tk.i].at, tk, true)
		}
	}
	return ev, true, next, true
}

// newDossier draws and plans a dossier received now.
func (g *Generator) newDossier(r *rand.Rand, now time.Time) *dossier {
	c := g.city
	u := c.current[pickCum(r, c.curCum)]
	_, onlineOnly := dossierWeight(now, g.cal.IsWorkingDay(now))
	ch := "online"
	if !onlineOnly && r.Float64() >= u.onlineShare {
		ch = pick(r, []string{"counter", "counter", "counter", "counter", "counter", "counter", "kiosk", "kiosk", "postal"})
	}
	g.dossiers++
	d := &dossier{unit: u, channel: ch, received: now, code: g.dossierCode(u, now, g.dossiers)}
	d.proc = u.procs.pick(r, ch == "online")
	sp := planSpec{full: true, syncShare: max(g.cfg.SyncShare, 0), surveyShare: max(g.cfg.SurveyShare, 0)}
	for _, cl := range []class{naturalClass(r, u), classOnTime, classOverdue} {
		sp.class = cl
		if g.plan(r, d, sp) {
			break
		}
	}
	return d
}
