package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/alert"
)

// testRules: a satisfaction threshold with hysteresis over today for
// wards, overdue tickets, dossiers due within 8 working hours, flooding.
const testRules = `version: 1
rules:
  - id: sat.low
    kind: threshold
    severity: warning
    title: {en: Satisfaction low, vi: Hài lòng thấp}
    kpi: survey.satisfied_rate
    window: today
    below: 50
    clear: 60
    min_denominator: 2
    unit_kinds: [ward]
  - id: tickets.overdue
    kind: ticket_overdue
    severity: warning
    title: {en: Ticket overdue, vi: Phản ánh quá hạn}
  - id: dossiers.due
    kind: dossier_due
    severity: warning
    title: {en: Dossier due soon, vi: Hồ sơ sắp đến hạn}
    hours: 8
  - id: dossiers.due.kept
    kind: dossier_due
    severity: warning
    title: {en: Dossier due soon (kept when overdue), vi: Hồ sơ sắp đến hạn}
    hours: 8
    keep_overdue: true
  - id: flood
    kind: camera_level
    severity: critical
    title: {en: Flooding, vi: Ngập}
    detection: flooding
    level: 2
    clear_level: 1
`

func alertNode(t *testing.T) (*App, map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return nodeWith(t, func(c *Config) { c.AlertRules = path })
}

// readFeed reads alert feed messages of a channel until one satisfies ok.
func readFeed(t *testing.T, c *websocket.Conn, channel string, ok func(alert.FeedValue) bool) alert.FeedValue {
	t.Helper()
	for {
		m := next(t, c, "snapshot", "update", "error")
		if m.Type == "error" {
			t.Fatalf("error on the websocket: %+v", m)
		}
		var v alert.FeedValue
		if err := json.Unmarshal(m.Data, &v); err != nil || m.Channel != channel {
			t.Fatalf("%s %s: %v: %s", m.Type, m.Channel, err, m.Data)
		}
		if ok(v) {
			return v
		}
	}
}

func feedHas(rule, subject, state string) func(alert.FeedValue) bool {
	return func(v alert.FeedValue) bool {
		for _, a := range v.Alerts {
			if a.Rule == rule && a.Subject == subject && a.State == state {
				return true
			}
		}
		return false
	}
}

func getAlert(t *testing.T, a *App, token, id string) (int, alert.Alert) {
	t.Helper()
	code, body := call(t, "GET", a.URL()+"/api/v1/alerts/"+id, token, "", "")
	var al alert.Alert
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &al); err != nil {
			t.Fatal(err)
		}
	}
	return code, al
}

// An overdue ticket raises an alert that reaches its ward's leader live;
// the leader acknowledges it over the websocket; resolving the ticket
// clears it. Each state is in ClickHouse; other scopes neither see nor
// acknowledge it.
func TestAlertLifecycle(t *testing.T) {
	a, toks := alertNode(t)
	const ward, other = "26740", "25747"
	leader, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: ward}, "chair", time.Hour)
	outsider, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: other}, "other-chair", time.Hour)
	wall, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city"}, "wall-1", time.Hour)

	c := dialWS(t, a, leader)
	next(t, c, "welcome")
	ch := alert.ChannelPrefix + ward
	if m := subscribe(t, c, ch, nil); m.Type != "subscribed" {
		t.Fatalf("subscribe: %+v", m)
	}
	if v := readFeed(t, c, ch, func(alert.FeedValue) bool { return true }); v.Total != 0 || v.Unit != ward {
		t.Fatalf("first snapshot %+v", v)
	}
	wc := dialWS(t, a, wall)
	next(t, wc, "welcome")
	if m := subscribe(t, wc, alert.ChannelPrefix+"79", nil); m.Type != "subscribed" {
		t.Fatalf("wall subscribe: %+v", m)
	}

	now := time.Now().Truncate(time.Second)
	postEvents(t, a, toks["ingest"], event("feedback.received", "ALERT-T1", now.Add(-3*24*time.Hour),
		fmt.Sprintf(`{"channel":"zalo","category":"traffic","unit":%q,"due_at":%q}`, ward, now.Add(-time.Hour).Format(time.RFC3339))))
	v := readFeed(t, c, ch, feedHas("tickets.overdue", "ALERT-T1", alert.StateRaised))
	al := v.Alerts[0]
	if v.Total != 1 || v.BySeverity["warning"] != 1 || al.Unit != ward || al.SubjectKind != "ticket" ||
		!strings.Contains(al.Detail, "traffic") || al.ID == "" {
		t.Fatalf("raised %+v", v)
	}
	readFeed(t, wc, alert.ChannelPrefix+"79", feedHas("tickets.overdue", "ALERT-T1", alert.StateRaised))

	// REST: listed for the ward and the city; refused or hidden elsewhere.
	code, body := call(t, "GET", a.URL()+"/api/v1/alerts?unit="+ward, leader, "", "")
	if code != 200 || !strings.Contains(body, al.ID) {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, token, method, path string
		code                      int
		want                      string
	}{
		{"outsider list", outsider, "GET", "/api/v1/alerts?unit=" + ward, 403, "outside the subtree of unit " + other},
		{"outsider get", outsider, "GET", "/api/v1/alerts/" + al.ID, 404, "no alert"},
		{"outsider ack", outsider, "POST", "/api/v1/alerts/" + al.ID + "/ack", 404, "no alert"},
		{"analyst ack", toks["analyst"], "POST", "/api/v1/alerts/" + al.ID + "/ack", 403, ""},
		{"wall ack", wall, "POST", "/api/v1/alerts/" + al.ID + "/ack", 403, ""},
		{"bad state", toks["analyst"], "GET", "/api/v1/alerts?state=sleeping", 400, "state sleeping"},
		{"bad rule", toks["analyst"], "GET", "/api/v1/alerts?rule=nope", 400, "rule nope"},
		{"bad limit", toks["analyst"], "GET", "/api/v1/alerts?limit=0", 400, "limit 0"},
		{"unknown", toks["admin"], "GET", "/api/v1/alerts/0000000000000000", 404, "no alert"},
		{"analyst city", toks["analyst"], "GET", "/api/v1/alerts?rule=tickets.overdue", 200, al.ID},
		{"rules", wall, "GET", "/api/v1/alerts/rules", 200, `"id":"sat.low"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, tc.method, a.URL()+tc.path, tc.token, "application/json", "")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	oc := dialWS(t, a, outsider)
	next(t, oc, "welcome")
	if m := subscribe(t, oc, ch, nil); m.Type != "error" || !strings.Contains(m.Message, "outside the subtree") {
		t.Fatalf("outsider subscribe: %+v", m)
	}
	_ = oc.WriteJSON(map[string]any{"type": "rpc", "id": "o", "method": "alert.ack", "data": map[string]string{"alert": al.ID}})
	if m := next(t, oc, "rpc", "error"); m.Type != "error" || m.Code != "not_found" {
		t.Fatalf("outsider ack: %+v", m)
	}

	// Acknowledged over the websocket, by whom, with the note.
	_ = c.WriteJSON(map[string]any{"type": "rpc", "id": "ack1", "method": "alert.ack",
		"data": map[string]string{"alert": al.ID, "note": "team sent"}})
	// The answer and the feed's update come in either order.
	var acked alert.Alert
	for seen := 0; seen != 3; {
		m := next(t, c, "rpc", "update", "error")
		switch {
		case m.Type == "error":
			t.Fatalf("ack: %+v", m)
		case m.Type == "rpc":
			if m.ID != "ack1" || json.Unmarshal(m.Data, &acked) != nil {
				t.Fatalf("ack: %+v", m)
			}
			seen |= 1
		default:
			var v alert.FeedValue
			if json.Unmarshal(m.Data, &v) == nil && feedHas("tickets.overdue", "ALERT-T1", alert.StateAcknowledged)(v) {
				seen |= 2
			}
		}
	}
	if acked.State != alert.StateAcknowledged || acked.AckedBy != "chair (leader of unit "+ward+")" || acked.AckNote != "team sent" ||
		acked.AckedAt.IsZero() {
		t.Fatalf("acknowledged %+v", acked)
	}
	code, body = call(t, "POST", a.URL()+"/api/v1/alerts/"+al.ID+"/ack", toks["admin"], "application/json", `{"note":"again"}`)
	if code != 409 || !strings.Contains(body, "acknowledged by chair") {
		t.Fatalf("second ack: %d %s", code, body)
	}

	// Resolved: cleared, out of the feed, every state in ClickHouse.
	postEvents(t, a, toks["ingest"], event("feedback.resolved", "ALERT-T1", now, `{"outcome":"đã xử lý"}`))
	readFeed(t, c, ch, func(v alert.FeedValue) bool { return v.Total == 0 })
	code, got := getAlert(t, a, leader, al.ID)
	if code != 200 || got.State != alert.StateCleared || got.ClearedAt.IsZero() || got.AckedBy != acked.AckedBy ||
		!got.RaisedAt.Equal(al.RaisedAt) || !strings.Contains(got.Detail, "cleared: resolved or closed") {
		t.Fatalf("cleared %d %+v", code, got)
	}
	rows, err := a.DB().Conn.Query(context.Background(), "SELECT state FROM "+a.DB().Table("alert_log")+" WHERE id = ? ORDER BY version", al.ID)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		states = append(states, s)
	}
	rows.Close()
	if strings.Join(states, ",") != "raised,acknowledged,cleared" {
		t.Fatalf("alert_log states %v", states)
	}
	code, body = call(t, "POST", a.URL()+"/api/v1/alerts/"+al.ID+"/ack", leader, "", "")
	if code != 409 || !strings.Contains(body, "cleared at") {
		t.Fatalf("ack of a cleared alert: %d %s", code, body)
	}
}

// A threshold rule raises under its threshold and clears only back at its
// clear level: 0/2 raises, 2/4 (50 %, between threshold and clear level)
// keeps it, 3/5 (60 %) clears it.
func TestAlertThresholdHysteresis(t *testing.T) {
	a, toks := alertNode(t)
	const ward = "26740"
	now := time.Now()
	c := dialWS(t, a, toks["analyst"])
	next(t, c, "welcome")
	ch := alert.ChannelPrefix + ward
	subscribe(t, c, ch, nil)
	postEvents(t, a, toks["ingest"], survey("AS-1", ward, "unsatisfied", now), survey("AS-2", ward, "very_unsatisfied", now))
	v := readFeed(t, c, ch, feedHas("sat.low", ward, alert.StateRaised))
	raised := v.Alerts[0]
	if raised.Value != 0 || raised.Threshold != 50 || !strings.Contains(raised.Detail, "(0 / 2)") {
		t.Fatalf("raised %+v", raised)
	}
	postEvents(t, a, toks["ingest"], survey("AS-3", ward, "satisfied", now), survey("AS-4", ward, "very_satisfied", now))
	waitKPI(t, a, toks["analyst"], "survey.satisfied_rate?unit="+ward+"&window=today", 2, 4)
	postEvents(t, a, toks["ingest"], survey("AS-5", ward, "satisfied", now))
	readFeed(t, c, ch, func(v alert.FeedValue) bool { return v.Total == 0 })
	code, got := getAlert(t, a, toks["analyst"], raised.ID)
	if code != 200 || got.State != alert.StateCleared || !strings.Contains(got.Detail, "back to 60 % (clear level 60 %) over today (3 / 5)") {
		t.Fatalf("cleared %d %+v", code, got)
	}
	code, body := call(t, "GET", a.URL()+"/api/v1/alerts?state=all&rule=sat.low", toks["analyst"], "", "")
	if code != 200 || strings.Count(body, `"rule":"sat.low"`) != 1 {
		t.Fatalf("one occurrence only: %d %s", code, body)
	}
}

// A flooding report at the rule's level raises an alert for the camera's
// ward; a report under the clear level clears it. Every bundled rule's
// query runs on this ClickHouse.
func TestAlertCameraAndBundledQueries(t *testing.T) {
	a, toks := alertNode(t)
	cam := a.refs.Set().Cameras[0]
	now := time.Now().Truncate(time.Second)
	det := func(level int, at time.Time) string {
		return event("camera.detection", cam.ID, at, fmt.Sprintf(`{"kind":"flooding","level":%d}`, level))
	}
	postEvents(t, a, toks["ingest"], det(3, now))
	var id string
	waitFor(t, "the flooding alert", func() bool {
		_, body := call(t, "GET", a.URL()+"/api/v1/alerts?rule=flood&unit="+cam.Unit, toks["analyst"], "", "")
		var r struct{ Alerts []alert.Alert }
		_ = json.Unmarshal([]byte(body), &r)
		if len(r.Alerts) == 1 && r.Alerts[0].Subject == cam.ID && r.Alerts[0].Value == 3 {
			id = r.Alerts[0].ID
			return true
		}
		return false
	})
	postEvents(t, a, toks["ingest"], det(0, now.Add(time.Second)))
	waitFor(t, "the flooding alert cleared", func() bool {
		_, al := getAlert(t, a, toks["analyst"], id)
		return al.State == alert.StateCleared
	})

	rules, err := alert.Load("", a.kpiCat)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules.Rules {
		if r.Kind == alert.KindThreshold {
			continue
		}
		rows, err := a.DB().Conn.Query(context.Background(), r.Query(a.DB().Database(), now, now.Add(time.Hour)))
		if err != nil {
			t.Errorf("rule %s: %v", r.ID, err)
			continue
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Errorf("rule %s: %v", r.ID, err)
		}
		rows.Close()
	}
}

// The dossier_due rule reads the open dossiers the KPI engine keeps in
// kpi_open, then the state of those dossiers and of the subjects of its
// open alerts: a dossier due soon raises an alert, one overdue when first
// seen does not; an alert whose dossier turned overdue is cleared, saying
// so, unless the rule keeps overdue dossiers (keep_overdue), whose alert
// stays open; moving the deadline out of reach or resolving the dossier
// clears it.
func TestAlertDossierDue(t *testing.T) {
	a, toks := alertNode(t)
	const ward = "26740"
	db := a.DB().Database()
	waitFor(t, "the KPI engine's open dossiers", func() bool {
		var gen uint64
		err := a.DB().Conn.QueryRow(context.Background(), "SELECT max(gen) FROM "+db+".kpi_open WHERE family = 'dossier' AND id = ''").Scan(&gen)
		return err == nil && gen > 0
	})
	alertOfRule := func(rule, subject string) *alert.Alert {
		_, body := call(t, "GET", a.URL()+"/api/v1/alerts?rule="+rule+"&state=all", toks["analyst"], "", "")
		var r struct{ Alerts []alert.Alert }
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		for i := range r.Alerts {
			if r.Alerts[i].Subject == subject {
				return &r.Alerts[i]
			}
		}
		return nil
	}
	alertOf := func(subject string) *alert.Alert { return alertOfRule("dossiers.due", subject) }
	stateOf := func(rule, subject string) string {
		if al := alertOfRule(rule, subject); al != nil {
			return al.State
		}
		return ""
	}
	state := func(subject string) string { return stateOf("dossiers.due", subject) }
	dueIn := func(id string) time.Time {
		var due time.Time
		_ = a.DB().Conn.QueryRow(context.Background(), "SELECT due_at FROM "+db+".dossiers WHERE dossier_id = "+query.Quote(id)).Scan(&due)
		return due
	}
	now := time.Now().Truncate(time.Second)
	postEvents(t, a, toks["ingest"],
		dossierReceived("DUE-1", ward, now.Add(-time.Hour), now.Add(time.Hour)),
		dossierReceived("DUE-LATE", ward, now.Add(-48*time.Hour), now.Add(-time.Hour)),
		dossierReceived("DUE-FAR", ward, now.Add(-time.Hour), now.Add(40*24*time.Hour)))
	waitFor(t, "DUE-1 raised", func() bool { return state("DUE-1") == alert.StateRaised })
	if al := alertOf("DUE-1"); al.Unit != ward || al.Value < 0 || al.Value > 1 {
		t.Fatalf("DUE-1 alert %+v: want ward %s and 0 to 1 working hour left", al, ward)
	}

	// DUE-1 overdue: its alert is cleared, that of the rule keeping overdue
	// dossiers stays; a later dossier due soon shows that an evaluation ran
	// after the change.
	postEvents(t, a, toks["ingest"], event("dossier.due_changed", "DUE-1", now, fmt.Sprintf(`{"due_at":%q}`, now.Add(-time.Minute).Format(time.RFC3339))))
	waitFor(t, "DUE-1's new deadline in the view", func() bool { return dueIn("DUE-1").Equal(now.Add(-time.Minute)) })
	postEvents(t, a, toks["ingest"], dossierReceived("DUE-2", ward, now, now.Add(2*time.Hour)))
	waitFor(t, "DUE-2 raised", func() bool { return state("DUE-2") == alert.StateRaised })
	waitFor(t, "DUE-1's alert cleared as overdue", func() bool { return state("DUE-1") == alert.StateCleared })
	if al := alertOf("DUE-1"); !strings.Contains(al.Detail, "cleared: its deadline") || !strings.Contains(al.Detail, "passed: the dossier is overdue") {
		t.Errorf("DUE-1 cleared saying %q", al.Detail)
	}
	if s := stateOf("dossiers.due.kept", "DUE-1"); s != alert.StateRaised {
		t.Fatalf("DUE-1, overdue now, is %q under keep_overdue: its alert must stay open until the dossier is resolved", s)
	}
	for _, id := range []string{"DUE-LATE", "DUE-FAR"} {
		if al := alertOf(id); al != nil {
			t.Fatalf("%s raised an alert: %+v", id, al)
		}
	}

	postEvents(t, a, toks["ingest"],
		event("dossier.due_changed", "DUE-1", now.Add(time.Second), fmt.Sprintf(`{"due_at":%q}`, now.Add(40*24*time.Hour).Format(time.RFC3339))),
		event("dossier.resolved", "DUE-2", now.Add(time.Second), `{"outcome":"approved","officer":"CB-26740-02"}`))
	waitFor(t, "DUE-1 and DUE-2 cleared", func() bool {
		return stateOf("dossiers.due.kept", "DUE-1") == alert.StateCleared && state("DUE-2") == alert.StateCleared &&
			stateOf("dossiers.due.kept", "DUE-2") == alert.StateCleared
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 60s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The hold on the alert rules over REST: set by an admin with a reason and
// an end, read by any reader, refused to others with the field named;
// lifted, the rules are judged at once and an overdue ticket that came in
// under the hold is raised.
func TestAlertHoldAPI(t *testing.T) {
	a, toks := alertNode(t)
	wall, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city"}, "wall-1", time.Hour)
	leader, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: "26740"}, "chair", time.Hour)
	const path = "/api/v1/alerts/hold"
	// The wall's alert feed says when a hold is in force.
	c := dialWS(t, a, wall)
	next(t, c, "welcome")
	if m := subscribe(t, c, alert.ChannelPrefix+"79", nil); m.Type != "subscribed" {
		t.Fatalf("subscribe: %+v", m)
	}
	if v := readFeed(t, c, alert.ChannelPrefix+"79", func(alert.FeedValue) bool { return true }); v.Hold != nil {
		t.Fatalf("a hold in the first snapshot: %+v", v.Hold)
	}
	for _, tc := range []struct {
		name, token, method, body string
		code                      int
		want                      string
	}{
		{"none", wall, "GET", "", 200, `{"held":false}`},
		{"analyst sets", toks["analyst"], "PUT", `{"reason":"x","for":"1h"}`, 403, ""},
		{"leader lifts", leader, "DELETE", "", 403, ""},
		{"no end", toks["admin"], "PUT", `{"reason":"backfill"}`, 400, "for, until: one of them is required"},
		{"both ends", toks["admin"], "PUT", `{"reason":"backfill","for":"1h","until":"2099-01-01T00:00:00Z"}`, 400, "not both"},
		{"bad for", toks["admin"], "PUT", `{"reason":"backfill","for":"soon"}`, 400, `for \"soon\"`},
		{"past", toks["admin"], "PUT", `{"reason":"backfill","until":"2020-01-01T00:00:00Z"}`, 400, "must be in the future"},
		{"too short", toks["admin"], "PUT", `{"reason":"backfill","for":"100ms"}`, 400, "at least 1s ahead"},
		{"too long", toks["admin"], "PUT", `{"reason":"backfill","for":"200h"}`, 400, "at most 168h0m0s ahead"},
		{"no reason", toks["admin"], "PUT", `{"for":"1h"}`, 400, "reason: required"},
		{"bad family", toks["admin"], "PUT", `{"reason":"backfill","for":"1h","families":["tickets"]}`, 400, `families: \"tickets\" is not a family`},
		{"unknown field", toks["admin"], "PUT", `{"reason":"backfill","for":"1h","scope":"79"}`, 400, "unknown field"},
		{"set", toks["admin"], "PUT", `{"reason":"backfill of 2024","for":"1h"}`, 200, `"held":true`},
		{"read", wall, "GET", "", 200, `"reason":"backfill of 2024","by":"admin (admin)"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, tc.method, a.URL()+path, tc.token, "application/json", tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	if v := readFeed(t, c, alert.ChannelPrefix+"79", func(v alert.FeedValue) bool { return v.Hold != nil }); v.Hold.Reason != "backfill of 2024" {
		t.Fatalf("the feed's hold: %+v", v.Hold)
	}
	now := time.Now().Truncate(time.Second)
	postEvents(t, a, toks["ingest"], event("feedback.received", "HOLD-T1", now.Add(-3*24*time.Hour),
		`{"channel":"zalo","category":"traffic","unit":"26740","due_at":"`+now.Add(-time.Hour).Format(time.RFC3339)+`"}`))
	// Stored, committed and counted by the KPI engine: without the hold,
	// its commit's evaluation would raise it now.
	testenv.Eventually(t, 30*time.Second, "HOLD-T1 counted overdue", func() (bool, error) {
		code, body := call(t, "GET", a.URL()+"/api/v1/kpis/feedback.overdue_open?unit=26740&window=now", toks["analyst"], "", "")
		return code == 200 && !strings.Contains(body, `"value":0,`), nil
	})
	time.Sleep(2 * time.Second)
	if _, body := call(t, "GET", a.URL()+"/api/v1/alerts?rule=tickets.overdue", toks["analyst"], "", ""); strings.Contains(body, "HOLD-T1") {
		t.Fatalf("HOLD-T1 raised under the hold: %s", body)
	}
	if code, body := call(t, "DELETE", a.URL()+path, toks["admin"], "", ""); code != 200 || body != "{\"held\":false}\n" {
		t.Fatalf("lift: %d %s", code, body)
	}
	readFeed(t, c, alert.ChannelPrefix+"79", func(v alert.FeedValue) bool { return v.Hold == nil })
	testenv.Eventually(t, 60*time.Second, "HOLD-T1 raised once the hold was lifted", func() (bool, error) {
		code, body := call(t, "GET", a.URL()+"/api/v1/alerts?rule=tickets.overdue", toks["analyst"], "", "")
		return code == 200 && strings.Contains(body, `"subject":"HOLD-T1"`), nil
	})
	// A hold that ends by itself leaves the feed when it ends.
	if code, body := call(t, "PUT", a.URL()+path, toks["admin"], "application/json", `{"reason":"short","for":"6s"}`); code != 200 {
		t.Fatalf("short hold: %d %s", code, body)
	}
	readFeed(t, c, alert.ChannelPrefix+"79", func(v alert.FeedValue) bool { return v.Hold != nil && v.Hold.Reason == "short" })
	readFeed(t, c, alert.ChannelPrefix+"79", func(v alert.FeedValue) bool { return v.Hold == nil })
}
