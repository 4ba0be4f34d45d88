package sim

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/worktime"
)

//go:embed scenarios/*.json
var scenarioFS embed.FS

// Scenario reproduces published figures exactly: each cohort is a number
// of dossiers, tickets or surveys over a period, with exact counts for the
// attributes the figures are about (splits). Counts are allocated by a
// deterministic shuffle, never drawn by chance, so the events recount to
// the figures; everything else (times, units, procedures, people) is drawn
// from the seed.
type Scenario struct {
	Name        string   `json:"name"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	References  []string `json:"references,omitempty"` // where the figures come from
	// SourcePrefix of the events' sources. Default "hcmc".
	SourcePrefix string   `json:"source_prefix,omitempty"`
	Cohorts      []Cohort `json:"cohorts"`
}

// Cohort is a homogeneous group of entities of one family over a period.
// Attributes that must be correlated (e.g. "all QR surveys satisfied") are
// expressed by separate cohorts.
type Cohort struct {
	Name   string `json:"name,omitempty"`
	Family string `json:"family"` // dossier | feedback | survey
	// Unit or Units select the units that receive the cohort, weighted by
	// population: a unit code, "<code>/*" (the unit and its subtree) or
	// "kind:<kind>" (every unit of that kind).
	Unit  string    `json:"unit,omitempty"`
	Units []string  `json:"units,omitempty"`
	From  time.Time `json:"from"`  // first instant of the period
	To    time.Time `json:"to"`    // end of the period (exclusive)
	Count int       `json:"count"` // entities received in the period
	// Splits are exact counts of entities with an attribute; see
	// SplitKeys for the keys of each family.
	Splits map[string]int `json:"splits,omitempty"`
	// Rest says how dossiers and tickets outside the resolution splits end:
	// "natural" (default: as in the live city, possibly after To), "open"
	// (never resolved) or, for dossiers, "resolved_later" (their deadline is
	// extended past To and they are resolved after To, on time).
	Rest string `json:"rest,omitempty"`
	// Lifecycle of dossiers: "full" (default: assigned, supplements,
	// extensions, returned, apology, paid, digitized…) or "minimal"
	// (received, resolved or withdrawn, and the split events only).
	Lifecycle string `json:"lifecycle,omitempty"`
}

// SplitKeys are the split keys of each family. Keys of one line form one
// dimension: their sum is at most Count, and the remaining entities take
// none of the line's values.
//
//	dossier:  early, on_time, overdue, withdrawn (resolved or withdrawn in the period; the rest follow Rest)
//	          online (channel online; the rest counter, kiosk or postal)
//	          synced (a synced event to the national portal; the rest none)
//	          digitized (a digitized event; the rest none)
//	feedback: on_time, overdue (resolved in the period at or before / after due_at; the rest follow Rest)
//	survey:   satisfied, neutral (rating classes of KPIS.md; the rest unsatisfied)
//	          channel_qr, channel_kiosk, channel_counter_device, channel_tablet, channel_online, channel_ai_camera
//	          (the rest use the channels not named)
var SplitKeys = map[string][][]string{
	"dossier":  {{"early", "on_time", "overdue", "withdrawn"}, {"online"}, {"synced"}, {"digitized"}},
	"feedback": {{"on_time", "overdue"}},
	"survey":   {{"satisfied", "neutral"}, {"channel_qr", "channel_kiosk", "channel_counter_device", "channel_tablet", "channel_online", "channel_ai_camera"}},
}

// Bounds of a cohort.
const (
	maxCohortCount  = 1<<24 - 1 // entity index in the low 24 bits of a sort key
	maxCohortPeriod = 5 * 366 * 24 * time.Hour
)

// Scenarios lists the names of the embedded scenarios.
func Scenarios() []string {
	entries, _ := scenarioFS.ReadDir("scenarios")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	return out
}

// LoadScenario loads an embedded scenario by name (e.g. "d1-2023") or a
// scenario file by path, and validates it.
func LoadScenario(nameOrPath string) (*Scenario, error) {
	var b []byte
	var err error
	if !strings.ContainsAny(nameOrPath, `/\`) && !strings.HasSuffix(nameOrPath, ".json") {
		b, err = scenarioFS.ReadFile("scenarios/" + nameOrPath + ".json")
		if err != nil {
			return nil, fmt.Errorf("scenario %q: not embedded (have %s)", nameOrPath, strings.Join(Scenarios(), ", "))
		}
	} else if b, err = os.ReadFile(nameOrPath); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", nameOrPath, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(path.Base(strings.ReplaceAll(nameOrPath, `\`, "/")), ".json")
	}
	return s, nil
}

// ParseScenario decodes and validates a scenario document; unknown fields
// are errors.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate names the first field that is wrong.
func (s *Scenario) Validate() error {
	if strings.ContainsAny(s.SourcePrefix, " \t\r\n\x00") {
		return fmt.Errorf("source_prefix %q: must not contain spaces or control characters", s.SourcePrefix)
	}
	if len(s.Cohorts) == 0 {
		return errors.New("cohorts: at least one cohort is required")
	}
	for i := range s.Cohorts {
		if err := s.Cohorts[i].validate(); err != nil {
			return fmt.Errorf("cohorts[%d].%w", i, err)
		}
	}
	return nil
}

func (c *Cohort) validate() error {
	dims, ok := SplitKeys[c.Family]
	if !ok {
		return fmt.Errorf("family %q: must be dossier, feedback or survey", c.Family)
	}
	switch {
	case c.Unit == "" && len(c.Units) == 0:
		return errors.New("unit: unit or units is required")
	case c.Unit != "" && len(c.Units) > 0:
		return errors.New("units: give unit or units, not both")
	case c.From.IsZero():
		return errors.New("from: is required (RFC 3339)")
	case c.To.IsZero():
		return errors.New("to: is required (RFC 3339)")
	case c.From.Year() < 2000:
		return fmt.Errorf("from %s: must be in 2000 or later", c.From.Format(time.RFC3339))
	case !c.To.After(c.From):
		return fmt.Errorf("to %s: must be after from", c.To.Format(time.RFC3339))
	case c.To.Sub(c.From) < 24*time.Hour:
		return errors.New("to: the period must last at least one day")
	case c.To.Sub(c.From) > maxCohortPeriod:
		return errors.New("to: the period must not last more than five years")
	case c.Count <= 0 || c.Count > maxCohortCount:
		return fmt.Errorf("count %d: must be between 1 and %d", c.Count, maxCohortCount)
	}
	for i, u := range c.Units {
		if u == "" {
			return fmt.Errorf("units[%d]: must not be empty", i)
		}
	}
	switch c.Rest {
	case "", "natural", "open":
	case "resolved_later":
		if c.Family != "dossier" {
			return fmt.Errorf("rest %q: only dossiers can be resolved later", c.Rest)
		}
	default:
		return fmt.Errorf("rest %q: must be natural, open or resolved_later", c.Rest)
	}
	if c.Rest != "" && c.Family == "survey" {
		return errors.New("rest: surveys have no resolution")
	}
	switch c.Lifecycle {
	case "", "full", "minimal":
		if c.Lifecycle != "" && c.Family != "dossier" {
			return errors.New("lifecycle: only dossiers have a lifecycle setting")
		}
	default:
		return fmt.Errorf("lifecycle %q: must be full or minimal", c.Lifecycle)
	}
	keys := make([]string, 0, len(c.Splits))
	for k := range c.Splits {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if c.Splits[k] < 0 {
			return fmt.Errorf("splits.%s: %d must not be negative", k, c.Splits[k])
		}
		known := false
		for _, d := range dims {
			known = known || slices.Contains(d, k)
		}
		if !known {
			var all []string
			for _, d := range dims {
				all = append(all, d...)
			}
			return fmt.Errorf("splits.%s: unknown for %s (one of %s)", k, c.Family, strings.Join(all, ", "))
		}
	}
	for _, d := range dims {
		sum := 0
		for _, k := range d {
			sum += c.Splits[k]
		}
		if sum > c.Count {
			return fmt.Errorf("splits.%s: %s add up to %d, more than count %d", d[0], strings.Join(d, " + "), sum, c.Count)
		}
	}
	if c.Family == "survey" {
		n := 0
		for _, k := range SplitKeys["survey"][1] {
			if _, ok := c.Splits[k]; ok {
				n++
			}
		}
		sum := 0
		for _, k := range SplitKeys["survey"][1] {
			sum += c.Splits[k]
		}
		if n == len(surveyChannels) && sum != c.Count {
			return fmt.Errorf("splits.channel_qr: every channel is named but they add up to %d, not count %d", sum, c.Count)
		}
	}
	return nil
}

// Scale returns a copy with every count multiplied by f (rounded; at least
// 1 entity per cohort), for quick runs of a large scenario.
func (s *Scenario) Scale(f float64) *Scenario {
	out := *s
	out.Cohorts = make([]Cohort, len(s.Cohorts))
	for i, c := range s.Cohorts {
		c.Count = max(1, int(math.Round(float64(c.Count)*f)))
		sp := make(map[string]int, len(c.Splits))
		for k, v := range c.Splits {
			sp[k] = int(math.Round(float64(v) * f))
		}
		// Rounding may push a dimension over the count: trim its largest key.
		for _, d := range SplitKeys[c.Family] {
			for {
				sum, big := 0, ""
				for _, k := range d {
					sum += sp[k]
					if big == "" || sp[k] > sp[big] {
						big = k
					}
				}
				if sum <= c.Count {
					break
				}
				sp[big] -= sum - c.Count
			}
		}
		if c.Splits == nil {
			sp = nil
		}
		c.Splits = sp
		out.Cohorts[i] = c
	}
	return &out
}

// Player plays a scenario's events in time order. It implements Source.
type Player struct {
	engine
	sc   *Scenario
	seed uint64
	bind []*boundCohort
	err  error
}

var _ Source = (*Player)(nil)

// boundCohort is a cohort with its units resolved and its entities
// allocated.
type boundCohort struct {
	Cohort
	idx    int
	units  []*unit
	cum    []float64
	attrs  []uint16 // exact split values per entity
	keys   []uint64 // (seconds from From) << 24 | entity index, sorted
	full   bool
	others []string // survey channels not named in the splits
}

// Attribute bits of an entity (see allocate).
const (
	attrResShift  = 0 // dossier/feedback: 0 rest, 1 early or on_time…
	attrOnlShift  = 3 // 0 natural, 1 online, 2 not online
	attrSyncShift = 5 // 0 natural, 1 yes, 2 no
	attrDigShift  = 7
	attrSatShift  = 0 // survey: 0 natural, 1 satisfied, 2 neutral, 3 unsatisfied
	attrChanShift = 2 // survey: 0 natural (a channel not named), 1+i surveyChannels[i]
)

// Player prepares the scenario for a seed: it resolves the units, allocates
// the exact splits and orders every entity's reception time. Memory is
// about 10 bytes per entity, plus the entities in progress.
func (s *Scenario) Player(seed uint64, set *refdata.Set, cal *worktime.Calendar) (*Player, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if cal == nil {
		return nil, errors.New("nil calendar")
	}
	c, err := newCity(set, seed)
	if err != nil {
		return nil, err
	}
	prefix := s.SourcePrefix
	if prefix == "" {
		prefix = "hcmc"
	}
	p := &Player{sc: s, seed: seed}
	p.engine = engine{
		tag:  runTag(hashString(s.Name), seed),
		src:  newSources(prefix),
		city: c,
		cal:  cal,
		rng:  rand.New(rand.NewPCG(seed, hashString(s.Name))),
	}
	for i := range s.Cohorts {
		bc, err := p.bindCohort(i)
		if err != nil {
			return nil, fmt.Errorf("cohorts[%d].%w", i, err)
		}
		p.bind = append(p.bind, bc)
		if len(bc.keys) > 0 {
			p.schedule(bc.timeOf(bc.keys[0]), &cohortArrivals{p: p, c: bc}, false)
		}
	}
	return p, nil
}

// Events plays the scenario for a seed. A failure (bad units, a split that
// cannot be met in the period) is yielded as an error, after which the
// sequence stops.
func (s *Scenario) Events(seed uint64, set *refdata.Set, cal *worktime.Calendar) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		p, err := s.Player(seed, set, cal)
		if err != nil {
			yield(Event{}, err)
			return
		}
		for {
			ev, ok := p.Next()
			if !ok {
				if p.err != nil {
					yield(Event{}, p.err)
				}
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Next returns the next event; false at the end (see Err).
func (p *Player) Next() (Event, bool) {
	if p.err != nil {
		return Event{}, false
	}
	ev, ok := p.next()
	if p.err != nil {
		return Event{}, false
	}
	return ev, ok
}

// Err is the error that ended the play early, if any.
func (p *Player) Err() error { return p.err }

func (p *Player) bindCohort(i int) (*boundCohort, error) {
	c := p.sc.Cohorts[i]
	sel := c.Units
	if c.Unit != "" {
		sel = []string{c.Unit}
	}
	units, err := p.city.selectUnits(sel)
	if err != nil {
		return nil, fmt.Errorf("units: %w", err)
	}
	bc := &boundCohort{Cohort: c, idx: i, full: c.Lifecycle != "minimal"}
	for _, u := range units {
		if !u.ValidTo.IsZero() && !c.From.Before(u.ValidTo) {
			return nil, fmt.Errorf("units: %s (%s) ceased on %s, before the period", u.Code, u.Name, u.ValidTo.Format("2006-01-02"))
		}
		if !u.ValidFrom.IsZero() && !c.To.After(u.ValidFrom) {
			return nil, fmt.Errorf("units: %s (%s) began on %s, after the period", u.Code, u.Name, u.ValidFrom.Format("2006-01-02"))
		}
		if c.Family == "dossier" && u.Kind == refdata.KindCity {
			continue // the city itself has no counter; its subtree does
		}
		bc.units = append(bc.units, u)
	}
	if len(bc.units) == 0 {
		return nil, errors.New("units: no unit can receive this family")
	}
	var sum float64
	for _, u := range bc.units {
		sum += u.weight
		bc.cum = append(bc.cum, sum)
	}
	if c.Family == "survey" {
		for _, ch := range surveyChannels {
			if _, ok := c.Splits["channel_"+ch]; !ok {
				bc.others = append(bc.others, ch)
			}
		}
	}
	p.allocate(bc)
	// Reception times, in order: plan every entity once to find the
	// reception time its split allows (e.g. an on-time resolution inside
	// the period needs its due day inside the period), then sort.
	bc.keys = make([]uint64, c.Count)
	var d dossier
	var tk ticket
	for j := range c.Count {
		t0, err := p.planEntity(bc, j, &d, &tk)
		if err != nil {
			return nil, err
		}
		off := uint64(t0.Sub(c.From) / time.Second)
		bc.keys[j] = off<<24 | uint64(j)
	}
	slices.Sort(bc.keys)
	return bc, nil
}

func (bc *boundCohort) timeOf(key uint64) time.Time {
	return bc.From.Add(time.Duration(key>>24) * time.Second).In(ict)
}

// allocate gives each entity its exact split values: per dimension, a list
// with the exact number of each value, shuffled.
func (p *Player) allocate(bc *boundCohort) {
	n := bc.Count
	bc.attrs = make([]uint16, n)
	r := rand.New(rand.NewPCG(p.seed, mix64(hashString(p.sc.Name)^uint64(bc.idx)<<32)))
	labels := make([]uint8, n)
	dim := func(keys []string, shift uint, restLabel uint8) {
		given := false
		for _, k := range keys {
			_, ok := bc.Splits[k]
			given = given || ok
		}
		if !given {
			return
		}
		at := 0
		for li, k := range keys {
			for range bc.Splits[k] {
				labels[at] = uint8(li + 1)
				at++
			}
		}
		for ; at < n; at++ {
			labels[at] = restLabel
		}
		r.Shuffle(n, func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
		for i, l := range labels {
			bc.attrs[i] |= uint16(l) << shift
		}
	}
	switch bc.Family {
	case "dossier":
		dim(SplitKeys["dossier"][0], attrResShift, 0)
		dim([]string{"online"}, attrOnlShift, 2)
		dim([]string{"synced"}, attrSyncShift, 2)
		dim([]string{"digitized"}, attrDigShift, 2)
	case "feedback":
		dim(SplitKeys["feedback"][0], attrResShift, 0)
	case "survey":
		dim(SplitKeys["survey"][0], attrSatShift, 3)
		dim(SplitKeys["survey"][1], attrChanShift, 0)
	}
}

// entityRand is the random source of one entity: planning it twice (to
// order the receptions, then to play it) gives the same plan.
func (p *Player) entityRand(bc *boundCohort, j int, r *rand.Rand) *rand.Rand {
	src := rand.NewPCG(p.seed, mix64(uint64(bc.idx)<<40|uint64(j)))
	if r == nil {
		return rand.New(src)
	}
	*r = *rand.New(src)
	return r
}

// receptionTime draws a time in [from, to) that follows the daily profile:
// counter dossiers in opening hours, online ones round the clock.
func (p *Player) receptionTime(r *rand.Rand, from, to time.Time, family string, counter bool) time.Time {
	span := float64(to.Sub(from))
	for range 10_000 {
		t := trunc(from.Add(time.Duration(r.Float64() * span)))
		if t.Before(from) {
			continue
		}
		var w float64
		var onlineOnly bool
		switch family {
		case "feedback":
			w, _ = feedbackWeight(t, p.cal.IsWorkingDay(t))
		default:
			w, onlineOnly = dossierWeight(t, p.cal.IsWorkingDay(t))
		}
		if counter && onlineOnly {
			continue
		}
		if r.Float64() < w {
			return t
		}
	}
	return trunc(from)
}

// planEntity plans entity j of the cohort into d or tk (or a survey) and
// returns its reception time. Each attempt draws the unit, the reception
// time and the procedure again; later attempts shrink the window towards
// the period's start and drop supplements and extensions, so a split that
// needs time after the reception (an overdue resolution inside the period)
// is always met.
func (p *Player) planEntity(bc *boundCohort, j int, d *dossier, tk *ticket) (time.Time, error) {
	var rr rand.Rand
	r := p.entityRand(bc, j, &rr)
	a := bc.attrs[j]
	u := bc.units[pickCum(r, bc.cum)]
	switch bc.Family {
	case "survey":
		return p.receptionTime(r, bc.From, bc.To, "survey", false), nil
	case "feedback":
		cl, limit := classNatural, time.Time{}
		switch a >> attrResShift & 7 {
		case 1:
			cl, limit = classOnTime, bc.To
		case 2:
			cl, limit = classOverdue, bc.To
		default:
			if bc.Rest == "open" {
				cl = classOpen
			}
		}
		for attempt := range 64 {
			end := bc.To
			if attempt >= 8 {
				end = bc.From.Add(time.Duration(float64(bc.To.Sub(bc.From)) * max(0.02, 1-float64(attempt)/48)))
			}
			t0 := p.receptionTime(r, bc.From, end, "feedback", false)
			p.fillTicket(r, tk, u, t0)
			if p.planTicket(r, tk, cl, limit) {
				return t0, nil
			}
		}
		return time.Time{}, fmt.Errorf("splits: cannot place ticket %d of %s in the period", j, bc.Family)
	}
	// Dossiers.
	sp := planSpec{full: bc.full, syncShare: 0.18}
	switch a >> attrResShift & 7 {
	case 1:
		sp.class = classEarly
	case 2:
		sp.class = classOnTime
	case 3:
		sp.class = classOverdue
	case 4:
		sp.class = classWithdrawn
	default:
		switch bc.Rest {
		case "open":
			sp.class = classOpen
		case "resolved_later":
			sp.class = classLater
		}
	}
	if sp.class != classNatural && sp.class != classOpen {
		sp.limit = bc.To
	}
	sp.synced = tri(a >> attrSyncShift & 3)
	sp.digitized = tri(a >> attrDigShift & 3)
	online := false
	switch a >> attrOnlShift & 3 {
	case 1:
		online = true
	case 2:
	default:
		online = r.Float64() < u.onlineShare
	}
	for attempt := range 64 {
		end := bc.To
		if attempt >= 8 {
			end = bc.From.Add(time.Duration(float64(bc.To.Sub(bc.From)) * max(0.02, 1-float64(attempt)/48)))
			sp.noExtras = true
		}
		t0 := p.receptionTime(r, bc.From, end, "dossier", !online)
		*d = dossier{unit: u, received: t0, channel: "online"}
		if !online {
			d.channel = pick(r, []string{"counter", "counter", "counter", "counter", "counter", "counter", "kiosk", "kiosk", "postal"})
		}
		d.proc = u.procs.pick(r, online)
		if attempt >= 32 && u.procs.shortest != nil && sp.class != classOnTime {
			d.proc = u.procs.shortest
		}
		if sp.class == classNatural {
			ok := false
			for _, cl := range []class{naturalClass(r, u), classOnTime, classOverdue} {
				sp.class = cl
				if ok = p.plan(r, d, sp); ok {
					break
				}
			}
			sp.class = classNatural
			if ok {
				return t0, nil
			}
			continue
		}
		if p.plan(r, d, sp) {
			return t0, nil
		}
	}
	return time.Time{}, fmt.Errorf("splits: cannot place dossier %d as asked in the period (a deadline longer than the period?)", j)
}

// fillTicket draws a ticket's details (category, channel, place, citizen).
func (p *Player) fillTicket(r *rand.Rand, tk *ticket, u *unit, t0 time.Time) {
	t := p.newTicket(r, u, t0)
	p.tickets-- // numbered when played, not when planned
	*tk = *t
}

// cohortArrivals plays a cohort's entities in reception order.
type cohortArrivals struct {
	p *Player
	c *boundCohort
	k int
}

func (ca *cohortArrivals) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	p, bc := ca.p, ca.c
	key := bc.keys[ca.k]
	j := int(key & (1<<24 - 1))
	ca.k++
	next, more := time.Time{}, ca.k < len(bc.keys)
	if more {
		next = bc.timeOf(bc.keys[ca.k])
	}
	var ev Event
	switch bc.Family {
	case "survey":
		r := p.entityRand(bc, j, nil)
		u := bc.units[pickCum(r, bc.cum)]
		t0 := p.receptionTime(r, bc.From, bc.To, "survey", false)
		a := bc.attrs[j]
		ch := ""
		if ci := int(a >> attrChanShift & 7); ci > 0 {
			ch = surveyChannels[ci-1]
		} else {
			ch = pick(r, bc.others)
		}
		var sv *surveyData
		switch a >> attrSatShift & 3 {
		case 1:
			sv = surveyOf(r, satSatisfied, ch)
		case 2:
			sv = surveyOf(r, satNeutral, ch)
		case 3:
			sv = surveyOf(r, satUnsatisfied, ch)
		default:
			sv = newSurveyData(r, u, u.satisfied)
			sv.channel = ch
		}
		sv.unit, sv.officer = u.Code, pick(r, u.officers)
		ev = p.surveyEvent(sv, t0)
	case "feedback":
		tk := &ticket{}
		t0, err := p.planEntity(bc, j, nil, tk)
		if err != nil || !t0.Equal(now) {
			p.err = fmt.Errorf("cohorts[%d]: replanning ticket %d: %v", bc.idx, j, errOr(err, "time changed"))
			return Event{}, false, time.Time{}, false
		}
		p.tickets++
		tk.id = ticketID(p.tag, tk.received, p.tickets)
		ev, _, _, _ = tk.act(e, now)
		if tk.i < tk.n {
			e.schedule(tk.steps[tk.i].at, tk, true)
		}
	default:
		d := &dossier{}
		t0, err := p.planEntity(bc, j, d, nil)
		if err != nil || !t0.Equal(now) {
			p.err = fmt.Errorf("cohorts[%d]: replanning dossier %d: %v", bc.idx, j, errOr(err, "time changed"))
			return Event{}, false, time.Time{}, false
		}
		p.dossiers++
		d.code = p.dossierCode(d.unit, t0, p.dossiers)
		ev, _, _, _ = d.act(e, now)
		if d.i < d.n {
			e.schedule(d.steps[d.i].at, d, true)
		}
	}
	return ev, true, next, more
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
