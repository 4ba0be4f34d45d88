// Package dashboards holds the dashboard definitions (walls, tablets) as
// data: one YAML file each, a list of panels in layout order. Load checks
// every file against the KPI catalog, the lists and the units, and derives
// from the panels what a wall token bound to the dashboard may read: the
// KPI keys, series, rankings, lists, alerts and map its panels declare, for
// the dashboard's unit subtree. Nothing else is readable by a wall.
// A loaded Dashboard is never modified and is safe for concurrent use.
package dashboards

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Dashboard kinds.
const (
	KindWall   = "wall"   // a screen of the operations centre, with a wall token
	KindTablet = "tablet" // a leader's tablet, with the leader's token
)

// Panel kinds.
const (
	PanelTile    = "tile"
	PanelTrend   = "trend"
	PanelRanking = "ranking"
	PanelMap     = "map"
	PanelAlerts  = "alerts"
	PanelList    = "list"
)

// PanelKinds lists the panel kinds.
var PanelKinds = []string{PanelTile, PanelTrend, PanelRanking, PanelMap, PanelAlerts, PanelList}

// UnitFromToken is the unit of a dashboard shown for the unit of the token
// that opens it (a ward wall, a leader's tablet).
const UnitFromToken = "token"

// WindowCustom is the window of a from/to request: a tile with compare asks
// its previous period with it.
const WindowCustom = "custom"

// Defaults and bounds.
const (
	DefaultStaleAfter   = 15 * time.Minute
	DefaultRankingLimit = 10
	MaxRankingLimit     = 200
	MaxPanelSize        = 3
	MaxPanelRows        = 6
)

// Dashboard is one definition.
type Dashboard struct {
	ID    string            `yaml:"id" json:"id"`
	Kind  string            `yaml:"kind" json:"kind"`
	Title map[string]string `yaml:"title" json:"title"`
	// Unit is a unit code, or UnitFromToken.
	Unit string `yaml:"unit" json:"unit"`
	// UnitKind lists the kinds the token's unit may have (only with unit:
	// token; empty: any kind). YAML takes one kind or a list.
	UnitKind Kinds `yaml:"unit_kind,omitempty" json:"unit_kind,omitempty"`
	// StaleAfter: data older than this is shown stale. Default 15m.
	StaleAfter Duration `yaml:"stale_after,omitempty" json:"stale_after"`
	Panels     []Panel  `yaml:"panels" json:"panels"`

	scope scope
}

// Panel is one box of a dashboard. Which fields a panel takes depends on
// its kind (panelFields).
type Panel struct {
	Kind  string            `yaml:"kind" json:"kind"`
	Title map[string]string `yaml:"title,omitempty" json:"title,omitempty"`
	// Size in grid columns, 1 to 3. Default 1.
	Size int `yaml:"size,omitempty" json:"size"`
	// Rows of the grid the panel spans, 1 to 6. Default: a tile 1, a map
	// 3, the others 2. A wall has as many equal rows as its panels fill
	// (six columns), so the whole dashboard fits the screen.
	Rows int `yaml:"rows,omitempty" json:"rows"`
	// KPI and Window: tile, trend, ranking, map.
	KPI    string `yaml:"kpi,omitempty" json:"kpi,omitempty"`
	Window string `yaml:"window,omitempty" json:"window,omitempty"`
	// Compare: a tile shows the change from the previous period.
	Compare bool `yaml:"compare,omitempty" json:"compare,omitempty"`
	// Sparkline: a tile's small trend.
	Sparkline *Sparkline `yaml:"sparkline,omitempty" json:"sparkline,omitempty"`
	// Target in the KPI's own unit (a share, 0.95, for rates): tile, trend.
	Target *float64 `yaml:"target,omitempty" json:"target,omitempty"`
	// Step of a trend: hour, day, week, month.
	Step string `yaml:"step,omitempty" json:"step,omitempty"`
	// Order (asc or desc, default desc) and Limit (default 10) of a ranking.
	Order string `yaml:"order,omitempty" json:"order,omitempty"`
	Limit int    `yaml:"limit,omitempty" json:"limit,omitempty"`
	// Cameras and Tickets a map draws.
	Cameras bool `yaml:"cameras,omitempty" json:"cameras,omitempty"`
	Tickets bool `yaml:"tickets,omitempty" json:"tickets,omitempty"`
	// List of a list panel (query/drill: dossier.overdue, …).
	List string `yaml:"list,omitempty" json:"list,omitempty"`
}

// Sparkline is the trend a tile draws under its value.
type Sparkline struct {
	Window string `yaml:"window" json:"window"`
	Step   string `yaml:"step" json:"step"`
}

// Kinds are unit kinds; YAML gives one (ward) or a list ([ward, commune]).
type Kinds []string

// UnmarshalYAML reads a kind or a list of kinds.
func (k *Kinds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*k = Kinds{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*k = l
	return nil
}

// Allows reports whether a unit of the kind fits (any kind when empty).
func (k Kinds) Allows(kind string) bool { return len(k) == 0 || slices.Contains(k, kind) }

// String names them for a message: "ward, commune or special_zone".
func (k Kinds) String() string {
	if len(k) < 2 {
		return strings.Join(k, "")
	}
	return strings.Join(k[:len(k)-1], ", ") + " or " + k[len(k)-1]
}

// Duration reads "15m", "1h" from YAML and writes the same to JSON.
type Duration time.Duration

// UnmarshalYAML reads a Go duration ("15m").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a positive duration such as 15m or 1h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// String is the duration in its largest whole unit: 15m, 1h, 90s.
func (d Duration) String() string {
	v := time.Duration(d)
	switch {
	case v%time.Hour == 0:
		return fmt.Sprintf("%dh", v/time.Hour)
	case v%time.Minute == 0:
		return fmt.Sprintf("%dm", v/time.Minute)
	}
	return fmt.Sprintf("%ds", v/time.Second)
}

// MarshalJSON writes the duration as String does.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnitFromToken reports whether the dashboard is shown for the unit of the
// token that opens it.
func (d *Dashboard) UnitFromToken() bool { return d.Unit == UnitFromToken }

// scope is what the panels declare, derived by Load.
type scope struct {
	keys    map[key]bool // (kpi, window) of tiles, trends, rankings, maps, sparklines; custom for compare
	series  map[key]bool // (kpi, window) of sparklines and trends
	ranking map[key]bool // (kpi, window) of rankings and maps
	lists   map[string]bool
	alerts  bool
	geo     bool
	// cameras, tickets: the layers its map panels draw.
	cameras, tickets bool
}

type key struct{ kpi, window string }

// Shows reports whether the dashboard declares the KPI over the window;
// window "custom" when a tile of the KPI compares with the previous period.
func (d *Dashboard) Shows(kpi, window string) bool { return d.scope.keys[key{kpi, window}] }

// ShowsSeries reports whether a sparkline or trend of the KPI spans the window.
func (d *Dashboard) ShowsSeries(kpi, window string) bool { return d.scope.series[key{kpi, window}] }

// ShowsRanking reports whether a ranking or map panel ranks the units by
// the KPI over the window.
func (d *Dashboard) ShowsRanking(kpi, window string) bool { return d.scope.ranking[key{kpi, window}] }

// ShowsList reports whether the dashboard declares the drill-down list.
func (d *Dashboard) ShowsList(name string) bool { return d.scope.lists[name] }

// ShowsAlerts reports whether the dashboard shows the alert feed.
func (d *Dashboard) ShowsAlerts() bool { return d.scope.alerts }

// ShowsMap reports whether the dashboard has a map panel.
func (d *Dashboard) ShowsMap() bool { return d.scope.geo }

// MapCameras and MapTickets report whether a map panel draws the cameras,
// the open tickets.
func (d *Dashboard) MapCameras() bool { return d.scope.cameras }
func (d *Dashboard) MapTickets() bool { return d.scope.tickets }

// Checks are what Load checks the panels against; a nil function skips its
// check.
type Checks struct {
	// Window says why a KPI (or composite) does not take a window: unknown
	// KPI, an instant KPI over a window, a window that does not exist.
	Window func(kpi, window string) error
	// Instant reports whether a KPI is taken at an instant (window now).
	Instant func(kpi string) bool
	// Composite reports whether the id is a composite (score766.total …).
	Composite func(kpi string) bool
	// Step reports whether a series step exists.
	Step func(step string) bool
	// List reports whether a drill-down list exists; Lists names them.
	List  func(name string) bool
	Lists []string
	// UnitKind is the kind of a unit, ok false for an unknown unit.
	UnitKind func(code string) (kind string, ok bool)
	// UnitKinds are the kinds unit_kind may name.
	UnitKinds []string
}

// Load reads and checks every bundled dashboard.
func Load(c Checks) (map[string]*Dashboard, error) { return LoadFS(files, c) }

// LoadFS reads and checks every *.yaml file of fsys.
func LoadFS(fsys fs.FS, c Checks) (map[string]*Dashboard, error) {
	out := map[string]*Dashboard{}
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		d, err := Parse(name, b, c)
		if err != nil {
			return nil, err
		}
		if other := out[d.ID]; other != nil {
			return nil, fmt.Errorf("dashboard %s: id %q is taken by another file", name, d.ID)
		}
		out[d.ID] = d
	}
	return out, nil
}

// Parse reads one file (name is for the errors), checks it, applies the
// defaults and derives its scope.
func Parse(name string, b []byte, c Checks) (*Dashboard, error) {
	var d Dashboard
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", name, err)
	}
	if err := d.check(c); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", name, err)
	}
	for i := range d.Panels {
		if err := d.Panels[i].check(c); err != nil {
			return nil, fmt.Errorf("dashboard %s: panels[%d] (%s): %w", name, i, d.Panels[i].Kind, err)
		}
	}
	d.derive()
	return &d, nil
}

func (d *Dashboard) check(c Checks) error {
	switch {
	case d.ID == "" || strings.ContainsAny(d.ID, "/: \t"):
		return fmt.Errorf("id: %q is empty or has a slash, colon or space", d.ID)
	case d.Kind != KindWall && d.Kind != KindTablet:
		return fmt.Errorf("kind: %q is neither %s nor %s", d.Kind, KindWall, KindTablet)
	case d.Title["vi"] == "" || d.Title["en"] == "":
		return errors.New("title: give both vi and en")
	case d.Unit == "":
		return errors.New("unit: a unit code, or token for the unit of the token that opens the dashboard")
	case d.Kind == KindTablet && !d.UnitFromToken():
		return errors.New("unit: a tablet shows the unit of its leader's token: unit: token")
	case len(d.UnitKind) > 0 && !d.UnitFromToken():
		return fmt.Errorf("unit_kind: only with unit: token (unit is %q)", d.Unit)
	case len(d.Panels) == 0:
		return errors.New("panels: none")
	}
	for _, k := range d.UnitKind {
		if c.UnitKinds != nil && !slices.Contains(c.UnitKinds, k) {
			return fmt.Errorf("unit_kind: %q is not a unit kind (one of %s)", k, strings.Join(c.UnitKinds, ", "))
		}
	}
	if !d.UnitFromToken() && c.UnitKind != nil {
		if _, ok := c.UnitKind(d.Unit); !ok {
			return fmt.Errorf("unit: %q is not a known unit", d.Unit)
		}
	}
	if d.StaleAfter == 0 {
		d.StaleAfter = Duration(DefaultStaleAfter)
	}
	return nil
}

// panelFields are the fields each kind of panel takes, besides kind, title,
// size and rows.
var panelFields = map[string][]string{
	PanelTile:    {"kpi", "window", "compare", "sparkline", "target"},
	PanelTrend:   {"kpi", "window", "step", "target"},
	PanelRanking: {"kpi", "window", "order", "limit"},
	PanelMap:     {"kpi", "window", "cameras", "tickets"},
	PanelAlerts:  {},
	PanelList:    {"list"},
}

// given lists the fields of the panel that are set.
func (p *Panel) given() []string {
	var out []string
	for f, set := range map[string]bool{"kpi": p.KPI != "", "window": p.Window != "", "compare": p.Compare,
		"sparkline": p.Sparkline != nil, "target": p.Target != nil, "step": p.Step != "", "order": p.Order != "",
		"limit": p.Limit != 0, "cameras": p.Cameras, "tickets": p.Tickets, "list": p.List != ""} {
		if set {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func (p *Panel) check(c Checks) error {
	fields, ok := panelFields[p.Kind]
	if !ok {
		return fmt.Errorf("kind: %q is not a panel kind (one of %s)", p.Kind, strings.Join(PanelKinds, ", "))
	}
	for _, f := range p.given() {
		if !slices.Contains(fields, f) {
			return fmt.Errorf("%s: the %s panel does not take it", f, p.Kind)
		}
	}
	if p.Size == 0 {
		p.Size = 1
	}
	if p.Size < 1 || p.Size > MaxPanelSize {
		return fmt.Errorf("size: %d grid columns; give 1 to %d", p.Size, MaxPanelSize)
	}
	if p.Rows == 0 {
		p.Rows = map[string]int{PanelTile: 1, PanelMap: 3}[p.Kind]
		if p.Rows == 0 {
			p.Rows = 2
		}
	}
	if p.Rows < 1 || p.Rows > MaxPanelRows {
		return fmt.Errorf("rows: %d grid rows; give 1 to %d", p.Rows, MaxPanelRows)
	}
	if p.Title != nil && p.Title["vi"] == "" {
		return errors.New("title: give at least vi")
	}
	switch p.Kind {
	case PanelList:
		if p.List == "" {
			return errors.New("list: required")
		}
		if c.List != nil && !c.List(p.List) {
			return fmt.Errorf("list: unknown list %q (one of %s)", p.List, strings.Join(c.Lists, ", "))
		}
		return nil
	case PanelAlerts:
		return nil
	case PanelMap:
		if !p.Cameras && !p.Tickets && p.KPI == "" {
			return errors.New("a map draws something: give kpi, cameras or tickets")
		}
		if p.KPI == "" {
			if p.Window != "" {
				return errors.New("window: only with kpi")
			}
			return nil
		}
	}
	return p.checkKPI(c)
}

// checkKPI checks the KPI of a tile, trend, ranking or map.
func (p *Panel) checkKPI(c Checks) error {
	if p.KPI == "" {
		return errors.New("kpi: required")
	}
	instant := c.Instant != nil && c.Instant(p.KPI)
	composite := c.Composite != nil && c.Composite(p.KPI)
	if p.Window == "" {
		if !instant {
			return errors.New("window: required (now is only for instant KPIs)")
		}
		p.Window = "now"
	}
	if p.Window == WindowCustom {
		return errors.New("window: custom is a from/to request, not a window a panel shows")
	}
	if c.Window != nil {
		if err := c.Window(p.KPI, p.Window); err != nil {
			return fmt.Errorf("kpi %s, window %s: %w", p.KPI, p.Window, err)
		}
	}
	series := func(field, window, step string) error {
		switch {
		case instant:
			return fmt.Errorf("%s: %s is taken at an instant and has no series", field, p.KPI)
		case composite:
			return fmt.Errorf("%s: %s is a composite and has no series of its own", field, p.KPI)
		case window == "":
			return fmt.Errorf("%s: window required", field)
		case step == "":
			return fmt.Errorf("%s: step required (hour, day, week or month)", field)
		case c.Step != nil && !c.Step(step):
			return fmt.Errorf("%s: step %q is not hour, day, week nor month", field, step)
		}
		if c.Window != nil {
			if err := c.Window(p.KPI, window); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
		}
		return nil
	}
	switch p.Kind {
	case PanelTile:
		if p.Compare && instant {
			return fmt.Errorf("compare: %s is taken at an instant and has no previous period", p.KPI)
		}
		if p.Sparkline != nil {
			if p.Sparkline.Window == WindowCustom {
				return errors.New("sparkline: custom is not a window a panel shows")
			}
			return series("sparkline", p.Sparkline.Window, p.Sparkline.Step)
		}
	case PanelTrend:
		return series("step", p.Window, p.Step)
	case PanelRanking, PanelMap:
		if composite {
			return fmt.Errorf("kpi: %s is a composite: units are ranked by a KPI of the catalog", p.KPI)
		}
		if p.Kind == PanelMap {
			return nil
		}
		if p.Order == "" {
			p.Order = "desc"
		}
		if p.Order != "asc" && p.Order != "desc" {
			return fmt.Errorf("order: %q is neither asc nor desc", p.Order)
		}
		if p.Limit == 0 {
			p.Limit = DefaultRankingLimit
		}
		if p.Limit < 1 || p.Limit > MaxRankingLimit {
			return fmt.Errorf("limit: %d; give 1 to %d", p.Limit, MaxRankingLimit)
		}
	}
	return nil
}

// derive computes the scope the panels declare.
func (d *Dashboard) derive() {
	s := scope{keys: map[key]bool{}, series: map[key]bool{}, ranking: map[key]bool{}, lists: map[string]bool{}}
	for _, p := range d.Panels {
		if p.KPI != "" {
			s.keys[key{p.KPI, p.Window}] = true
		}
		switch p.Kind {
		case PanelTile:
			if p.Compare {
				s.keys[key{p.KPI, WindowCustom}] = true
			}
			if p.Sparkline != nil {
				s.keys[key{p.KPI, p.Sparkline.Window}] = true
				s.series[key{p.KPI, p.Sparkline.Window}] = true
			}
		case PanelTrend:
			s.series[key{p.KPI, p.Window}] = true
		case PanelRanking:
			s.ranking[key{p.KPI, p.Window}] = true
		case PanelMap:
			s.geo = true
			s.cameras = s.cameras || p.Cameras
			s.tickets = s.tickets || p.Tickets
			if p.KPI != "" {
				s.ranking[key{p.KPI, p.Window}] = true
			}
		case PanelAlerts:
			s.alerts = true
		case PanelList:
			s.lists[p.List] = true
		}
	}
	d.scope = s
}
