package kpi

import (
	"math"
	"strings"
	"testing"
	"time"
)

func rate(v float64) Rate { return Rate{Value: &v} }

// The Decision 766 total from given component rates, worked out by hand
// from score766.yaml.
func TestScore766ByHand(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := cat.Composite("score766.total")
	if !ok {
		t.Fatal("no score766.total")
	}
	rates := map[string]Rate{
		"dossier.sync_rate":                   rate(0.5),  // transparency 6 × 0.5 = 3
		"766.procedures_published_on_time":    rate(1),    // transparency 6
		"766.dossiers_on_time":                rate(0.95), // progress 20 × 0.95 = 19
		"766.procedures_online":               rate(0.4),  // online services 4 × 0.4 / 0.8 = 2
		"dossier.online_rate":                 rate(0.6),  // online services 4, full at 0.5
		"dossier.online_payment_rate":         rate(0.25), // payment 6 × 0.25 = 1.5
		"dossier.e_result_rate":               rate(1),    // digitization 6
		"dossier.digitization_rate":           rate(0.5),  // digitization 4 × 0.5 = 2
		"feedback.on_time_rate":               rate(0.9),  // satisfaction 6 × 0.9 = 5.4
		"766.communes_e_certified_copies":     {},         // reported without a value: missing
		"766.procedures_updated_on_time_typo": rate(1),    // not an indicator: ignored
	}
	v, err := sc.Score("total", rates)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 + 6 + 19 + 2 + 4 + 1.5 + 6 + 2 + 5.4; math.Abs(v.Value-want) > 1e-9 || v.Max != 100 {
		t.Errorf("total %v of %v, want %v of 100", v.Value, v.Max, want)
	}
	if v.Rating == nil || v.Rating.Name.VI != "yếu" || !v.Unconfirmed {
		t.Errorf("rating %+v (unconfirmed %v), want yếu, unconfirmed", v.Rating, v.Unconfirmed)
	}
	if len(v.Missing) != 21-9 || !strings.Contains(strings.Join(v.Missing, " "), "digitization.e_certified_copies") {
		t.Errorf("missing %v", v.Missing)
	}
	byGroup := map[string]float64{}
	for _, g := range v.Groups {
		byGroup[g.ID] = g.Points
	}
	for id, want := range map[string]float64{"transparency": 9, "progress": 19, "online_services": 6, "online_payment": 1.5, "digitization": 8, "satisfaction": 5.4} {
		if math.Abs(byGroup[id]-want) > 1e-9 {
			t.Errorf("group %s: %v points, want %v", id, byGroup[id], want)
		}
	}
	g, err := sc.Score("transparency", rates)
	if err != nil || math.Abs(g.Value-9) > 1e-9 || g.Max != 18 || g.Rating != nil || len(g.Groups) != 1 || len(g.Missing) != 2 {
		t.Errorf("score766.transparency: %+v %v", g, err)
	}
	// Every point with every rate at 1.
	full := map[string]Rate{}
	for _, sc := range cat.Scorecards {
		for _, g := range sc.Groups {
			for _, ind := range g.Indicators {
				full[ind.KPI+ind.Reported] = rate(1)
			}
		}
		v, _ := sc.Score("total", full)
		if math.Abs(v.Value-sc.Max) > 1e-9 || len(v.Missing) != 0 {
			t.Errorf("%s with every rate at 1: %v of %v, missing %v", sc.ID, v.Value, sc.Max, v.Missing)
		}
	}
}

func TestScorecardRejects(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	base := `id: card
version: 1
methodology: m
title: {en: C, vi: C}
max: 10
ratings: [{min: 5, name: {en: ok, vi: ok}}, {min: 0, name: {en: low, vi: thấp}}]
groups:
  - id: g
    title: {en: G, vi: G}
    max: 10
    indicators:
      - {id: a, points: 4, kpi: dossier.sync_rate, title: {en: A, vi: A}}
      - {id: b, points: 6, reported: x.b, title: {en: B, vi: B}}
`
	if _, err := parseScorecard([]byte(base), cat); err != nil {
		t.Fatalf("base: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"points do not add up", "points: 6", "points: 5", "add up to 9, not its max 10"},
		{"groups do not add up", "max: 10\nratings", "max: 12\nratings", "groups add up to 10 points, not max 12"},
		{"unknown kpi", "dossier.sync_rate", "dossier.nope", "unknown kpi dossier.nope"},
		{"not a ratio", "dossier.sync_rate", "dossier.received", "is not a ratio"},
		{"both sources", "reported: x.b,", "reported: x.b, kpi: dossier.sync_rate,", "exactly one of kpi and reported"},
		{"full_at", "points: 6,", "points: 6, full_at: 1.5,", "full_at 1.5"},
		{"ratings order", "{min: 0,", "{min: 7,", "highest first"},
		{"a catalog family", "id: card", "id: dossier", "is a family of the catalog"},
		{"unknown field", "methodology: m", "methodology: m\nweight: 2", "field weight not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseScorecard([]byte(strings.Replace(base, tc.from, tc.to, 1)), cat)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestPeriodSpan(t *testing.T) {
	for p, want := range map[string]string{"2024": "2024-01-01 2025-01-01", "2024-Q2": "2024-04-01 2024-07-01", "2024-12": "2024-12-01 2025-01-01"} {
		f, to, ok := periodSpan(p, time.UTC)
		if got := f.Format("2006-01-02") + " " + to.Format("2006-01-02"); !ok || got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	for _, bad := range []string{"2024-Q5", "2024-13", "24", "2024-1"} {
		if _, _, ok := periodSpan(bad, time.UTC); ok {
			t.Errorf("%q read as a period", bad)
		}
	}
}
