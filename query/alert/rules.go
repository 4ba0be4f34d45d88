package alert

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vn-ioc/ioc/query/kpi"
)

//go:embed rules.yaml
var rulesYAML []byte

// Kinds of rule.
const (
	KindThreshold     = "threshold"
	KindDossierDue    = "dossier_due"
	KindTicketOverdue = "ticket_overdue"
	KindCameraSilent  = "camera_silent"
	KindCameraOffline = "camera_offline"
	KindCameraLevel   = "camera_level"
)

// Kinds lists the rule kinds in the order the docs present them.
var Kinds = []string{KindThreshold, KindDossierDue, KindTicketOverdue, KindCameraSilent, KindCameraOffline, KindCameraLevel}

// Severities, from the least to the most urgent.
var Severities = []string{"info", "warning", "critical"}

// Rule is one entry of the rules file. Which fields a kind takes is
// checked by Parse: a field of another kind is refused, not ignored.
type Rule struct {
	ID       string   `yaml:"id" json:"id"`
	Kind     string   `yaml:"kind" json:"kind"`
	Severity string   `yaml:"severity" json:"severity"`
	Title    kpi.Text `yaml:"title" json:"title"`
	// Disabled rules are loaded and shown but never evaluated.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`

	// threshold
	KPI            string   `yaml:"kpi,omitempty" json:"kpi,omitempty"`
	Window         string   `yaml:"window,omitempty" json:"window,omitempty"`
	Above          *float64 `yaml:"above,omitempty" json:"above,omitempty"`
	Below          *float64 `yaml:"below,omitempty" json:"below,omitempty"`
	Clear          *float64 `yaml:"clear,omitempty" json:"clear,omitempty"`
	MinDenominator int64    `yaml:"min_denominator,omitempty" json:"min_denominator,omitempty"`
	UnitKinds      []string `yaml:"unit_kinds,omitempty" json:"unit_kinds,omitempty"`

	// dossier_due
	Hours float64 `yaml:"hours,omitempty" json:"hours,omitempty"`
	// KeepOverdue: a dossier_due alert stays open once its deadline passed
	// (until the dossier is resolved or withdrawn). By default it is
	// cleared then: the dossier is overdue, in the overdue list and the
	// units' overdue counts, and no longer "due soon"; an overdue backlog
	// would otherwise fill the rule's max_open and stop new alerts.
	KeepOverdue bool `yaml:"keep_overdue,omitempty" json:"keep_overdue,omitempty"`
	// camera_silent, camera_offline
	Minutes int `yaml:"minutes,omitempty" json:"minutes,omitempty"`
	// camera_level
	Detection    string `yaml:"detection,omitempty" json:"detection,omitempty"`
	Level        int    `yaml:"level,omitempty" json:"level,omitempty"`
	ClearLevel   *int   `yaml:"clear_level,omitempty" json:"clear_level,omitempty"`
	FreshMinutes int    `yaml:"fresh_minutes,omitempty" json:"fresh_minutes,omitempty"`

	// MaxOpen bounds the alerts of the rule open at once (entity rules:
	// a flood of overdue tickets is one backlog, not ten thousand
	// pages); past it the rule raises no more and says so in the logs and
	// the metric ioc_alert_capped_total. Default 1000.
	MaxOpen int `yaml:"max_open,omitempty" json:"max_open,omitempty"`

	// Percent: the KPI's values are shares (0.976) shown as percentages,
	// and the rule's levels are percentages (97.6).
	Percent bool `yaml:"-" json:"percent,omitempty"`

	kpiFamily string // threshold: the family of its KPI
}

// Rules is the parsed rules file.
type Rules struct {
	Version int     `yaml:"version" json:"version"`
	Rules   []*Rule `yaml:"rules" json:"rules"`
	byID    map[string]*Rule
}

// Rule returns the rule with that id.
func (rs *Rules) Rule(id string) (*Rule, bool) {
	r, ok := rs.byID[id]
	return r, ok
}

// Load reads the rules file at path, or the bundled one when path is empty.
func Load(path string, cat *kpi.Catalog) (*Rules, error) {
	b := rulesYAML
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("alert rules: %w", err)
		}
	}
	return Parse(b, cat)
}

// Parse parses and validates a rules file against the KPI catalog.
func Parse(b []byte, cat *kpi.Catalog) (*Rules, error) {
	var rs Rules
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	if rs.Version < 1 {
		return nil, errors.New("alert rules: version: a positive integer is required")
	}
	rs.byID = map[string]*Rule{}
	for i, r := range rs.Rules {
		if err := r.validate(cat); err != nil {
			return nil, fmt.Errorf("alert rules: rules[%d] (%s): %w", i, r.ID, err)
		}
		if rs.byID[r.ID] != nil {
			return nil, fmt.Errorf("alert rules: rules[%d]: id %s is taken", i, r.ID)
		}
		rs.byID[r.ID] = r
	}
	return &rs, nil
}

var ruleID = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,79}$`)

// unitKinds a threshold rule may watch; the default leaves out the units
// that ceased to exist on 1 July 2025.
var (
	allUnitKinds     = []string{"city", "department", "ward", "commune", "special_zone", "legacy_district", "legacy_ward"}
	defaultUnitKinds = []string{"city", "department", "ward", "commune", "special_zone"}
)

func (r *Rule) validate(cat *kpi.Catalog) error {
	if !ruleID.MatchString(r.ID) {
		return fmt.Errorf("id %q: lowercase letters, digits, '.', '_' and '-', at most 80", r.ID)
	}
	if !slices.Contains(Kinds, r.Kind) {
		return fmt.Errorf("kind %q: one of %s", r.Kind, strings.Join(Kinds, ", "))
	}
	if !slices.Contains(Severities, r.Severity) {
		return fmt.Errorf("severity %q: one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if r.Title.EN == "" || r.Title.VI == "" {
		return errors.New("title: en and vi are required")
	}
	if r.MaxOpen < 0 || r.MaxOpen > 100000 {
		return fmt.Errorf("max_open %d: between 1 and 100000", r.MaxOpen)
	}
	if r.MaxOpen == 0 {
		r.MaxOpen = 1000
	}
	// Fields set, so that those of other kinds are refused.
	set := map[string]bool{
		"kpi": r.KPI != "", "window": r.Window != "", "above": r.Above != nil, "below": r.Below != nil,
		"clear": r.Clear != nil, "min_denominator": r.MinDenominator != 0, "unit_kinds": r.UnitKinds != nil,
		"hours": r.Hours != 0, "keep_overdue": r.KeepOverdue, "minutes": r.Minutes != 0, "detection": r.Detection != "", "level": r.Level != 0,
		"clear_level": r.ClearLevel != nil, "fresh_minutes": r.FreshMinutes != 0,
	}
	takes := map[string][]string{
		KindThreshold:     {"kpi", "window", "above", "below", "clear", "min_denominator", "unit_kinds"},
		KindDossierDue:    {"hours", "keep_overdue"},
		KindTicketOverdue: {},
		KindCameraSilent:  {"minutes"},
		KindCameraOffline: {"minutes"},
		KindCameraLevel:   {"detection", "level", "clear_level", "fresh_minutes"},
	}[r.Kind]
	for _, f := range slices.Sorted(maps.Keys(set)) {
		if set[f] && !slices.Contains(takes, f) {
			return fmt.Errorf("%s: not a field of a %s rule", f, r.Kind)
		}
	}
	switch r.Kind {
	case KindThreshold:
		return r.validateThreshold(cat)
	case KindDossierDue:
		if !(r.Hours > 0 && r.Hours <= 80) {
			return fmt.Errorf("hours %v: between 0 and 80 working hours", r.Hours)
		}
	case KindCameraSilent, KindCameraOffline:
		if r.Minutes < 1 || r.Minutes > 7*24*60 {
			return fmt.Errorf("minutes %d: between 1 and 10080", r.Minutes)
		}
	case KindCameraLevel:
		if r.Detection != "flooding" && r.Detection != "congestion" {
			return fmt.Errorf("detection %q: flooding or congestion", r.Detection)
		}
		if r.Level < 1 || r.Level > 4 {
			return fmt.Errorf("level %d: between 1 and 4", r.Level)
		}
		if r.ClearLevel == nil {
			r.ClearLevel = &r.Level
		}
		if *r.ClearLevel < 1 || *r.ClearLevel > r.Level {
			return fmt.Errorf("clear_level %d: between 1 and level %d", *r.ClearLevel, r.Level)
		}
		if r.FreshMinutes == 0 {
			r.FreshMinutes = 30
		}
		if r.FreshMinutes < 1 || r.FreshMinutes > 24*60 {
			return fmt.Errorf("fresh_minutes %d: between 1 and 1440", r.FreshMinutes)
		}
	}
	return nil
}

func (r *Rule) validateThreshold(cat *kpi.Catalog) error {
	if r.KPI == "" || r.Window == "" {
		return errors.New("kpi and window are required")
	}
	k, ok := cat.KPI(r.KPI)
	if !ok {
		return fmt.Errorf("kpi %s: not in the KPI catalog", r.KPI)
	}
	if err := k.CheckWindow(r.Window); err != nil {
		return fmt.Errorf("kpi %s, window %s: %w", r.KPI, r.Window, err)
	}
	r.Percent = k.Format == "percent"
	r.kpiFamily = k.Family
	if (r.Above == nil) == (r.Below == nil) {
		return errors.New("exactly one of above and below is required")
	}
	t := r.threshold()
	if math.IsNaN(t) || math.IsInf(t, 0) {
		return errors.New("the threshold must be a finite number")
	}
	if r.Clear == nil {
		r.Clear = &t
	}
	switch {
	case r.Above != nil && *r.Clear > t:
		return fmt.Errorf("clear %v: at most above %v (the value must fall back under it)", *r.Clear, t)
	case r.Below != nil && *r.Clear < t:
		return fmt.Errorf("clear %v: at least below %v (the value must climb back over it)", *r.Clear, t)
	}
	if r.MinDenominator < 0 {
		return fmt.Errorf("min_denominator %d: not negative", r.MinDenominator)
	}
	if r.UnitKinds == nil {
		r.UnitKinds = defaultUnitKinds
	}
	if len(r.UnitKinds) == 0 {
		return errors.New("unit_kinds: at least one kind of unit")
	}
	for _, k := range r.UnitKinds {
		if !slices.Contains(allUnitKinds, k) {
			return fmt.Errorf("unit_kinds: %q is not one of %s", k, strings.Join(allUnitKinds, ", "))
		}
	}
	return nil
}

// threshold is the raising level of a threshold rule.
func (r *Rule) threshold() float64 {
	if r.Above != nil {
		return *r.Above
	}
	return *r.Below
}

// shown is a KPI value as the rule's levels count it.
func (r *Rule) shown(x float64) float64 {
	if r.Percent {
		return x * 100
	}
	return x
}

// Family is the event family whose commits may change what the rule
// sees; "" for threshold rules, which follow KPI values.
func (r *Rule) Family() string {
	switch r.Kind {
	case KindDossierDue:
		return "dossier"
	case KindTicketOverdue:
		return "feedback"
	case KindCameraSilent, KindCameraOffline, KindCameraLevel:
		return "camera"
	}
	return ""
}

// DataFamily is the family whose data the rule judges: its entities', or
// its KPI's.
func (r *Rule) DataFamily() string {
	if r.Kind == KindThreshold {
		return r.kpiFamily
	}
	return r.Family()
}

// Judgement is what a value means for a threshold rule.
type Judgement int

const (
	Keep  Judgement = iota // nothing changes
	Raise                  // no alert is open and the value crossed the threshold
	Clear                  // an alert is open and the value is back past the clear level
)

// Judge applies the threshold with its hysteresis to a value, given
// whether an alert of the rule is open for the value's unit. A value
// without a number, or with too small a denominator, changes nothing: no
// data is not a recovery.
func (r *Rule) Judge(v kpi.Value, open bool) Judgement {
	if v.Value == nil || v.Denominator < r.MinDenominator {
		return Keep
	}
	x := r.shown(*v.Value)
	switch {
	case !open && r.Above != nil && x > *r.Above, !open && r.Below != nil && x < *r.Below:
		return Raise
	case open && r.Above != nil && x <= *r.Clear, open && r.Below != nil && x >= *r.Clear:
		return Clear
	}
	return Keep
}
