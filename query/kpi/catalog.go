package kpi

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed catalog.yaml
var catalogYAML []byte

// Kinds of KPI, that is how a value follows from its sums.
const (
	KindCount     = "count"      // value = numerator × scale
	KindRatio     = "ratio"      // value = numerator / denominator × scale
	KindMean      = "mean"       // value = numerator / denominator × scale
	KindPerMinute = "per_minute" // value = numerator / minutes of the window
)

// Text in English and Vietnamese.
type Text struct {
	EN string `yaml:"en" json:"en"`
	VI string `yaml:"vi" json:"vi"`
}

// Source is a curated view a KPI sums over.
type Source struct {
	Name string `yaml:"-" json:"name"`
	View string `yaml:"view" json:"view"`
	// Unit is the view's column holding the unit a row belongs to.
	Unit string `yaml:"unit" json:"unit"`
	// ID is the key column of an entity view; Family its family in
	// entity_hours; Hours maps its time columns to entity_hours kinds.
	ID     string            `yaml:"id,omitempty" json:"id,omitempty"`
	Family string            `yaml:"family,omitempty" json:"family,omitempty"`
	Hours  map[string]string `yaml:"hours,omitempty" json:"hours,omitempty"`
	// Events marks a view of one row per event, found by its time column.
	Events bool `yaml:"events,omitempty" json:"events,omitempty"`
	// Open is the condition under which an entity of the view is open. The
	// engine keeps the open entities of the family in kpi_open; the filter
	// of each instant KPI over the view is "<Open> AND <a condition on
	// the unit and due_at>", taken from that table.
	Open string `yaml:"open,omitempty" json:"open,omitempty"`
	// Dimensions are the view's columns its KPIs may be broken down by.
	Dimensions map[string]*Dimension `yaml:"dimensions,omitempty" json:"dimensions,omitempty"`
	// Filtered, for a view ClickHouse 18.16 cannot push a filter into (a
	// JOIN), is a table expression with the view's rows and columns in
	// which the engine puts its condition ({where}) before the JOIN; {db}
	// is the database. The /sql of a KPI still reads the view.
	Filtered string `yaml:"filtered,omitempty" json:"-"`
	// Reference lists the reference data the view's rows take from (their
	// unit, for cameras): the engine's rollups keep what it was when they
	// were written, so a change of it rebuilds them (references.go).
	Reference []string `yaml:"reference,omitempty" json:"reference,omitempty"`
}

// Dimension is a column KPIs may be broken down by.
type Dimension struct {
	// Labels is a reference view with columns id and name that names the
	// column's values (officers for an officer id); empty when the values
	// are their own names.
	Labels string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// KPI is one catalog entry.
type KPI struct {
	ID          string  `yaml:"id" json:"id"`
	Family      string  `yaml:"family" json:"family"`
	Version     int     `yaml:"version" json:"version"`
	Title       Text    `yaml:"title" json:"title"`
	Definition  string  `yaml:"definition" json:"definition"`
	Example     string  `yaml:"example,omitempty" json:"example,omitempty"`
	Source      string  `yaml:"source" json:"source"`
	Time        string  `yaml:"time,omitempty" json:"time,omitempty"`
	Filter      string  `yaml:"filter,omitempty" json:"filter,omitempty"`
	Numerator   string  `yaml:"numerator" json:"numerator"`
	Denominator string  `yaml:"denominator,omitempty" json:"denominator,omitempty"`
	Scale       float64 `yaml:"scale,omitempty" json:"scale,omitempty"`
	Kind        string  `yaml:"kind" json:"kind"`
	Format      string  `yaml:"format,omitempty" json:"format,omitempty"`
	Better      string  `yaml:"better" json:"better"`
	// Breakdowns are dimensions of the source the KPI is also given by
	// (GET /api/v1/kpis/{kpi}/breakdown?by=).
	Breakdowns []string `yaml:"breakdowns,omitempty" json:"breakdowns,omitempty"`

	// openFilter is the filter without its source's open condition: what an
	// instant KPI over a source with `open` asks of the rows of kpi_open.
	openFilter string
}

// Instant reports whether the KPI is taken at an instant (window "now")
// rather than over a window of time.
func (k *KPI) Instant() bool { return k.Time == "" }

// Windows the KPI is published for.
func (k *KPI) Windows() []string {
	if k.Instant() {
		return []string{WindowNow}
	}
	return StandardWindows
}

// Catalog is the validated set of KPIs.
type Catalog struct {
	Version int                `yaml:"catalog_version" json:"catalog_version"`
	Sources map[string]*Source `yaml:"sources" json:"-"`
	KPIs    []*KPI             `yaml:"kpis" json:"kpis"`
	// Scorecards are the composites (score766.yaml, dti.yaml), bundled with
	// the catalog by Load.
	Scorecards []*Scorecard `yaml:"-" json:"scorecards,omitempty"`

	byID map[string]*KPI
}

// Load parses and validates the catalog bundled with ioc and its
// scorecards.
func Load() (*Catalog, error) {
	c, err := Parse(catalogYAML)
	if err != nil {
		return nil, err
	}
	for _, b := range [][]byte{score766YAML, dtiYAML} {
		sc, err := parseScorecard(b, c)
		if err != nil {
			return nil, err
		}
		c.Scorecards = append(c.Scorecards, sc)
	}
	return c, nil
}

// Parse parses and validates a catalog file.
func Parse(b []byte) (*Catalog, error) {
	var c Catalog
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("kpi catalog: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("kpi catalog: %w", err)
	}
	return &c, nil
}

// KPI returns the entry with that id.
func (c *Catalog) KPI(id string) (*KPI, bool) {
	k, ok := c.byID[id]
	return k, ok
}

// Families lists the families that have KPIs, sorted.
func (c *Catalog) Families() []string {
	var out []string
	for _, k := range c.KPIs {
		if !slices.Contains(out, k.Family) {
			out = append(out, k.Family)
		}
	}
	slices.Sort(out)
	return out
}

var (
	idRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)
	columnRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	// placeholderRE matches {now}, {now_minus:120}, {now_plus_working_hours:8},
	// {working_seconds:received_at,resolved_at}.
	placeholderRE = regexp.MustCompile(`\{([a-z_]+)(?::([0-9a-z_.,]+))?\}`)
)

// forbidden in SQL fragments: they are spliced into statements.
var fragmentForbidden = []string{";", "--", "/*", "*/", "#", "`"}

func (c *Catalog) validate() error {
	if c.Version <= 0 {
		return errors.New("catalog_version must be a positive integer")
	}
	if len(c.Sources) == 0 {
		return errors.New("sources: none declared")
	}
	for name, s := range c.Sources {
		s.Name = name
		if !columnRE.MatchString(s.View) {
			return fmt.Errorf("sources.%s.view: %q is not a view name", name, s.View)
		}
		if !columnRE.MatchString(s.Unit) {
			return fmt.Errorf("sources.%s.unit: %q is not a column name", name, s.Unit)
		}
		if len(s.Hours) > 0 && (!columnRE.MatchString(s.ID) || !columnRE.MatchString(s.Family)) {
			return fmt.Errorf("sources.%s: an entity view with hours needs id and family", name)
		}
		for col, d := range s.Dimensions {
			if !columnRE.MatchString(col) || d == nil || (d.Labels != "" && !columnRE.MatchString(d.Labels)) {
				return fmt.Errorf("sources.%s.dimensions: %q: needs a column name and, if any, a labels view name", name, col)
			}
		}
		for _, r := range s.Reference {
			if _, ok := referenceDigests[r]; !ok || r == refCalendar {
				return fmt.Errorf("sources.%s.reference: %q: the kinds a view takes rows from are %s", name, r, refCameras)
			}
		}
		if s.Filtered != "" {
			if !fragmentClean(s.Filtered) || strings.Count(s.Filtered, "{where}") != 1 ||
				!strings.HasPrefix(s.Filtered, "(") || !strings.HasSuffix(s.Filtered, ")") {
				return fmt.Errorf("sources.%s.filtered: needs a parenthesized table expression with {where} once, without comments or semicolons", name)
			}
		}
		if s.Open != "" {
			if err := checkFragment(s.Open); err != nil || placeholderRE.MatchString(s.Open) {
				return fmt.Errorf("sources.%s.open: %q: needs a condition over the view's columns, without placeholders", name, s.Open)
			}
			if !columnRE.MatchString(s.ID) || !columnRE.MatchString(s.Family) {
				return fmt.Errorf("sources.%s: a view with open entities needs id and family", name)
			}
			for other, o := range c.Sources {
				if other != name && o.Open != "" && o.Family == s.Family {
					return fmt.Errorf("sources.%s.open: family %s already keeps its open entities from %s", name, s.Family, other)
				}
			}
		}
		for col, kind := range s.Hours {
			if !columnRE.MatchString(col) || !columnRE.MatchString(kind) {
				return fmt.Errorf("sources.%s.hours: %q: %q is not a column and event kind", name, col, kind)
			}
		}
	}
	c.byID = map[string]*KPI{}
	for i, k := range c.KPIs {
		where := fmt.Sprintf("kpis[%d]", i)
		if k.ID != "" {
			where = "kpi " + k.ID
		}
		if err := k.validate(c); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if _, dup := c.byID[k.ID]; dup {
			return fmt.Errorf("%s: id declared twice", where)
		}
		c.byID[k.ID] = k
	}
	return nil
}

func (k *KPI) validate(c *Catalog) error {
	switch {
	case !idRE.MatchString(k.ID):
		return fmt.Errorf("id %q must look like family.name (lower case)", k.ID)
	case !strings.HasPrefix(k.ID, k.Family+"."):
		return fmt.Errorf("family %q must be the id's prefix", k.Family)
	case k.Version <= 0:
		return errors.New("version must be a positive integer")
	case k.Title.EN == "" || k.Title.VI == "":
		return errors.New("title needs en and vi")
	case k.Definition == "":
		return errors.New("definition is empty")
	case c.Sources[k.Source] == nil:
		return fmt.Errorf("source %q is not declared under sources", k.Source)
	case k.Time != "" && !columnRE.MatchString(k.Time):
		return fmt.Errorf("time %q is not a column name", k.Time)
	case k.Numerator == "":
		return errors.New("numerator is empty")
	case k.Better != "higher" && k.Better != "lower" && k.Better != "neutral":
		return fmt.Errorf("better %q must be higher, lower or neutral", k.Better)
	}
	switch k.Kind {
	case KindCount:
		if k.Denominator != "" {
			return errors.New("a count has no denominator")
		}
	case KindRatio, KindMean:
		if k.Denominator == "" {
			return fmt.Errorf("a %s needs a denominator", k.Kind)
		}
	case KindPerMinute:
		if k.Denominator != "" || k.Instant() {
			return errors.New("a per_minute KPI needs a time column and no denominator")
		}
	default:
		return fmt.Errorf("kind %q must be count, ratio, mean or per_minute", k.Kind)
	}
	if k.Scale == 0 {
		k.Scale = 1
	}
	for name, frag := range map[string]string{"filter": k.Filter, "numerator": k.Numerator, "denominator": k.Denominator} {
		if err := checkFragment(frag); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !k.Instant() && dependsOnInstant(frag) {
			return fmt.Errorf("%s: a KPI over windows is kept in rollups and may not depend on the instant (no {now…} placeholders)", name)
		}
	}
	for _, b := range k.Breakdowns {
		if c.Sources[k.Source].Dimensions[b] == nil {
			return fmt.Errorf("breakdowns: %q is not a dimension of source %s (sources.%[2]s.dimensions)", b, k.Source)
		}
	}
	if src := c.Sources[k.Source]; k.Instant() && src.Open != "" {
		rest, ok := strings.CutPrefix(k.Filter, src.Open+" AND ")
		if !ok || k.Family != src.Family {
			return fmt.Errorf("filter: an instant KPI over %s counts its open entities from kpi_open: it must be of family %s and its filter start with sources.%[1]s.open and AND", k.Source, src.Family)
		}
		k.openFilter = rest
	}
	if src := c.Sources[k.Source]; !k.Instant() && !src.Events && src.Hours[k.Time] == "" {
		return fmt.Errorf("time %q: source %s keeps no hours for it (sources.%[2]s.hours)", k.Time, k.Source)
	}
	return nil
}

// dependsOnInstant reports whether a fragment names the instant of
// computation. Working time between two columns depends on the row and the
// business calendar only.
func dependsOnInstant(frag string) bool {
	for _, m := range placeholderRE.FindAllStringSubmatch(frag, -1) {
		if !strings.HasPrefix(m[1], "working_seconds") {
			return true
		}
	}
	return false
}

// fragmentClean: nothing that could end a statement or start a comment.
func fragmentClean(frag string) bool {
	for _, bad := range fragmentForbidden {
		if strings.Contains(frag, bad) {
			return false
		}
	}
	return true
}

func checkFragment(frag string) error {
	for _, bad := range fragmentForbidden {
		if strings.Contains(frag, bad) {
			return fmt.Errorf("%q is not allowed in a SQL fragment", bad)
		}
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(frag, -1) {
		switch m[1] {
		case "now":
			if m[2] != "" {
				return errors.New("{now} takes no argument")
			}
		case "now_minus", "now_plus_working_hours":
			if _, err := strconv.ParseFloat(m[2], 64); err != nil || m[2] == "" {
				return fmt.Errorf("{%s:N} needs a number", m[1])
			}
		case "working_seconds", "working_seconds_sum":
			a, b, ok := strings.Cut(m[2], ",")
			if !ok || !columnRE.MatchString(a) || !columnRE.MatchString(b) {
				return fmt.Errorf("{%s:from,to} needs two column names", m[1])
			}
		default:
			return fmt.Errorf("unknown placeholder {%s}", m[1])
		}
	}
	if rest := placeholderRE.ReplaceAllString(frag, ""); strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q holds a brace that is not a placeholder", frag)
	}
	if strings.Count(frag, "(") != strings.Count(frag, ")") || strings.Count(frag, "'")%2 != 0 {
		return errors.New("unbalanced parentheses or quotes")
	}
	return nil
}
