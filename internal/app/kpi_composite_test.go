package app

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/testenv"
)

// The Decision 766 total of the city today from dossiers sent through the
// node and a few indicator.reported figures, worked out by hand; every
// component is listed with its source, the missing ones with 0 points.
func TestScore766ThroughTheNode(t *testing.T) {
	a, toks := node(t)
	const ward = "26740"
	now := time.Now()
	due := now.Add(72 * time.Hour).Format(time.RFC3339)
	var evs []string
	for i, ch := range []string{"online", "online", "counter", "postal"} {
		evs = append(evs, event("dossier.received", fmt.Sprintf("sc-%d", i), now,
			fmt.Sprintf(`{"procedure_code":"TP-001","channel":%q,"unit":%q,"due_at":%q}`, ch, ward, due)))
	}
	evs = append(evs,
		event("dossier.synced", "sc-0", now, `{"portal":"national"}`),                    // sync 1/4: 6 × 0.25 = 1.5
		event("dossier.digitized", "sc-0", now, `{"components":2}`),                      // digitized 2/4: 4 × 0.5 = 2
		event("dossier.digitized", "sc-1", now, `{"components":1}`),                      //
		event("dossier.paid", "sc-0", now, `{"amount":50000,"method":"online"}`),         // paid online 1/2: 6 × 0.5 = 3
		event("dossier.paid", "sc-1", now, `{"amount":50000,"method":"counter"}`),        //
		event("dossier.resolved", "sc-0", now, `{"outcome":"approved","e_result":true}`), // e-result 1/2: 6 × 0.5 = 3
		event("dossier.resolved", "sc-1", now, `{"outcome":"approved"}`),
	) // online 2/4 = 0.5, full at 0.5: 4
	year := now.In(a.kpiBuilder.Loc).Format("2006")
	report := func(code, period string, value float64, measure string) string {
		return event("indicator.reported", code, now, fmt.Sprintf(`{"unit":"79","period":%q,"value":%v,"measure":%q}`, period, value, measure))
	}
	evs = append(evs,
		report("766.procedures_published_on_time", year, 100, "percent"), // 6
		report("766.dossiers_on_time", year, 0.9, "ratio"),               // 20 × 0.9 = 18
		report("766.dossier_satisfaction", year, 0.95, ""),               // full at 0.9: 6
		report("766.feedback_satisfaction", "2020", 1, ""),               // another period: missing
	)
	postEvents(t, a, toks["ingest"], evs...)
	waitKPI(t, a, toks["analyst"], "dossier.e_result_rate?unit=79&window=today", 1, 2)
	waitKPI(t, a, toks["analyst"], "dossier.online_payment_rate?unit=79&window=today", 1, 2)

	var v struct {
		KPI     string  `json:"kpi"`
		Value   float64 `json:"value"`
		Max     float64 `json:"max"`
		Version int     `json:"version"`
		Rating  struct {
			Name struct{ VI string } `json:"name"`
		} `json:"rating"`
		Groups []struct {
			ID         string  `json:"id"`
			Points     float64 `json:"points"`
			Indicators []struct {
				ID       string   `json:"id"`
				KPI      string   `json:"kpi"`
				Reported string   `json:"reported"`
				Score    float64  `json:"score"`
				Rate     *float64 `json:"rate"`
				Period   string   `json:"period"`
				Missing  bool     `json:"missing"`
			} `json:"indicators"`
		} `json:"groups"`
		Missing []string `json:"missing"`
	}
	// The reported figures and the dossiers are in once the total is.
	want := 1.5 + 6 + 18 + 4 + 3 + 3 + 2 + 6
	var body string
	testenv.Eventually(t, time.Minute, "score766.total", func() (bool, error) {
		var code int
		code, body = call(t, "GET", a.URL()+"/api/v1/kpis/score766.total?unit=79&window=today", toks["analyst"], "", "")
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
			return false, fmt.Errorf("%d %s", code, body)
		}
		return math.Abs(v.Value-want) < 1e-9, fmt.Errorf("%s", body)
	})
	if math.Abs(v.Value-want) > 1e-9 || v.Max != 100 || v.KPI != "score766.total" || v.Version != 1 || v.Rating.Name.VI != "yếu" {
		t.Fatalf("total %v, want %v: %s", v.Value, want, body)
	}
	seen := map[string]bool{}
	for _, g := range v.Groups {
		for _, ind := range g.Indicators {
			seen[g.ID+"."+ind.ID] = true
			if ind.KPI == "" && ind.Reported == "" || ind.Missing != (ind.Rate == nil) || ind.Missing && ind.Score != 0 {
				t.Errorf("%s.%s: %+v", g.ID, ind.ID, ind)
			}
			if ind.Reported != "" && !ind.Missing && ind.Period != year {
				t.Errorf("%s.%s: period %q, want %s", g.ID, ind.ID, ind.Period, year)
			}
		}
	}
	if len(seen) != 21 || len(v.Missing) != 21-8 || !strings.Contains(body, `"satisfaction.feedback_satisfaction"`) {
		t.Errorf("%d indicators, missing %v", len(seen), v.Missing)
	}
	code, body := call(t, "GET", a.URL()+"/api/v1/kpis/score766.online_services?unit=79&window=today", toks["analyst"], "", "")
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Value != 4 || v.Max != 12 {
		t.Errorf("online services: %d %s", code, body)
	}
	code, body = call(t, "GET", a.URL()+"/api/v1/kpis/dti.digital_government?unit=79&window=today", toks["analyst"], "", "")
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || math.Abs(v.Value-(40*0.5+40*0.5+40*0.5)) > 1e-9 || v.Max != 200 {
		t.Errorf("dti digital government: %d %s", code, body)
	}

	// Live: the total over the websocket equals REST, and moves when a
	// component does (a third dossier paid online: 2/3 × 6 = 4 points).
	c := dialWS(t, a, toks["analyst"])
	next(t, c, "welcome")
	const ch = "kpi:score766.total:79:today"
	if m := subscribe(t, c, ch, nil); m.Type != "subscribed" {
		t.Fatalf("subscribe %s: %+v", ch, m)
	}
	var live struct {
		Value float64 `json:"value"`
		Max   float64 `json:"max"`
		Seq   uint64  `json:"seq"`
	}
	snap := next(t, c, "snapshot")
	if json.Unmarshal(snap.Data, &live) != nil || math.Abs(live.Value-want) > 1e-9 || live.Max != 100 || live.Seq != snap.Seq {
		t.Fatalf("snapshot of %s: %s, want the REST total %v", ch, snap.Data, want)
	}
	postEvents(t, a, toks["ingest"], event("dossier.paid", "sc-2", now, `{"amount":50000,"method":"online"}`))
	up := next(t, c, "update")
	if json.Unmarshal(up.Data, &live) != nil || math.Abs(live.Value-(want+1)) > 1e-9 || up.Seq <= snap.Seq {
		t.Fatalf("update of %s: %s, want %v", ch, up.Data, want+1)
	}

	leader, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: ward}, "chair", time.Hour)
	checkKPICalls(t, a, []kpiCall{
		{"leader of the ward", leader, "score766.total?unit=" + ward, 200, `"unit":"` + ward + `"`},
		{"leader, the city", leader, "score766.total?unit=79", 403, "outside the subtree"},
		{"sql", toks["analyst"], "score766.total/sql?unit=79", 400, "explained by its components"},
		{"series", toks["analyst"], "dti.total/series?unit=79", 400, "explained by its components"},
		{"now", toks["analyst"], "dti.total?window=now", 400, "counted over a window"},
		{"unknown group", toks["analyst"], "score766.nope", 404, "unknown kpi"},
	})
}
