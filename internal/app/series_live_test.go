package app

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
)

type seriesMsg struct {
	KPI    string `json:"kpi"`
	Unit   string `json:"unit"`
	Step   string `json:"step"`
	SQL    string `json:"sql"`
	Seq    uint64 `json:"seq"`
	Points []struct {
		T           time.Time `json:"t"`
		Numerator   int64     `json:"numerator"`
		Denominator int64     `json:"denominator"`
	} `json:"points"`
}

func (s seriesMsg) total() (n int64) {
	for _, p := range s.Points {
		n += p.Numerator
	}
	return n
}

// A series channel carries the trend of a key, as REST gives it, and a new
// value when an event changes it; its scopes are those of the key.
func TestSeriesChannel(t *testing.T) {
	a, toks := node(t)
	const ward = "26740"
	now := time.Now()
	postEvents(t, a, toks["ingest"], survey("SER-1", ward, "satisfied", now))
	waitKPI(t, a, toks["analyst"], "survey.count?unit="+ward+"&window=today", 1, 1)

	c := dialWS(t, a, toks["analyst"])
	next(t, c, "welcome")
	ch := "series:survey.count:" + ward + ":today:hour"
	if m := subscribe(t, c, ch, nil); m.Type != "subscribed" {
		t.Fatalf("subscribe: %+v", m)
	}
	m := next(t, c, "snapshot")
	var s seriesMsg
	if err := json.Unmarshal(m.Data, &s); err != nil || s.total() != 1 || s.Seq != m.Seq || s.KPI != "survey.count" ||
		s.Step != "hour" || !strings.Contains(s.SQL, "survey") {
		t.Fatalf("snapshot %s (%v)", m.Data, err)
	}
	postEvents(t, a, toks["ingest"], survey("SER-2", ward, "unsatisfied", now))
	for s.total() != 2 {
		m = next(t, c, "update")
		if err := json.Unmarshal(m.Data, &s); err != nil || m.Seq <= 0 {
			t.Fatalf("update %s", m.Data)
		}
	}

	leader, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleLeader, Unit: "25747"}, "chair", time.Hour)
	wall, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleWall, Dashboard: "city"}, "wall-1", time.Hour)
	for _, tc := range []struct{ name, token, channel, code, want string }{
		{"leader other ward", leader, ch, "forbidden", "outside the subtree of unit 25747"},
		{"wall not a tile", wall, "series:feedback.rating_avg:79:month:day", "forbidden", "does not show"},
		{"instant kpi", toks["analyst"], "series:dossier.overdue_open:79:now:hour", "bad_request", "no series"},
		{"bad step", toks["analyst"], "series:survey.count:79:today:fortnight", "bad_request", `step "fortnight"`},
		{"composite", toks["analyst"], "series:score766.total:79:month:day", "bad_request", "is a composite"},
		{"short", toks["analyst"], "series:survey.count:79:today", "bad_request", "is not series:<kpi>:<unit>:<window>:<step>"},
		{"unknown kpi", toks["analyst"], "series:survey.nope:79:today:day", "not_found", "unknown kpi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, a, tc.token)
			next(t, c, "welcome")
			if m := subscribe(t, c, tc.channel, nil); m.Type != "error" || m.Code != tc.code || !strings.Contains(m.Message, tc.want) {
				t.Fatalf("%+v; want a %s error with %q", m, tc.code, tc.want)
			}
		})
	}
	wc := dialWS(t, a, wall)
	next(t, wc, "welcome")
	if m := subscribe(t, wc, "series:survey.satisfied_rate:79:month:day", nil); m.Type != "subscribed" {
		t.Fatalf("wall tile series: %+v", m)
	}
}
