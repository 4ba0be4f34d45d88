package dashboards

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// checks is a small catalog: instant KPIs take now, window KPIs the
// standard windows; one composite; wards, a city and a department.
func checks() Checks {
	instant := map[string]bool{"dossier.overdue_open": true, "feedback.overdue_open": true, "camera.online_ratio": true,
		"camera.congestion_hotspots": true, "camera.flooding_active": true, "dossier.due_soon": true}
	window := map[string]bool{"dossier.received": true, "dossier.resolved": true, "dossier.on_time_rate": true,
		"dossier.overdue_rate": true, "dossier.online_rate": true, "feedback.received": true, "feedback.on_time_rate": true,
		"survey.satisfied_rate": true, "camera.detections_per_min": true, "score766.total": true}
	windows := []string{"today", "week", "month", "quarter", "ytd", "24h", "7d", "30d", "custom"}
	units := map[string]string{"79": "city", "26740": "ward", "SO-TP": "department"}
	lists := []string{"dossier.overdue", "dossier.due_soon", "feedback.overdue"}
	return Checks{
		Window: func(kpi, w string) error {
			switch {
			case instant[kpi] && w != "now":
				return errors.New("its only window is now")
			case window[kpi] && !slices.Contains(windows, w):
				return errors.New("window " + w + " does not exist")
			case !instant[kpi] && !window[kpi]:
				return errors.New("unknown kpi " + kpi)
			}
			return nil
		},
		Instant:   func(kpi string) bool { return instant[kpi] },
		Composite: func(kpi string) bool { return kpi == "score766.total" },
		Step:      func(s string) bool { return slices.Contains([]string{"hour", "day", "week", "month"}, s) },
		List:      func(l string) bool { return slices.Contains(lists, l) },
		Lists:     lists,
		UnitKind: func(code string) (string, bool) {
			k, ok := units[code]
			return k, ok
		},
		UnitKinds: []string{"city", "department", "ward", "commune", "special_zone"},
	}
}

func TestLoadBundled(t *testing.T) {
	all, err := Load(checks())
	if err != nil {
		t.Fatal(err)
	}
	city, ward, tablet := all["city"], all["ward"], all["tablet"]
	if city == nil || city.Unit != "79" || city.Kind != KindWall || time.Duration(city.StaleAfter) != 15*time.Minute {
		t.Fatalf("city: %+v", city)
	}
	if ward == nil || !ward.UnitFromToken() || !slices.Equal(ward.UnitKind, Kinds{"ward", "commune", "special_zone"}) || ward.Kind != KindWall {
		t.Fatalf("ward: %+v", ward)
	}
	if tablet == nil || tablet.Kind != KindTablet || !tablet.UnitFromToken() {
		t.Fatalf("tablet: %+v", tablet)
	}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"instant tile", city.Shows("dossier.overdue_open", "now"), true},
		{"instant tile over another window", city.Shows("dossier.overdue_open", "today"), false},
		{"tile window", city.Shows("dossier.on_time_rate", "month"), true},
		{"sparkline window is a key", city.Shows("dossier.on_time_rate", "30d"), true},
		{"undeclared window", city.Shows("dossier.on_time_rate", "7d"), false},
		{"compare allows custom", city.Shows("dossier.on_time_rate", WindowCustom), true},
		{"no compare, no custom", city.Shows("dossier.online_rate", WindowCustom), false},
		{"ranking key", city.Shows("dossier.overdue_rate", "month"), true},
		{"undeclared kpi", city.Shows("feedback.rating_avg", "month"), false},
		{"sparkline series", city.ShowsSeries("dossier.on_time_rate", "30d"), true},
		{"trend series", city.ShowsSeries("survey.satisfied_rate", "month"), true},
		{"a tile's window is no series", city.ShowsSeries("dossier.received", "today"), false},
		{"ranking", city.ShowsRanking("dossier.overdue_rate", "month"), true},
		{"instant ranking", city.ShowsRanking("feedback.overdue_open", "now"), true},
		{"a tile is no ranking", city.ShowsRanking("dossier.on_time_rate", "month"), false},
		{"map", city.ShowsMap(), true},
		{"alerts", city.ShowsAlerts(), true},
		{"list", city.ShowsList("dossier.overdue"), true},
		{"undeclared list", city.ShowsList("dossier.due_soon"), false},
		{"empty list", city.ShowsList(""), false},
		{"ward has no ranking", ward.ShowsRanking("dossier.overdue_rate", "month"), false},
		{"ward map", ward.ShowsMap(), true},
		{"tablet due soon", tablet.ShowsList("dossier.due_soon"), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// Defaults are applied.
	for _, p := range city.Panels {
		if p.Size < 1 || (p.Kind == PanelRanking && (p.Order == "" || p.Limit == 0)) {
			t.Errorf("panel without its defaults: %+v", p)
		}
		if p.KPI == "dossier.overdue_open" && p.Window != "now" {
			t.Errorf("instant tile window %q, want now", p.Window)
		}
	}
}

// Each refusal names the file, the panel and the field.
func TestParseRefusals(t *testing.T) {
	const head = "id: x\nkind: wall\ntitle: {vi: X, en: X}\nunit: \"79\"\npanels:\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown panel kind", head + "  - {kind: gauge, kpi: dossier.received, window: today}", "panels[0] (gauge): kind: \"gauge\" is not a panel kind"},
		{"unknown kpi", head + "  - {kind: tile, kpi: dossier.nope, window: today}", "panels[0] (tile): kpi dossier.nope, window today: unknown kpi dossier.nope"},
		{"window the kpi does not take", head + "  - {kind: tile, kpi: dossier.overdue_open, window: today}", "panels[0] (tile): kpi dossier.overdue_open, window today: its only window is now"},
		{"window missing", head + "  - {kind: tile, kpi: dossier.received}", "panels[0] (tile): window: required"},
		{"custom window", head + "  - {kind: tile, kpi: dossier.received, window: custom}", "window: custom is a from/to request"},
		{"second panel", head + "  - {kind: alerts}\n  - {kind: trend, kpi: dossier.received, window: month, step: fortnight}", "panels[1] (trend): step: step \"fortnight\""},
		{"trend without step", head + "  - {kind: trend, kpi: dossier.received, window: month}", "panels[0] (trend): step: step required"},
		{"instant sparkline", head + "  - {kind: tile, kpi: dossier.overdue_open, sparkline: {window: 30d, step: day}}", "sparkline: dossier.overdue_open is taken at an instant and has no series"},
		{"instant trend", head + "  - {kind: trend, kpi: dossier.overdue_open, step: day}", "panels[0] (trend): step: dossier.overdue_open is taken at an instant"},
		{"instant compare", head + "  - {kind: tile, kpi: dossier.overdue_open, compare: true}", "compare: dossier.overdue_open is taken at an instant"},
		{"sparkline window", head + "  - {kind: tile, kpi: dossier.received, window: today, sparkline: {window: year, step: day}}", "sparkline: window year does not exist"},
		{"composite in trend", head + "  - {kind: trend, kpi: score766.total, window: month, step: day}", "score766.total is a composite and has no series"},
		{"composite ranking", head + "  - {kind: ranking, kpi: score766.total, window: month}", "panels[0] (ranking): kpi: score766.total is a composite"},
		{"field of another kind", head + "  - {kind: tile, kpi: dossier.received, window: today, list: dossier.overdue}", "panels[0] (tile): list: the tile panel does not take it"},
		{"alerts take nothing", head + "  - {kind: alerts, kpi: dossier.received}", "panels[0] (alerts): kpi: the alerts panel does not take it"},
		{"unknown field", head + "  - {kind: tile, kpi: dossier.received, window: today, colour: red}", "field colour not found"},
		{"list unknown", head + "  - {kind: list, list: dossier.late}", "panels[0] (list): list: unknown list \"dossier.late\" (one of dossier.overdue"},
		{"list missing", head + "  - {kind: list}", "panels[0] (list): list: required"},
		{"ranking order", head + "  - {kind: ranking, kpi: dossier.overdue_rate, window: month, order: up}", "order: \"up\" is neither asc nor desc"},
		{"ranking limit", head + "  - {kind: ranking, kpi: dossier.overdue_rate, window: month, limit: 500}", "limit: 500; give 1 to 200"},
		{"size", head + "  - {kind: alerts, size: 4}", "panels[0] (alerts): size: 4 grid columns"},
		{"rows", head + "  - {kind: alerts, rows: 7}", "panels[0] (alerts): rows: 7 grid rows"},
		{"empty map", head + "  - {kind: map}", "a map draws something"},
		{"map window without kpi", head + "  - {kind: map, cameras: true, window: month}", "window: only with kpi"},
		{"panel title without vi", head + "  - {kind: alerts, title: {en: Alerts}}", "title: give at least vi"},
		{"unit unknown", strings.Replace(head, `"79"`, `"00000"`, 1) + "  - {kind: alerts}", "unit: \"00000\" is not a known unit"},
		{"unit missing", strings.Replace(head, `unit: "79"`, "", 1) + "  - {kind: alerts}", "unit: a unit code, or token"},
		{"unit_kind without unit token", strings.Replace(head, "panels:", "unit_kind: ward\npanels:", 1) + "  - {kind: alerts}", "unit_kind: only with unit: token"},
		{"unit_kind unknown", "id: x\nkind: wall\ntitle: {vi: X, en: X}\nunit: token\nunit_kind: planet\npanels:\n  - {kind: alerts}", "unit_kind: \"planet\" is not a unit kind"},
		{"tablet of a fixed unit", strings.Replace(head, "kind: wall", "kind: tablet", 1) + "  - {kind: alerts}", "a tablet shows the unit of its leader's token"},
		{"dashboard kind", strings.Replace(head, "kind: wall", "kind: poster", 1) + "  - {kind: alerts}", "kind: \"poster\" is neither wall nor tablet"},
		{"no title en", strings.Replace(head, "en: X", "", 1) + "  - {kind: alerts}", "title: give both vi and en"},
		{"no panels", head, "panels: none"},
		{"id with a colon", strings.Replace(head, "id: x", "id: a:b", 1) + "  - {kind: alerts}", "id: \"a:b\""},
		{"stale_after", strings.Replace(head, "panels:", "stale_after: soon\npanels:", 1) + "  - {kind: alerts}", "\"soon\" is not a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml), checks())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "dashboard x.yaml: ") {
				t.Fatalf("%v; want an error of x.yaml with %q", err, tc.want)
			}
		})
	}
}

func TestLoadFSRefusesTakenID(t *testing.T) {
	f := "id: x\nkind: wall\ntitle: {vi: X, en: X}\nunit: \"79\"\npanels:\n  - {kind: alerts}\n"
	fsys := fstest.MapFS{"a.yaml": {Data: []byte(f)}, "b.yaml": {Data: []byte(f)}}
	if _, err := LoadFS(fsys, checks()); err == nil || !strings.Contains(err.Error(), `dashboard b.yaml: id "x" is taken`) {
		t.Fatalf("%v", err)
	}
}

func TestStaleAfterJSON(t *testing.T) {
	for d, want := range map[time.Duration]string{15 * time.Minute: `"15m"`, 2 * time.Hour: `"2h"`, 90 * time.Second: `"90s"`} {
		if b, _ := Duration(d).MarshalJSON(); string(b) != want {
			t.Errorf("%v: %s, want %s", d, b, want)
		}
	}
}
