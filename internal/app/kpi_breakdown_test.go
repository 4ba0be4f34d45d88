package app

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/kpi"
)

// Survey rates by officer and by channel: every group sums to the value
// (numerator and denominator), officers carry their names, and the
// endpoint is scoped like the value.
func TestKPIBreakdown(t *testing.T) {
	a, toks := node(t)
	const ward, other = "26740", "26743"
	var officers []string
	for _, o := range a.refs.Set().Officers {
		if o.Unit == ward && len(officers) < 2 {
			officers = append(officers, o.ID)
		}
	}
	if len(officers) < 2 {
		t.Fatalf("ward %s has %d officers in the reference data", ward, len(officers))
	}
	names := map[string]string{}
	for _, o := range a.refs.Set().Officers {
		names[o.ID] = o.Name
	}
	type sv struct{ unit, rating, officer, channel string }
	surveys := []sv{
		{ward, "satisfied", officers[0], "qr"}, {ward, "very_satisfied", officers[0], "qr"},
		{ward, "unsatisfied", officers[0], "kiosk"}, {ward, "satisfied", officers[1], "kiosk"},
		{ward, "neutral", officers[1], "qr"}, {ward, "satisfied", "", "online"},
		{ward, "satisfied", "not-in-reference", ""}, {other, "very_unsatisfied", officers[1], "qr"},
	}
	now := time.Now()
	var events []string
	for i, s := range surveys {
		data := map[string]string{"unit": s.unit, "rating": s.rating, "officer": s.officer}
		if s.channel != "" {
			data["channel"] = s.channel
		}
		d, _ := json.Marshal(data)
		events = append(events, fmt.Sprintf(`{"specversion":"1.0","id":"bd-%d","source":"hcmc/one-stop","type":"vn.ioc.survey.submitted","subject":"bd-%d","time":%q,"data":%s}`,
			i, i, now.Format(time.RFC3339), d))
	}
	code, body := call(t, "POST", a.URL()+"/api/v1/events", toks["ingest"], "application/cloudevents-batch+json", "["+strings.Join(events, ",")+"]")
	if code != 202 || !strings.Contains(body, fmt.Sprintf(`"accepted":%d`, len(surveys))) {
		t.Fatalf("post: %d %s", code, body)
	}
	waitKPI(t, a, toks["analyst"], "survey.count?unit=79&window=today", int64(len(surveys)), int64(len(surveys)))

	type breakdown struct {
		KPI       string      `json:"kpi"`
		By        string      `json:"by"`
		Groups    []kpi.Group `json:"groups"`
		Truncated bool        `json:"truncated"`
		SQL       string      `json:"sql"`
	}
	get := func(token, path string) breakdown {
		t.Helper()
		code, body := call(t, "GET", a.URL()+"/api/v1/kpis/"+path, token, "", "")
		var b breakdown
		if code != 200 || json.Unmarshal([]byte(body), &b) != nil {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return b
	}
	counted := map[string]map[string]bool{ // the ratings each KPI's numerator counts
		"survey.count":            {"very_satisfied": true, "satisfied": true, "neutral": true, "unsatisfied": true, "very_unsatisfied": true},
		"survey.satisfied_rate":   {"very_satisfied": true, "satisfied": true},
		"survey.unsatisfied_rate": {"unsatisfied": true, "very_unsatisfied": true},
	}
	for _, id := range []string{"survey.count", "survey.satisfied_rate", "survey.unsatisfied_rate"} {
		for _, unit := range []string{"79", ward} {
			var num, den int64
			for _, s := range surveys {
				if unit == ward && s.unit != ward {
					continue
				}
				den++
				if counted[id][s.rating] {
					num++
				}
			}
			v := waitKPI(t, a, toks["analyst"], id+"?unit="+unit+"&window=today", num, den)
			for _, by := range []string{"officer", "channel"} {
				b := get(toks["analyst"], id+"/breakdown?unit="+unit+"&window=today&by="+by)
				var num, den int64
				for i, g := range b.Groups {
					num += g.Numerator
					den += g.Denominator
					if i > 0 && g.Denominator > b.Groups[i-1].Denominator {
						t.Errorf("%s by %s: groups not by denominator: %+v", id, by, b.Groups)
					}
					if by == "officer" && g.Name != names[g.Key] {
						t.Errorf("%s by officer: %q named %q, want %q", id, g.Key, g.Name, names[g.Key])
					}
				}
				if b.Truncated || num != v.Numerator || den != v.Denominator || len(b.Groups) < 3 {
					t.Errorf("%s by %s over %s: groups sum to %d/%d (%d groups), the value is %d/%d", id, by, unit, num, den, len(b.Groups), v.Numerator, v.Denominator)
				}
				// The SQL returned gives the same groups in ClickHouse.
				rows, err := a.DB().Conn.Query(t.Context(), b.SQL)
				if err != nil {
					t.Fatalf("%v\n%s", err, b.SQL)
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if n != len(b.Groups) {
					t.Errorf("%s by %s: the SQL gives %d rows, the API %d groups", id, by, n, len(b.Groups))
				}
			}
		}
	}
	// The satisfied rate of the first officer in the ward: 2 of 3.
	b := get(toks["analyst"], "survey.satisfied_rate/breakdown?unit="+ward+"&window=today&by=officer")
	if g := b.Groups[0]; g.Key != officers[0] || g.Numerator != 2 || g.Denominator != 3 {
		t.Errorf("first group %+v, want %s with 2 of 3", g, officers[0])
	}
	if b := get(toks["analyst"], "survey.count/breakdown?unit=79&window=today&by=channel&limit=2"); len(b.Groups) != 2 || !b.Truncated {
		t.Errorf("limit 2: %d groups, truncated %v", len(b.Groups), b.Truncated)
	}

	// Detections per minute by kind (KPIS.md): the kinds' rates sum to the
	// value, and the SQL reads the span of camera_events, not its history.
	cam := a.refs.Set().Cameras[0]
	kinds := []string{"congestion", "congestion", "congestion", "flooding", "flooding", "vehicle_count"}
	events = nil
	for i, kind := range kinds {
		events = append(events, fmt.Sprintf(`{"specversion":"1.0","id":"bd-det-%d","source":"hcmc/cameras","type":"vn.ioc.camera.detection","subject":%q,"time":%q,"data":{"kind":%q}}`,
			i, cam.ID, now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339), kind))
	}
	camToken, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleIngest, Source: "hcmc/cameras"}, "cams", time.Hour)
	if code, body := call(t, "POST", a.URL()+"/api/v1/events", camToken, "application/cloudevents-batch+json", "["+strings.Join(events, ",")+"]"); code != 202 {
		t.Fatalf("post detections: %d %s", code, body)
	}
	v := waitKPI(t, a, toks["analyst"], "camera.detections_per_min?unit="+cam.Unit+"&window=today", int64(len(kinds)), int64(len(kinds)))
	b = get(toks["analyst"], "camera.detections_per_min/breakdown?unit="+cam.Unit+"&window=today&by=kind")
	// Each kind's rate is its detections over the same minutes of the
	// window (those passed when the breakdown was computed).
	want := map[string]int64{"congestion": 3, "flooding": 2, "vehicle_count": 1}
	var total int64
	minutes := 0.0
	for _, g := range b.Groups {
		total += g.Numerator
		if g.Numerator != want[g.Key] || g.Value == nil || *g.Value <= 0 {
			t.Errorf("kind %s: %d detections (%v a minute), want %d", g.Key, g.Numerator, g.Value, want[g.Key])
			continue
		}
		m := float64(g.Numerator) / *g.Value
		if minutes != 0 && math.Abs(m-minutes) > 1e-6*minutes {
			t.Errorf("kind %s: a rate over %v minutes, another kind's over %v", g.Key, m, minutes)
		}
		minutes = m
	}
	if len(b.Groups) != len(want) || total != v.Numerator {
		t.Errorf("by kind: %+v, %d detections in all; the value counts %d", b.Groups, total, v.Numerator)
	}
	if !strings.Contains(b.SQL, ".camera_events FINAL WHERE type = 'detection' AND time >= ") {
		t.Errorf("the breakdown does not read the span of camera_events:\n%s", b.SQL)
	}

	leader, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: other}, "chair", time.Hour)
	if b := get(leader, "survey.count/breakdown?by=officer"); len(b.Groups) != 1 || b.Groups[0].Denominator != 1 {
		t.Errorf("leader of %s: %+v", other, b.Groups)
	}
	wall, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city"}, "wall-1", time.Hour)
	checkKPICalls(t, a, []kpiCall{
		{"a wall, for a KPI its dashboard shows", wall, "survey.satisfied_rate/breakdown?unit=79&window=month&by=officer", 403, "forbidden"},
		{"leader of another unit", leader, "survey.count/breakdown?unit=" + ward + "&by=officer", 403, "outside the subtree of unit " + other},
		{"unknown by", toks["analyst"], "survey.count/breakdown?by=colour", 400, `by \"colour\"`},
		{"no by", toks["analyst"], "survey.count/breakdown", 400, "by is required"},
		{"kpi without breakdowns", toks["analyst"], "dossier.received/breakdown?by=officer", 400, "by: dossier.received has no breakdowns"},
		{"limit", toks["analyst"], "survey.count/breakdown?by=officer&limit=1001", 400, "limit"},
		{"unknown kpi", toks["analyst"], "survey.nope/breakdown?by=officer", 404, "unknown kpi"},
	})
}

// kpiCall is a GET under /api/v1/kpis/ and what it must answer.
type kpiCall struct {
	name, token, path string
	code              int
	want              string // in the body
}

func checkKPICalls(t *testing.T, a *App, calls []kpiCall) {
	t.Helper()
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "GET", a.URL()+"/api/v1/kpis/"+tc.path, tc.token, "", "")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
}
