// Package dashboards holds the dashboard definitions (walls, tablets) as
// data. A wall token names one dashboard and may read exactly the KPI keys
// its tiles declare and the drill-down lists it declares, for the
// dashboard's unit subtree.
package dashboards

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Tile is a KPI a dashboard shows, over some windows.
type Tile struct {
	KPI     string   `yaml:"kpi" json:"kpi"`
	Windows []string `yaml:"windows" json:"windows"`
}

// Dashboard is one definition.
type Dashboard struct {
	ID    string            `yaml:"id" json:"id"`
	Title map[string]string `yaml:"title" json:"title"`
	Unit  string            `yaml:"unit" json:"unit"`
	Tiles []Tile            `yaml:"tiles" json:"tiles"`
	// Lists are the drill-down lists (query/drill: dossier.overdue, …) the
	// dashboard shows; optional.
	Lists []string `yaml:"lists,omitempty" json:"lists,omitempty"`
	// Alerts: the dashboard shows the alert feed of its subtree.
	Alerts bool `yaml:"alerts,omitempty" json:"alerts,omitempty"`
}

// Shows reports whether the dashboard declares the KPI over the window.
func (d *Dashboard) Shows(kpi, window string) bool {
	for _, t := range d.Tiles {
		if t.KPI == kpi && slices.Contains(t.Windows, window) {
			return true
		}
	}
	return false
}

// ShowsList reports whether the dashboard declares the drill-down list.
func (d *Dashboard) ShowsList(name string) bool { return slices.Contains(d.Lists, name) }

// Checker validates a tile against the KPI catalog and the units.
type Checker func(kpi, window string) error

// Load reads every bundled dashboard and checks its tiles and unit.
func Load(check Checker, unitExists func(string) bool) (map[string]*Dashboard, error) {
	out := map[string]*Dashboard{}
	names, _ := fs.Glob(files, "*.yaml")
	for _, name := range names {
		b, _ := files.ReadFile(name)
		var d Dashboard
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		if d.ID == "" || out[d.ID] != nil {
			return nil, fmt.Errorf("dashboard %s: id %q is empty or taken", name, d.ID)
		}
		if unitExists != nil && !unitExists(d.Unit) {
			return nil, fmt.Errorf("dashboard %s: unit %q is not a known unit", d.ID, d.Unit)
		}
		for i, t := range d.Tiles {
			for _, w := range t.Windows {
				if err := check(t.KPI, w); err != nil {
					return nil, fmt.Errorf("dashboard %s: tiles[%d]: %w", d.ID, i, err)
				}
			}
		}
		for i, l := range d.Lists {
			if l == "" || slices.Index(d.Lists, l) != i {
				return nil, fmt.Errorf("dashboard %s: lists[%d]: %q is empty or repeated", d.ID, i, l)
			}
		}
		out[d.ID] = &d
	}
	return out, nil
}
