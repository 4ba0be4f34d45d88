package alert

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/query/kpi"
)

// TestAdopt: a leader that finds open alerts clears those of a rule no
// longer in force (they would never be judged again) and, of two open
// alerts of one rule and subject, the one raised later.
func TestAdopt(t *testing.T) {
	e := &Evaluator{rules: &Rules{Rules: []*Rule{{ID: "kept"}, {ID: "off", Disabled: true}}}, m: newMetrics(nil),
		open: map[condKey]*Alert{}, pending: map[string]*Alert{}}
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	open := []*Alert{
		{ID: "b", Rule: "kept", Subject: "T-1", State: StateRaised, RaisedAt: at.Add(-time.Minute)},
		{ID: "a", Rule: "kept", Subject: "T-1", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
		{ID: "c", Rule: "kept", Subject: "T-2", State: StateAcknowledged, RaisedAt: at.Add(-time.Hour)},
		{ID: "d", Rule: "off", Subject: "T-3", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
		{ID: "e", Rule: "gone", Subject: "T-4", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
	}
	e.adopt(open, at)
	if len(e.open) != 2 || e.open[condKey{"kept", "T-1"}].ID != "a" || e.open[condKey{"kept", "T-2"}].ID != "c" {
		t.Fatalf("open after adopting: %v", e.open)
	}
	for id, why := range map[string]string{"b": "alert a of the same rule and subject", "d": "no longer in force", "e": "no longer in force"} {
		c := e.pending[id]
		if c == nil || c.State != StateCleared || !c.ClearedAt.Equal(at) || !strings.Contains(c.Detail, why) {
			t.Errorf("alert %s: %+v, want cleared at %v saying %q", id, c, at, why)
		}
	}
	if len(e.pending) != 3 {
		t.Errorf("%d alerts to save, want 3", len(e.pending))
	}
}

// TestAckPastItsDeadline: an acknowledgement that reaches the evaluator
// after its requester stopped waiting is not applied (the user was told it
// failed).
func TestAckPastItsDeadline(t *testing.T) {
	e := &Evaluator{rules: &Rules{Rules: []*Rule{{ID: "kept"}}}, m: newMetrics(nil), d: Deps{Log: slog.New(slog.DiscardHandler)},
		now: time.Now, open: map[condKey]*Alert{}, pending: map[string]*Alert{}}
	a := &Alert{ID: "a", Rule: "kept", Subject: "T-1", State: StateRaised, RaisedAt: time.Now().Add(-time.Hour)}
	e.open[condKey{"kept", "T-1"}] = a
	r := e.ack(context.Background(), ackRequest{ID: "a", By: "chair", Deadline: time.Now().Add(-time.Millisecond)})
	if r.Code != "unavailable" || !strings.Contains(r.Error, "not applied") || a.State != StateRaised || len(e.pending) != 0 {
		t.Fatalf("late acknowledgement: %+v; alert %s, %d to save", r, a.State, len(e.pending))
	}
}

// TestReraisedWithinASecond: a threshold alert raised, cleared and raised
// again within one second is a new occurrence — its own id — whose version
// passes the cleared one's, so the table of alerts keeps it open.
func TestReraisedWithinASecond(t *testing.T) {
	below := 90.0
	r := &Rule{ID: "r", Kind: KindThreshold, Below: &below, MaxOpen: 10}
	e := &Evaluator{rules: &Rules{Rules: []*Rule{r}}, m: newMetrics(nil), open: map[condKey]*Alert{}, pending: map[string]*Alert{}}
	at := time.Date(2026, 11, 25, 3, 0, 0, 100e6, time.UTC)
	e.raise(r, match{subject: "79", unit: "79", raise: true}, "unit", at)
	first := e.open[condKey{"r", "79"}]
	e.clear(first, at.Add(200*time.Millisecond), "back")
	cleared := e.pending[first.ID]
	e.raise(r, match{subject: "79", unit: "79", raise: true}, "unit", at.Add(400*time.Millisecond))
	second := e.open[condKey{"r", "79"}]
	if second == nil || second.ID == first.ID || second.Version <= cleared.Version || len(e.pending) != 2 {
		t.Fatalf("first %+v, cleared %+v, second %+v, %d to save", first, cleared, second, len(e.pending))
	}
	if !second.RaisedAt.Equal(at.Truncate(time.Second)) {
		t.Errorf("raised_at %v, want the second of the raise", second.RaisedAt)
	}
}

// TestUnitNoLongerJudged: an open threshold alert of a unit its rule no
// longer judges (the rule's unit kinds or the reference data changed) is
// cleared, at takeover and when a value of the unit comes — it stayed open
// for ever.
func TestUnitNoLongerJudged(t *testing.T) {
	below := 90.0
	r := &Rule{ID: "r", Kind: KindThreshold, KPI: "dossier.on_time_rate", Window: "month", Below: &below, UnitKinds: []string{"ward"}, MaxOpen: 10}
	rules := &Rules{Rules: []*Rule{r}, byID: map[string]*Rule{"r": r}}
	kinds := map[string]string{"26740": "ward", "SO-TP": "department"}
	e := &Evaluator{rules: rules, m: newMetrics(nil), open: map[condKey]*Alert{}, pending: map[string]*Alert{},
		d: Deps{UnitKind: func(u string) (string, bool) { k, ok := kinds[u]; return k, ok }}}
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	open := []*Alert{
		{ID: "a", Rule: "r", Kind: KindThreshold, Unit: "26740", Subject: "26740", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
		{ID: "b", Rule: "r", Kind: KindThreshold, Unit: "SO-TP", Subject: "SO-TP", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
		{ID: "c", Rule: "r", Kind: KindThreshold, Unit: "L-760", Subject: "L-760", State: StateRaised, RaisedAt: at.Add(-time.Hour)},
	}
	e.adopt(open, at)
	if len(e.open) != 1 || e.open[condKey{"r", "26740"}] == nil {
		t.Fatalf("open after adopting: %v", e.open)
	}
	for _, id := range []string{"b", "c"} {
		if c := e.pending[id]; c == nil || c.State != StateCleared || !strings.Contains(c.Detail, "no longer among the units its rule judges") {
			t.Errorf("alert %s: %+v", id, c)
		}
	}
	// The ward's unit changes kind: its next value clears its alert.
	kinds["26740"] = "department"
	e.judge(kpi.Value{Key: kpi.Key{KPI: "dossier.on_time_rate", Unit: "26740", Window: "month"}}, at)
	if c := e.pending["a"]; len(e.open) != 0 || c == nil || c.State != StateCleared {
		t.Fatalf("after the kind changed: open %v, a %+v", e.open, c)
	}
}
