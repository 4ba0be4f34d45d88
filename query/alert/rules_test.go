package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/query/kpi"
)

func catalog(t *testing.T) *kpi.Catalog {
	t.Helper()
	cat, err := kpi.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestBundledRules(t *testing.T) {
	rs, err := Load("", catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range rs.Rules {
		kinds[r.Kind] = true
		if r.Kind != KindThreshold && !strings.Contains(r.Query("ioc", time.Unix(1e9, 0), time.Unix(1e9+3600, 0)), "FROM ioc.") {
			t.Errorf("%s: query %q", r.ID, r.Query("ioc", time.Unix(1e9, 0), time.Unix(1e9, 0)))
		}
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("no bundled rule of kind %s", k)
		}
	}
}

func TestRuleRefusals(t *testing.T) {
	const head = "version: 1\nrules:\n  - id: r1\n    severity: warning\n    title: {en: A, vi: B}\n"
	for _, tc := range []struct{ rule, want string }{
		{"    kind: nope\n", `kind "nope": one of threshold`},
		{"    kind: ticket_overdue\n    hours: 3\n", "hours: not a field of a ticket_overdue rule"},
		{"    kind: ticket_overdue\n    keep_overdue: true\n", "keep_overdue: not a field of a ticket_overdue rule"},
		{"    kind: threshold\n    kpi: dossier.on_time_rate\n    window: month\n", "exactly one of above and below"},
		{"    kind: threshold\n    kpi: dossier.on_time_rate\n    window: month\n    above: 5\n    below: 3\n", "exactly one of above and below"},
		{"    kind: threshold\n    kpi: nope\n    window: month\n    above: 5\n", "kpi nope: not in the KPI catalog"},
		{"    kind: threshold\n    kpi: dossier.overdue_open\n    window: month\n    above: 5\n", "window month"},
		{"    kind: threshold\n    kpi: dossier.on_time_rate\n    window: month\n    below: 90\n    clear: 80\n", "clear 80: at least below 90"},
		{"    kind: threshold\n    kpi: dossier.overdue_open\n    window: now\n    above: 9\n    clear: 10\n", "clear 10: at most above 9"},
		{"    kind: threshold\n    kpi: dossier.on_time_rate\n    window: month\n    below: 90\n    unit_kinds: [town]\n", `unit_kinds: "town"`},
		{"    kind: dossier_due\n    hours: 0\n", "hours 0: between 0 and 80"},
		{"    kind: camera_silent\n", "minutes 0: between 1 and 10080"},
		{"    kind: camera_level\n    detection: fire\n    level: 2\n", `detection "fire"`},
		{"    kind: camera_level\n    detection: flooding\n    level: 2\n    clear_level: 3\n", "clear_level 3: between 1 and level 2"},
		{"    kind: ticket_overdue\n    wat: 1\n", "field wat not found"},
	} {
		_, err := Parse([]byte(head+tc.rule), catalog(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.rule, err, tc.want)
		}
	}
	for _, tc := range []struct{ doc, want string }{
		{"version: 0\nrules: []\n", "version"},
		{"version: 1\nrules:\n  - {id: a, kind: ticket_overdue, severity: loud, title: {en: A, vi: B}}\n", `severity "loud"`},
		{"version: 1\nrules:\n  - {id: A!, kind: ticket_overdue, severity: info, title: {en: A, vi: B}}\n", `id "A!"`},
		{"version: 1\nrules:\n  - {id: a, kind: ticket_overdue, severity: info, title: {en: A}}\n", "title: en and vi"},
		{"version: 1\nrules:\n  - {id: a, kind: ticket_overdue, severity: info, title: {en: A, vi: B}}\n  - {id: a, kind: ticket_overdue, severity: info, title: {en: A, vi: B}}\n", "id a is taken"},
	} {
		_, err := Parse([]byte(tc.doc), catalog(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
}

func value(num, den int64, x float64) kpi.Value {
	return kpi.Value{Numerator: num, Denominator: den, Value: &x}
}

// Hysteresis: a below rule raises under its threshold and clears only at
// or over its clear level; in between, nothing changes either way.
func TestJudgeHysteresis(t *testing.T) {
	below, clr := 90.0, 92.0
	r := &Rule{Kind: KindThreshold, Below: &below, Clear: &clr, MinDenominator: 10}
	pct := &Rule{Kind: KindThreshold, Below: &below, Clear: &clr, Percent: true}
	above, clrA := 50.0, 40.0
	ra := &Rule{Kind: KindThreshold, Above: &above, Clear: &clrA}
	for _, tc := range []struct {
		r    *Rule
		v    kpi.Value
		open bool
		want Judgement
	}{
		{r, value(89, 100, 89), false, Raise},
		{r, value(89, 100, 89), true, Keep},
		{r, value(91, 100, 91), false, Keep},
		{r, value(91, 100, 91), true, Keep}, // between threshold and clear level
		{r, value(92, 100, 92), true, Clear},
		{r, value(92, 100, 92), false, Keep},
		{r, value(0, 9, 0), false, Keep}, // too few to judge
		{r, kpi.Value{Denominator: 100}, true, Keep},
		{pct, value(89, 100, 0.89), false, Raise}, // a share against percentages
		{pct, value(91, 100, 0.91), true, Keep},
		{pct, value(92, 100, 0.92), true, Clear},
		{ra, value(51, 1, 51), false, Raise},
		{ra, value(50, 1, 50), false, Keep},
		{ra, value(45, 1, 45), true, Keep},
		{ra, value(40, 1, 40), true, Clear},
	} {
		if got := tc.r.Judge(tc.v, tc.open); got != tc.want {
			t.Errorf("value %v open %v: got %v, want %v", *tc.v.Value, tc.open, got, tc.want)
		}
	}
}

// An entity rule raises once per subject, keeps the alert while the
// subject still matches (even without meeting the raising condition),
// clears it when it no longer matches, raises a new occurrence with a new
// id afterwards, and stops at max_open.
func TestApplyEntityRule(t *testing.T) {
	lvl, clr := 3, 2
	r := &Rule{ID: "flood", Kind: KindCameraLevel, Severity: "critical", Title: kpi.Text{EN: "F", VI: "N"},
		Detection: "flooding", Level: lvl, ClearLevel: &clr, MaxOpen: 2}
	e, _ := NewEvaluator(Config{}, &Rules{Version: 1, Rules: []*Rule{r}}, Deps{})
	e.open, e.pending = map[condKey]*Alert{}, map[string]*Alert{}
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	m := func(cam string, level int) match {
		return match{subject: cam, unit: "26740", value: float64(level), raise: level >= lvl}
	}
	e.apply(r, []match{m("c1", 3), m("c2", 2)}, t0)
	if len(e.open) != 1 || e.open[condKey{"flood", "c1"}] == nil {
		t.Fatalf("open after the first round: %v", e.open)
	}
	first := e.open[condKey{"flood", "c1"}]
	if first.State != StateRaised || first.Subject != "c1" || first.SubjectKind != "camera" || first.Threshold != 3 || !first.RaisedAt.Equal(t0) {
		t.Errorf("raised %+v", first)
	}
	e.apply(r, []match{m("c1", 2)}, t0.Add(time.Minute)) // under the level, over the clear level
	if e.open[condKey{"flood", "c1"}] != first {
		t.Fatal("an alert still matching was not kept as it is")
	}
	e.apply(r, nil, t0.Add(2*time.Minute))
	if len(e.open) != 0 || e.pending[first.ID].State != StateCleared || !e.pending[first.ID].ClearedAt.Equal(t0.Add(2*time.Minute)) ||
		e.pending[first.ID].Version <= first.Version {
		t.Fatalf("not cleared: open %v, pending %+v", e.open, e.pending[first.ID])
	}
	e.apply(r, []match{m("c1", 4), m("c2", 4), m("c3", 4)}, t0.Add(3*time.Minute))
	again := e.open[condKey{"flood", "c1"}]
	if again == nil || again.ID == first.ID {
		t.Fatalf("a new occurrence needs a new id: %+v", again)
	}
	if len(e.open) != 2 {
		t.Errorf("max_open 2: %d open", len(e.open))
	}
}

// touch keeps the subjects of the commits of families a rule over open
// entities follows, up to maxTouched a family; past that, or after a
// notice that did not list all of its subjects, none (the evaluation then
// relies on kpi_open).
func TestTouchedSubjects(t *testing.T) {
	rs, err := Load("", catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &Evaluator{rules: rs, openFamilies: familiesOverOpen(rs), touched: map[string]map[string]bool{}}
	e.touch(ingest.CommitNotice{Family: "camera", Subjects: []string{"CAM-1"}})
	e.touch(ingest.CommitNotice{Family: "dossier", Subjects: []string{"D-1", "D-2"}})
	e.touch(ingest.CommitNotice{Family: "dossier", Subjects: []string{"D-2", "D-3"}})
	e.touch(ingest.CommitNotice{Family: "feedback", Subjects: []string{"T-1"}, SubjectsTruncated: true})
	e.touch(ingest.CommitNotice{Family: "feedback", Subjects: []string{"T-2"}})
	if _, ok := e.touched["camera"]; ok {
		t.Errorf("camera subjects kept, but no rule over open cameras: %v", e.touched)
	}
	if d := e.touched["dossier"]; len(d) != 3 || !d["D-1"] || !d["D-3"] {
		t.Errorf("dossier subjects %v, want D-1 to D-3", d)
	}
	if f, ok := e.touched["feedback"]; !ok || f != nil {
		t.Errorf("feedback subjects %v after a truncated notice, want none (nil)", f)
	}
	many := make([]string, maxTouched)
	for i := range many {
		many[i] = fmt.Sprintf("D-%d", i+10)
	}
	e.touch(ingest.CommitNotice{Family: "dossier", Subjects: many})
	if d, ok := e.touched["dossier"]; !ok || d != nil {
		t.Errorf("%d dossier subjects kept, want none past %d", len(d), maxTouched)
	}
}
