package app

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type rankingResult struct {
	KPI    string `json:"kpi"`
	Unit   string `json:"unit"`
	Window string `json:"window"`
	Seq    uint64 `json:"seq"`
	Rows   []struct {
		Unit        string   `json:"unit"`
		Name        string   `json:"name"`
		Value       *float64 `json:"value"`
		Numerator   int64    `json:"numerator"`
		Denominator int64    `json:"denominator"`
	} `json:"rows"`
}

func (r rankingResult) row(unit string) (int, bool) {
	for i, row := range r.Rows {
		if row.Unit == unit {
			return i, true
		}
	}
	return 0, false
}

// A ranking gives each ward of the city the value GET /kpis/{kpi} gives
// it, highest first; a ward has no children to rank; the ranking channel
// follows the published values.
func TestRanking(t *testing.T) {
	a, toks := node(t)
	an := toks["analyst"]
	const top, bottom = "26740", "25747"
	now := time.Now()
	postEvents(t, a, toks["ingest"], survey("RANK-1", top, "satisfied", now), survey("RANK-2", bottom, "unsatisfied", now),
		survey("RANK-3", bottom, "satisfied", now))
	waitKPI(t, a, an, "survey.satisfied_rate?unit="+bottom+"&window=month", 1, 2)
	waitKPI(t, a, an, "survey.satisfied_rate?unit="+top+"&window=month", 1, 1)

	start := time.Now()
	code, body := call(t, "GET", a.URL()+"/api/v1/kpis/survey.satisfied_rate/ranking?window=month", an, "", "")
	took := time.Since(start)
	var r rankingResult
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("ranking: %d %s", code, body)
	}
	t.Logf("ranking of the %d wards of the city: %v", len(r.Rows), took)
	if r.KPI != "survey.satisfied_rate" || r.Unit != "79" || r.Window != "month" || len(r.Rows) != 168 {
		t.Fatalf("ranking %s/%s/%s with %d rows, want the 168 wards of 79", r.KPI, r.Unit, r.Window, len(r.Rows))
	}
	// Highest first, units without a value last.
	if r.Rows[0].Unit != top || *r.Rows[0].Value != 1 || r.Rows[1].Unit != bottom || *r.Rows[1].Value != 0.5 || r.Rows[2].Value != nil {
		t.Fatalf("order: %s", body)
	}
	for i, row := range r.Rows {
		if strings.HasPrefix(row.Unit, "L-") || row.Unit == "SO-TP" || row.Name == "" {
			t.Fatalf("row %d %+v: a legacy unit or department, or no name", i, row)
		}
		if i > 2 && r.Rows[i-1].Value == nil && row.Unit < r.Rows[i-1].Unit {
			t.Fatalf("ties not by unit code at %d", i)
		}
		// Each row is the child's value as GET /kpis/{kpi} gives it.
		_, vb := call(t, "GET", a.URL()+"/api/v1/kpis/survey.satisfied_rate?window=month&unit="+row.Unit, an, "", "")
		var v kpiVal
		if err := json.Unmarshal([]byte(vb), &v); err != nil || v.Numerator != row.Numerator || v.Denominator != row.Denominator ||
			(v.Value == nil) != (row.Value == nil) || (v.Value != nil && *v.Value != *row.Value) {
			t.Fatalf("row %+v, GET /kpis gives %s", row, vb)
		}
	}
	code, body = call(t, "GET", a.URL()+"/api/v1/kpis/survey.satisfied_rate/ranking?window=month&unit="+top, an, "", "")
	if code != 200 || !strings.Contains(body, `"rows":[]`) {
		t.Fatalf("ward ranking: %d %s", code, body)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"composite", "score766.total/ranking?window=month", "is a composite"},
		{"custom", "survey.count/ranking?from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z", "standard window"},
		{"instant over a window", "dossier.overdue_open/ranking?window=month", "its only window is now"},
	} {
		if code, body := call(t, "GET", a.URL()+"/api/v1/kpis/"+tc.path, an, "", ""); code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want 400 with %q", tc.name, code, body, tc.want)
		}
	}

	// Live: a new survey of the bottom ward moves it.
	c := dialWS(t, a, an)
	next(t, c, "welcome")
	ch := "ranking:survey.satisfied_rate:79:month"
	if m := subscribe(t, c, ch, nil); m.Type != "subscribed" {
		t.Fatalf("subscribe: %+v", m)
	}
	m := next(t, c, "snapshot")
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Seq != m.Seq || m.Seq == 0 || len(r.Rows) != 168 {
		t.Fatalf("snapshot %+v", m)
	}
	postEvents(t, a, toks["ingest"], survey("RANK-4", bottom, "satisfied", now))
	for {
		m = next(t, c, "update")
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Seq != m.Seq {
			t.Fatalf("update %+v", m)
		}
		if i, ok := r.row(bottom); ok && r.Rows[i].Numerator == 2 && r.Rows[i].Denominator == 3 {
			break
		}
	}
}
