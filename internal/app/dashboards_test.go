package app

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/dashboards"
	"github.com/vn-ioc/ioc/internal/auth"
)

// What each token may open and read of the dashboards, and every denial of
// the scopes the dashboards derive, on REST and on the websocket.
func TestDashboardScopes(t *testing.T) {
	a, toks := node(t)
	issue := func(c auth.Claims) string {
		tok, err := a.Tokens.Issue(c, "t", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	city := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city"})
	ward := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "ward", Unit: "26740"})
	wardNoUnit := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "ward"})
	commune := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "ward", Unit: "25777"}) // Xã Dầu Tiếng
	wardOfCity := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "ward", Unit: "79"})
	cityOfWard := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city", Unit: "26740"})
	tabletWall := issue(auth.Claims{Role: auth.RoleWall, Dashboard: "tablet", Unit: "26740"})
	leader := issue(auth.Claims{Role: auth.RoleLeader, Unit: "26740"})
	cityLeader := issue(auth.Claims{Role: auth.RoleLeader, Unit: "79"})
	an := toks["analyst"]

	list := func(token string) []string {
		code, body := call(t, "GET", a.URL()+"/api/v1/dashboards", token, "", "")
		var r struct {
			Dashboards []struct{ ID, Kind, Unit string } `json:"dashboards"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("dashboards: %d %s", code, body)
		}
		var ids []string
		for _, d := range r.Dashboards {
			ids = append(ids, d.ID)
		}
		return ids
	}
	for name, tc := range map[string]struct {
		token string
		want  []string
	}{
		"city wall": {city, []string{"city"}}, "ward wall": {ward, []string{"ward"}}, "ward leader": {leader, []string{"tablet", "ward"}},
		"city leader": {cityLeader, []string{"city", "tablet", "ward"}}, "analyst": {an, []string{"city", "tablet", "ward"}},
	} {
		if got := list(tc.token); !slices.Equal(got, tc.want) {
			t.Errorf("%s opens %v, want %v", name, got, tc.want)
		}
	}
	code, body := call(t, "GET", a.URL()+"/api/v1/dashboards/ward", ward, "", "")
	var d struct {
		ID, Kind, Unit, UnitName string
		StaleAfter               string `json:"stale_after"`
		Panels                   []struct{ Kind, KPI, Window string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil || d.ID != "ward" || d.Unit != "26740" || d.StaleAfter != "15m" ||
		!strings.Contains(body, `"unit_name":"Phường Sài Gòn"`) || len(d.Panels) == 0 || d.Panels[0].Kind != "tile" {
		t.Fatalf("ward dashboard: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, token, path string
		code              int
		want              string
	}{
		// The city wall reads what its panels declare, and nothing else.
		{"city wall ranking", city, "kpis/dossier.overdue_rate/ranking?window=month", 200, `"unit":"79"`},
		{"city wall instant ranking", city, "kpis/feedback.overdue_open/ranking", 200, `"window":"now"`},
		{"city wall map", city, "map", 200, `"cameras":[`},
		{"city wall map of a ward", city, "map?unit=26740", 200, `"unit":"26740"`},
		{"city wall sparkline series", city, "kpis/dossier.on_time_rate/series?window=30d&step=day", 200, `"points"`},
		{"city wall tile series", city, "kpis/dossier.received/series?window=today", 403, "does not show a series of dossier.received over window today"},
		{"city wall ranking of a tile", city, "kpis/dossier.on_time_rate/ranking?window=month", 403, "dashboard city does not rank units by dossier.on_time_rate over window month"},
		{"city wall ranking other window", city, "kpis/dossier.overdue_rate/ranking?window=ytd", 403, "does not show dossier.overdue_rate over window ytd"},
		{"city wall undeclared kpi", city, "kpis/feedback.rating_avg?window=month", 403, "does not show"},
		{"city wall own dashboard", city, "dashboards/city", 200, `"unit_name":"Thành phố Hồ Chí Minh"`},
		{"city wall other dashboard", city, "dashboards/ward", 403, "this wall token shows dashboard city, not ward"},
		{"city wall unknown dashboard", city, "dashboards/nowhere", 404, "no dashboard nowhere"},
		{"city wall of another unit", cityOfWard, "kpis/dossier.overdue_open", 403, "the token names unit 26740 but dashboard city is of unit 79"},
		// The ward wall, within its ward.
		{"ward wall tile", ward, "kpis/dossier.received?window=today", 200, `"unit":"26740"`},
		{"ward wall of a commune", commune, "dashboards/ward", 200, `"unit_name":"Xã Dầu Tiếng"`},
		{"ward wall compare", ward, "kpis/dossier.received?from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z", 200, `"window":"custom"`},
		{"ward wall other ward", ward, "kpis/dossier.received?window=today&unit=25747", 403, "outside the subtree of unit 26740"},
		{"ward wall the city", ward, "kpis/dossier.received?window=today&unit=79", 403, "outside the subtree"},
		{"ward wall map", ward, "map", 200, `"unit":"26740"`},
		{"ward wall map of the city", ward, "map?unit=79", 403, "outside the subtree of unit 26740"},
		{"ward wall ranking", ward, "kpis/dossier.received/ranking?window=today", 403, "dashboard ward does not rank units"},
		{"ward wall undeclared list", ward, "lists/dossier.due_soon", 403, "does not show the list"},
		{"ward wall alerts", ward, "alerts", 200, `"unit":"26740"`},
		{"ward wall other unit of its dashboard", ward, "dashboards/ward?unit=25747", 403, "for unit 26740, not 25747"},
		{"ward wall without a unit", wardNoUnit, "kpis/dossier.overdue_open", 403, "shown for the unit of its token, and this token names none"},
		{"ward wall of the city", wardOfCity, "kpis/dossier.overdue_open", 403, "unit 79 is a city; dashboard ward is shown for a ward, commune or special_zone"},
		{"wall token of a tablet", tabletWall, "dashboards/tablet", 403, "dashboard tablet is a tablet"},
		// Leaders, within their subtree.
		{"leader own map", leader, "map", 200, `"unit":"26740"`},
		{"leader map elsewhere", leader, "map?unit=25747", 403, "outside the subtree of unit 26740"},
		{"leader ranking of the city", leader, "kpis/survey.count/ranking?unit=79", 403, "outside the subtree"},
		{"leader ranking of its ward", leader, "kpis/survey.count/ranking", 200, `"rows":[]`},
		{"leader tablet", leader, "dashboards/tablet", 200, `"unit":"26740"`},
		{"leader ward wall", leader, "dashboards/ward", 200, `"unit":"26740"`},
		{"leader ward wall elsewhere", leader, "dashboards/ward?unit=25747", 403, "outside the subtree"},
		{"leader city wall", leader, "dashboards/city", 403, "unit 79 is outside the subtree of unit 26740"},
		{"city leader ward wall", cityLeader, "dashboards/ward?unit=25747", 200, `"unit":"25747"`},
		// Analysts: everything, for a unit of the right kind.
		{"analyst ward wall without unit", an, "dashboards/ward", 400, "unit 79 is a city; dashboard ward is shown for a ward, commune or special_zone: give unit= of a ward, commune or special_zone"},
		{"analyst ward wall", an, "dashboards/ward?unit=25747", 200, `"unit":"25747"`},
		{"analyst city wall of a ward", an, "dashboards/city?unit=26740", 400, "dashboard city is of unit 79"},
		{"analyst unknown unit map", an, "map?unit=00000", 404, "unknown unit 00000"},
		{"ingest", toks["ingest"], "dashboards", 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "GET", a.URL()+"/api/v1/"+tc.path, tc.token, "", "")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	// On the websocket: want is the error, "" a subscription.
	for _, tc := range []struct{ name, token, channel, want string }{
		{"city wall ranking of a tile", city, "ranking:dossier.on_time_rate:79:month", "does not rank units by dossier.on_time_rate"},
		{"city wall series of a tile", city, "series:dossier.received:79:today:hour", "does not show a series"},
		{"ward wall map of the city", ward, "map:79", "outside the subtree of unit 26740"},
		{"ward wall ranking", ward, "ranking:dossier.received:26740:today", "does not rank"},
		{"ward wall other ward", ward, "kpi:dossier.received:25747:today", "outside the subtree"},
		{"leader ranking of the city", leader, "ranking:survey.count:79:today", "outside the subtree of unit 26740"},
		{"leader map elsewhere", leader, "map:25747", "outside the subtree"},
		{"unknown unit map", an, "map:00000", "unknown unit 00000"},
		{"malformed ranking", an, "ranking:survey.count:79", "is not ranking:<kpi>:<unit>:<window>"},
		{"malformed map", an, "map:79:x", "is not map:<unit>"},
		{"composite ranking", an, "ranking:score766.total:79:month", "is a composite"},
		{"city wall ranking", city, "ranking:dossier.overdue_rate:79:month", ""},
		{"city wall map", city, "map:79", ""},
		{"ward wall map", ward, "map:26740", ""},
		{"ward wall tile", ward, "kpi:dossier.received:26740:today", ""},
	} {
		t.Run("ws "+tc.name, func(t *testing.T) {
			c := dialWS(t, a, tc.token)
			next(t, c, "welcome")
			m := subscribe(t, c, tc.channel, nil)
			if tc.want == "" && m.Type != "subscribed" || tc.want != "" && (m.Type != "error" || !strings.Contains(m.Message, tc.want)) {
				t.Fatalf("%+v; want %q (empty: subscribed)", m, tc.want)
			}
		})
	}
	// A wall token that cannot resolve its unit cannot connect.
	c := dialWS(t, a, wardNoUnit)
	if m := next(t, c, "error", "welcome"); m.Type != "error" || !strings.Contains(m.Message, "names none") {
		t.Fatalf("%+v", m)
	}
}

// A wall reads the layers of the map its dashboard's map panels draw, and
// no other: a choropleth alone reads neither cameras nor tickets, a map of
// cameras no tickets (on REST they are left out; on the websocket the
// channel of the layers it draws is the one it may follow).
func TestMapLayersOfAWall(t *testing.T) {
	a, _ := node(t)
	token := map[string]string{}
	for id, layers := range map[string]string{"cams": ", cameras: true", "choro": ""} {
		y := "id: " + id + "\nkind: wall\ntitle: {vi: x, en: x}\nunit: \"79\"\npanels:\n  - {kind: map, kpi: dossier.overdue_rate, window: month" + layers + "}\n"
		d, err := dashboards.Parse(id+".yaml", []byte(y), DashboardChecks(a.kpiCat, a.unitKind))
		if err != nil {
			t.Fatal(err)
		}
		a.dashboards[id] = d
		if token[id], err = a.Tokens.Issue(auth.Claims{Role: auth.RoleWall, Dashboard: id}, "wall-"+id, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	code, body := call(t, "GET", a.URL()+"/api/v1/map", token["cams"], "", "")
	var m mapResult
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || len(m.Cameras) == 0 || len(m.Tickets) != 0 || m.TicketsTotal != 0 {
		t.Fatalf("map of cameras: %d %.300s", code, body)
	}
	if code, body := call(t, "GET", a.URL()+"/api/v1/map", token["choro"], "", ""); code != 403 || !strings.Contains(body, "draws neither cameras nor tickets") {
		t.Fatalf("choropleth: %d %s", code, body)
	}
	for _, tc := range []struct{ token, channel, want string }{
		{token["cams"], "map:79", "draws no tickets"},
		{token["cams"], "map:79:tickets", "draws no tickets"},
		{token["cams"], "map:79:cameras", ""},
		{token["choro"], "map:79:cameras", "draws no cameras"},
	} {
		c := dialWS(t, a, tc.token)
		next(t, c, "welcome")
		s := subscribe(t, c, tc.channel, nil)
		if tc.want == "" && s.Type != "subscribed" || tc.want != "" && (s.Type != "error" || !strings.Contains(s.Message, tc.want)) {
			t.Fatalf("%s: %+v; want %q (empty: subscribed)", tc.channel, s, tc.want)
		}
		if tc.want == "" {
			if s := next(t, c, "snapshot"); json.Unmarshal(s.Data, &m) != nil || len(m.Cameras) == 0 || len(m.Tickets) != 0 {
				t.Fatalf("snapshot of %s: %s", tc.channel, s.Data)
			}
		}
	}
}
