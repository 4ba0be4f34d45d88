package kpi

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vn-ioc/ioc/query"
)

// Composite values: scorecards (score766.yaml, dti.yaml) whose points come
// from the values of catalog KPIs and from indicator.reported events of the
// same unit and window. A scorecard <id> gives the values <id>.total and
// <id>.<group>. They are computed on request from their components (which
// the engine publishes), never kept in rollups: a composite is explained by
// its components, not by a statement of its own.

var (
	//go:embed score766.yaml
	score766YAML []byte
	//go:embed dti.yaml
	dtiYAML []byte
)

// TotalGroup names a scorecard's total: <id>.total.
const TotalGroup = "total"

// Scorecard is a versioned scoring methodology.
type Scorecard struct {
	ID          string  `yaml:"id" json:"id"`
	Version     int     `yaml:"version" json:"version"`
	Methodology string  `yaml:"methodology" json:"methodology"`
	Title       Text    `yaml:"title" json:"title"`
	Max         float64 `yaml:"max" json:"max"`
	// Ratings are the classes of a total, highest first: a total of at
	// least Min points has that class.
	Ratings            []Rating      `yaml:"ratings" json:"ratings"`
	RatingsUnconfirmed bool          `yaml:"ratings_unconfirmed,omitempty" json:"ratings_unconfirmed,omitempty"`
	Groups             []*ScoreGroup `yaml:"groups" json:"groups"`
}

// Rating is a class of totals.
type Rating struct {
	Min  float64 `yaml:"min" json:"min"`
	Name Text    `yaml:"name" json:"name"`
}

// ScoreGroup is a group (766) or pillar (DTI) of indicators.
type ScoreGroup struct {
	ID         string            `yaml:"id" json:"id"`
	Title      Text              `yaml:"title" json:"title"`
	Max        float64           `yaml:"max" json:"max"`
	Indicators []*ScoreIndicator `yaml:"indicators" json:"indicators"`
}

// ScoreIndicator turns a rate into points: Points × min(1, rate / FullAt).
type ScoreIndicator struct {
	ID     string  `yaml:"id" json:"id"`
	Title  Text    `yaml:"title" json:"title"`
	Points float64 `yaml:"points" json:"points"`
	// FullAt is the rate that earns every point (default 1).
	FullAt float64 `yaml:"full_at,omitempty" json:"full_at"`
	// KPI is the catalog ratio giving the rate, or Reported the code of an
	// indicator.reported indicator.
	KPI         string `yaml:"kpi,omitempty" json:"kpi,omitempty"`
	Reported    string `yaml:"reported,omitempty" json:"reported,omitempty"`
	Unconfirmed bool   `yaml:"unconfirmed,omitempty" json:"unconfirmed,omitempty"`
}

// parseScorecard reads and validates a scorecard against the catalog.
func parseScorecard(b []byte, cat *Catalog) (*Scorecard, error) {
	var sc Scorecard
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("scorecard: %w", err)
	}
	if err := sc.validate(cat); err != nil {
		return nil, fmt.Errorf("scorecard %s: %w", sc.ID, err)
	}
	return &sc, nil
}

// near: points are decimal numbers in the files.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func (sc *Scorecard) validate(cat *Catalog) error {
	switch {
	case !columnRE.MatchString(sc.ID):
		return fmt.Errorf("id %q must be a lower-case name", sc.ID)
	case slices.Contains(cat.Families(), sc.ID):
		return fmt.Errorf("id %q is a family of the catalog", sc.ID)
	case sc.Version <= 0:
		return errors.New("version must be a positive integer")
	case sc.Methodology == "" || sc.Title.EN == "" || sc.Title.VI == "":
		return errors.New("methodology and title (en, vi) are required")
	case !(sc.Max > 0):
		return errors.New("max must be positive")
	}
	for i, r := range sc.Ratings {
		if r.Min < 0 || r.Min > sc.Max || r.Name.EN == "" || r.Name.VI == "" || (i > 0 && r.Min >= sc.Ratings[i-1].Min) {
			return fmt.Errorf("ratings[%d]: min within 0–max, highest first, and a name in en and vi", i)
		}
	}
	var total float64
	groups := map[string]bool{TotalGroup: true}
	for _, g := range sc.Groups {
		if !columnRE.MatchString(g.ID) || groups[g.ID] {
			return fmt.Errorf("group %q: a lower-case name, unique, not %q", g.ID, TotalGroup)
		}
		groups[g.ID] = true
		if g.Title.EN == "" || g.Title.VI == "" || !(g.Max > 0) || len(g.Indicators) == 0 {
			return fmt.Errorf("group %s: needs a title (en, vi), a positive max and indicators", g.ID)
		}
		var points float64
		ids := map[string]bool{}
		for _, ind := range g.Indicators {
			where := "group " + g.ID + " indicator " + ind.ID
			if !columnRE.MatchString(ind.ID) || ids[ind.ID] {
				return fmt.Errorf("%s: id must be a unique lower-case name", where)
			}
			ids[ind.ID] = true
			if ind.FullAt == 0 {
				ind.FullAt = 1
			}
			switch {
			case ind.Title.EN == "" || ind.Title.VI == "":
				return fmt.Errorf("%s: title needs en and vi", where)
			case !(ind.Points > 0):
				return fmt.Errorf("%s: points must be positive", where)
			case !(ind.FullAt > 0 && ind.FullAt <= 1):
				return fmt.Errorf("%s: full_at %v must be in (0, 1]", where, ind.FullAt)
			case (ind.KPI == "") == (ind.Reported == ""):
				return fmt.Errorf("%s: give exactly one of kpi and reported", where)
			}
			if ind.KPI != "" {
				k, ok := cat.KPI(ind.KPI)
				if !ok {
					return fmt.Errorf("%s: unknown kpi %s", where, ind.KPI)
				}
				if k.Kind != KindRatio || k.Instant() {
					return fmt.Errorf("%s: kpi %s is not a ratio over windows", where, ind.KPI)
				}
			}
			points += ind.Points
		}
		if !near(points, g.Max) {
			return fmt.Errorf("group %s: indicator points add up to %g, not its max %g", g.ID, points, g.Max)
		}
		total += g.Max
	}
	if !near(total, sc.Max) {
		return fmt.Errorf("groups add up to %g points, not max %g", total, sc.Max)
	}
	return nil
}

// Group returns the group of a composite id's suffix; nil for the total.
func (sc *Scorecard) group(id string) (*ScoreGroup, bool) {
	if id == TotalGroup {
		return nil, true
	}
	for _, g := range sc.Groups {
		if g.ID == id {
			return g, true
		}
	}
	return nil, false
}

// Composite finds the scorecard of a composite id (score766.total,
// dti.digital_government …).
func (c *Catalog) Composite(id string) (*Scorecard, bool) {
	fam, group, ok := strings.Cut(id, ".")
	if !ok {
		return nil, false
	}
	for _, sc := range c.Scorecards {
		if sc.ID == fam {
			_, ok := sc.group(group)
			return sc, ok
		}
	}
	return nil, false
}

// Rate is a component's rate in [0, 1], nil when it has none.
type Rate struct {
	Value *float64
	// Numerator, Denominator of a KPI; Period of a reported indicator.
	Numerator, Denominator int64
	Period                 string
}

// CompositeValue is a scorecard total or group over a unit subtree and a
// window, with every component that made it.
type CompositeValue struct {
	Key
	From        time.Time    `json:"from,omitzero"`
	To          time.Time    `json:"to,omitzero"`
	At          time.Time    `json:"at"`
	Version     int          `json:"version"`
	Methodology string       `json:"methodology"`
	Value       float64      `json:"value"` // points
	Max         float64      `json:"max"`
	Rating      *Rating      `json:"rating,omitempty"` // of a total
	Unconfirmed bool         `json:"rating_unconfirmed,omitempty"`
	Groups      []GroupScore `json:"groups"`
	// Missing lists group.indicator of the components without a rate:
	// they scored 0.
	Missing []string `json:"missing"`
}

// GroupScore is a group's points.
type GroupScore struct {
	ID         string           `json:"id"`
	Title      Text             `json:"title"`
	Max        float64          `json:"max"`
	Points     float64          `json:"points"`
	Indicators []IndicatorScore `json:"indicators"`
}

// IndicatorScore is an indicator's points and where its rate came from.
type IndicatorScore struct {
	*ScoreIndicator
	Score       float64  `json:"score"` // points earned
	Rate        *float64 `json:"rate"`
	Numerator   int64    `json:"numerator,omitempty"`
	Denominator int64    `json:"denominator,omitempty"`
	Period      string   `json:"period,omitempty"`
	Missing     bool     `json:"missing,omitempty"`
}

// Score computes the composite <sc.ID>.<group> from the rates of its
// components, keyed by KPI id or reported indicator code.
func (sc *Scorecard) Score(group string, rates map[string]Rate) (CompositeValue, error) {
	g, ok := sc.group(group)
	if !ok {
		return CompositeValue{}, fmt.Errorf("%s has no group %q", sc.ID, group)
	}
	v := CompositeValue{Key: Key{KPI: sc.ID + "." + group}, Version: sc.Version, Methodology: sc.Methodology, Max: sc.Max,
		Groups: []GroupScore{}, Missing: []string{}}
	groups := sc.Groups
	if g != nil {
		groups, v.Max = []*ScoreGroup{g}, g.Max
	}
	for _, g := range groups {
		gs := GroupScore{ID: g.ID, Title: g.Title, Max: g.Max}
		for _, ind := range g.Indicators {
			src := ind.KPI + ind.Reported
			r := rates[src]
			is := IndicatorScore{ScoreIndicator: ind, Rate: r.Value, Numerator: r.Numerator, Denominator: r.Denominator, Period: r.Period}
			if r.Value == nil {
				is.Missing = true
				v.Missing = append(v.Missing, g.ID+"."+ind.ID)
			} else {
				is.Score = ind.Points * min(1, max(0, *r.Value)/ind.FullAt)
			}
			gs.Points += is.Score
			gs.Indicators = append(gs.Indicators, is)
		}
		v.Value += gs.Points
		v.Groups = append(v.Groups, gs)
	}
	if g == nil {
		for i, r := range sc.Ratings {
			if v.Value >= r.Min-1e-9 {
				v.Rating, v.Unconfirmed = &sc.Ratings[i], sc.RatingsUnconfirmed
				break
			}
		}
	}
	return v, nil
}

// sources lists the KPI ids and reported indicator codes of a group's (or
// the total's) indicators.
// Components are the KPIs and the reported indicators a composite id
// (score766.total, dti.digital_government …) is made of.
func (c *Catalog) Components(id string) (kpis, reported []string) {
	sc, ok := c.Composite(id)
	if !ok {
		return nil, nil
	}
	_, group, _ := strings.Cut(id, ".")
	return sc.sources(group)
}

func (sc *Scorecard) sources(group string) (kpis, reported []string) {
	for _, g := range sc.Groups {
		if group != TotalGroup && g.ID != group {
			continue
		}
		for _, ind := range g.Indicators {
			if ind.KPI != "" {
				kpis = append(kpis, ind.KPI)
			} else {
				reported = append(reported, ind.Reported)
			}
		}
	}
	return kpis, reported
}

// Composite computes a composite value for the unit subtree over the span
// of a standard window (from the KPIs' published values) or a custom span.
func (r *Reader) Composite(ctx context.Context, id, unit string, s Span, now time.Time) (CompositeValue, error) {
	sc, ok := r.Cat.Composite(id)
	if !ok {
		return CompositeValue{}, fmt.Errorf("unknown composite %s", id)
	}
	_, group, _ := strings.Cut(id, ".")
	kpis, reported := sc.sources(group)
	span := s
	if s.Window != WindowCustom {
		var err error
		if span, err = Resolve(s.Window, now, r.B.Loc); err != nil {
			return CompositeValue{}, err
		}
	}
	rates := map[string]Rate{}
	for _, kid := range kpis {
		k, _ := r.Cat.KPI(kid)
		var v Value
		var err error
		if s.Window == WindowCustom {
			v, err = r.Custom(ctx, k, unit, s) // as the component's own value
		} else {
			v, err = r.Value(ctx, k, unit, s.Window, now) // the published value
		}
		if err != nil {
			return CompositeValue{}, err
		}
		rates[kid] = Rate{Value: v.Value, Numerator: v.Numerator, Denominator: v.Denominator}
	}
	if err := r.reported(ctx, unit, span, reported, rates); err != nil {
		return CompositeValue{}, err
	}
	v, err := sc.Score(group, rates)
	if err != nil {
		return v, err
	}
	v.Unit, v.Window, v.From, v.To, v.At = unit, span.Window, span.From.In(r.B.Loc), span.To.In(r.B.Loc), span.At.In(r.B.Loc)
	return v, nil
}

// reported adds to rates the reported indicators of the unit: for each,
// the report of the latest period that overlaps the span (the shorter
// period first when two start together).
func (r *Reader) reported(ctx context.Context, unit string, s Span, codes []string, rates map[string]Rate) error {
	if len(codes) == 0 {
		return nil
	}
	q := fmt.Sprintf("SELECT indicator, period, value, measure FROM %s.indicators WHERE unit = %s AND indicator IN (%s)",
		r.B.DB, query.Quote(unit), quoteList(codes))
	rows, err := r.DB.Conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("reported indicators: %w", err)
	}
	defer rows.Close()
	type pick struct{ from, to time.Time }
	best := map[string]pick{}
	for rows.Next() {
		var code, period, measure string
		var val float64
		if err := rows.Scan(&code, &period, &val, &measure); err != nil {
			return err
		}
		from, to, ok := periodSpan(period, r.B.Loc)
		if !ok || !from.Before(s.To) || !to.After(s.From) {
			continue
		}
		if b, seen := best[code]; seen && (from.Before(b.from) || from.Equal(b.from) && !to.Before(b.to)) {
			continue
		}
		best[code] = pick{from, to}
		if strings.EqualFold(measure, "percent") {
			val /= 100
		}
		rates[code] = Rate{Value: &val, Period: period}
	}
	return rows.Err()
}

// periodSpan reads 2024, 2024-Q1, 2024-03 as local [from, to).
func periodSpan(p string, loc *time.Location) (from, to time.Time, ok bool) {
	var y, n int
	switch {
	case len(p) == 4:
		if _, err := fmt.Sscanf(p, "%4d", &y); err != nil {
			return from, to, false
		}
		from = time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(1, 0, 0), true
	case len(p) == 7 && p[5] == 'Q':
		if _, err := fmt.Sscanf(p, "%4d-Q%1d", &y, &n); err != nil || n < 1 || n > 4 {
			return from, to, false
		}
		from = time.Date(y, time.Month(3*n-2), 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 3, 0), true
	case len(p) == 7:
		if _, err := fmt.Sscanf(p, "%4d-%2d", &y, &n); err != nil || n < 1 || n > 12 {
			return from, to, false
		}
		from = time.Date(y, time.Month(n), 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 1, 0), true
	}
	return from, to, false
}
