package sim

import (
	"bytes"
	"encoding/json"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
)

// hcm is Asia/Ho_Chi_Minh for the test's own classifier (a fixed +07:00
// when the system has no time zone database: the same since 1975).
func hcm() *time.Location {
	if l, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return l
	}
	return time.FixedZone("+07", 7*3600)
}

// figures are what an analyst would count from the events.
type figures struct {
	events        int
	received      int // dossiers received in the window
	online        int
	synced        int // received dossiers with a synced event
	early, onTime int // dossiers resolved in the window, by class
	overdue       int
	resolvedLater int // dossiers resolved after the window
	surveys       int
	satisfied     int
	unsatisfied   int
	qr, qrSat     int
	tickets       int // tickets received in the window
	ticketsOnTime int // resolved in the window at or before due_at
	ticketsLate   int
}

// recount classifies every dossier from its events as KPIS.md says: the
// deadline is the latest due_at (received, supplement_received,
// due_changed); early = resolved on a local calendar day before the due
// day; on time = on the due day at or before due_at; overdue = after.
func recount(t *testing.T, events iter.Seq2[Event, error], from, to time.Time, v *ingest.Validator) figures {
	t.Helper()
	loc := hcm()
	var f figures
	due := map[string]time.Time{}
	receivedIn := map[string]bool{}
	tdue := map[string]time.Time{}
	var last time.Time
	seen := map[string]bool{}
	day := func(x time.Time) string { return x.In(loc).Format("2006-01-02") }
	for ev, err := range events {
		if err != nil {
			t.Fatal(err)
		}
		f.events++
		raw := ev.AppendJSON(nil)
		if v != nil {
			if _, err := v.Prepare(raw, ""); err != nil {
				t.Fatalf("event %d rejected: %v\n%s", f.events, err, raw)
			}
			if seen[ev.Source+"/"+ev.ID] {
				t.Fatalf("id %s/%s used twice", ev.Source, ev.ID)
			}
			seen[ev.Source+"/"+ev.ID] = true
		}
		var ce struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
			Time    string `json:"time"`
			Data    struct {
				DueAt   string `json:"due_at"`
				Channel string `json:"channel"`
				Rating  any    `json:"rating"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &ce); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, ce.Time)
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(last) {
			t.Fatalf("event %d (%s) at %v, before %v", f.events, ce.Type, at, last)
		}
		last = at
		in := !at.Before(from) && at.Before(to)
		var d time.Time
		if ce.Data.DueAt != "" {
			if d, err = time.Parse(time.RFC3339, ce.Data.DueAt); err != nil {
				t.Fatal(err)
			}
		}
		switch ce.Type {
		case typeDossierReceived:
			due[ce.Subject] = d
			if in {
				receivedIn[ce.Subject] = true
				f.received++
				if ce.Data.Channel == "online" {
					f.online++
				}
			}
		case typeDossierSuppReceived, typeDossierDueChanged:
			due[ce.Subject] = d
		case typeDossierSynced:
			if receivedIn[ce.Subject] {
				f.synced++
			}
		case typeDossierResolved:
			dd, ok := due[ce.Subject]
			if !ok {
				t.Fatalf("%s resolved before it was received", ce.Subject)
			}
			switch {
			case !in:
				f.resolvedLater++
			case at.After(dd):
				f.overdue++
			case day(at) < day(dd):
				f.early++
			default:
				f.onTime++
			}
		case typeFeedbackReceived:
			tdue[ce.Subject] = d
			if in {
				f.tickets++
			}
		case typeFeedbackResolved:
			if in {
				if at.After(tdue[ce.Subject]) {
					f.ticketsLate++
				} else {
					f.ticketsOnTime++
				}
			}
		case typeSurveySubmitted:
			if !in {
				continue
			}
			f.surveys++
			r, _ := ce.Data.Rating.(string)
			sat := r == "satisfied" || r == "very_satisfied"
			if sat {
				f.satisfied++
			}
			if r == "unsatisfied" || r == "very_unsatisfied" {
				f.unsatisfied++
			}
			if ce.Data.Channel == "qr" {
				f.qr++
				if sat {
					f.qrSat++
				}
			}
		}
	}
	return f
}

func mustScenario(t *testing.T, name string) *Scenario {
	t.Helper()
	s, err := LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func period(s *Scenario) (time.Time, time.Time) { return s.Cohorts[0].From, s.Cohorts[0].To }

// TestScenarioFigures plays the published scenarios at full size and
// recounts the published figures from the events.
func TestScenarioFigures(t *testing.T) {
	set, cal := fixture(t)
	t.Run("hcmc-2024-q1", func(t *testing.T) {
		s := mustScenario(t, "hcmc-2024-q1")
		from, to := period(s)
		f := recount(t, s.Events(1, set, cal), from, to, nil)
		t.Logf("%d events; %+v", f.events, f)
		if f.received != 454_821 || f.early+f.onTime != 443_915 || f.early+f.onTime+f.overdue != 454_821 || f.resolvedLater != 0 {
			t.Errorf("received %d, early+on time %d of %d resolved in Q1 (%d after); want 454,821, 443,915 of 454,821",
				f.received, f.early+f.onTime, f.early+f.onTime+f.overdue, f.resolvedLater)
		}
		if f.synced != 82_777 {
			t.Errorf("synced %d, want 82,777", f.synced)
		}
	})
	t.Run("d1-2023", func(t *testing.T) {
		s := mustScenario(t, "d1-2023")
		from, to := period(s)
		f := recount(t, s.Events(1, set, cal), from, to, nil)
		t.Logf("%d events; %+v", f.events, f)
		if f.online != 47_836 || f.received != 54_448 {
			t.Errorf("online %d of %d, want 47,836 of 54,448", f.online, f.received)
		}
		if f.early != 8_167 || f.early+f.onTime+f.overdue != 8_191 || f.overdue != 24 {
			t.Errorf("early %d of %d resolved (%d overdue), want 8,167 of 8,191 (24)", f.early, f.early+f.onTime+f.overdue, f.overdue)
		}
		if f.resolvedLater != 54_448-8_191 {
			t.Errorf("resolved after 2023: %d, want %d", f.resolvedLater, 54_448-8_191)
		}
	})
	t.Run("caukho-2023", func(t *testing.T) {
		s := mustScenario(t, "caukho-2023")
		from, to := period(s)
		f := recount(t, s.Events(1, set, cal), from, to, nil)
		if f.satisfied != 1_328 || f.surveys != 1_331 || f.unsatisfied != 3 || f.qr != 756 || f.qrSat != 756 {
			t.Errorf("satisfied %d of %d (%d unsatisfied), QR %d (%d satisfied); want 1,328 of 1,331 (3), QR 756 (756)",
				f.satisfied, f.surveys, f.unsatisfied, f.qr, f.qrSat)
		}
	})
	t.Run("hcmc-1022-2025-10", func(t *testing.T) {
		s := mustScenario(t, "hcmc-1022-2025-10")
		from, to := period(s)
		f := recount(t, s.Events(1, set, cal), from, to, nil)
		if f.tickets != 14_707 || f.ticketsOnTime+f.ticketsLate != 14_311 || f.ticketsLate != 125 {
			t.Errorf("tickets %d, processed %d, late %d; want 14,707, 14,311, 125", f.tickets, f.ticketsOnTime+f.ticketsLate, f.ticketsLate)
		}
	})
	t.Run("hcmc-2024-q1-sync", func(t *testing.T) {
		if testing.Short() {
			t.Skip("2.5 million dossiers; skipped in -short")
		}
		s := mustScenario(t, "hcmc-2024-q1-sync")
		from, to := period(s)
		f := recount(t, s.Events(1, set, cal), from, to, nil)
		if f.received != 2_522_782 || f.synced != 454_821 {
			t.Errorf("synced %d of %d, want 454,821 of 2,522,782", f.synced, f.received)
		}
	})
}

// TestScenarioEventsValidate checks every event of every scenario against
// the real contract (large scenarios scaled down).
func TestScenarioEventsValidate(t *testing.T) {
	set, cal := fixture(t)
	v := validator(t)
	scale := map[string]float64{"hcmc-2024-q1": 0.02, "hcmc-2024-q1-sync": 0.004, "d1-2023": 0.25}
	for _, name := range Scenarios() {
		t.Run(name, func(t *testing.T) {
			s := mustScenario(t, name)
			if f, ok := scale[name]; ok {
				s = s.Scale(f)
			}
			from, to := period(s)
			f := recount(t, s.Events(7, set, cal), from, to, v)
			if f.events == 0 {
				t.Fatal("no events")
			}
			t.Logf("%d events valid", f.events)
		})
	}
}

func TestScenarioDeterministic(t *testing.T) {
	set, cal := fixture(t)
	s := mustScenario(t, "d1-2023").Scale(0.1)
	a, err := s.Player(3, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Player(3, set, cal)
	for i := range 5000 {
		x, ok1 := a.Next()
		y, ok2 := b.Next()
		if !ok1 || !ok2 {
			t.Fatalf("ended at %d: %v %v", i, a.Err(), b.Err())
		}
		if xb, yb := x.AppendJSON(nil), y.AppendJSON(nil); !bytes.Equal(xb, yb) {
			t.Fatalf("event %d differs:\n%s\n%s", i, xb, yb)
		}
	}
}

func TestScenarioValidation(t *testing.T) {
	base := `"family":"dossier","unit":"L-760","from":"2023-01-01T00:00:00+07:00","to":"2024-01-01T00:00:00+07:00"`
	for _, tc := range []struct{ name, doc, field string }{
		{"no cohorts", `{"name":"x","cohorts":[]}`, "cohorts"},
		{"family", `{"cohorts":[{"family":"camera","unit":"L-760","from":"2023-01-01T00:00:00+07:00","to":"2024-01-01T00:00:00+07:00","count":1}]}`, "cohorts[0].family"},
		{"count", `{"cohorts":[{` + base + `,"count":0}]}`, "cohorts[0].count"},
		{"no unit", `{"cohorts":[{"family":"dossier","from":"2023-01-01T00:00:00+07:00","to":"2024-01-01T00:00:00+07:00","count":5}]}`, "cohorts[0].unit"},
		{"period", `{"cohorts":[{"family":"dossier","unit":"L-760","from":"2024-01-01T00:00:00+07:00","to":"2023-01-01T00:00:00+07:00","count":5}]}`, "cohorts[0].to"},
		{"unknown split", `{"cohorts":[{` + base + `,"count":5,"splits":{"late":1}}]}`, "cohorts[0].splits.late"},
		{"split sum", `{"cohorts":[{` + base + `,"count":5,"splits":{"early":4,"overdue":2}}]}`, "cohorts[0].splits.early"},
		{"negative", `{"cohorts":[{` + base + `,"count":5,"splits":{"online":-1}}]}`, "cohorts[0].splits.online"},
		{"rest", `{"cohorts":[{` + base + `,"count":5,"rest":"later"}]}`, "cohorts[0].rest"},
		{"lifecycle", `{"cohorts":[{` + base + `,"count":5,"lifecycle":"short"}]}`, "cohorts[0].lifecycle"},
		{"unknown field", `{"cohorts":[{` + base + `,"count":5,"colour":"red"}]}`, "colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
	set, cal := fixture(t)
	for _, tc := range []struct{ name, unit, field string }{
		{"unknown unit", "99999", "unknown unit"},
		{"ceased unit", "L-760", "ceased"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseScenario([]byte(`{"cohorts":[{"family":"survey","unit":"` + tc.unit + `","from":"2026-01-01T00:00:00+07:00","to":"2026-02-01T00:00:00+07:00","count":5}]}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Player(1, set, cal); err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "cohorts[0].units") {
				t.Fatalf("error %v, want cohorts[0].units … %s", err, tc.field)
			}
		})
	}
	if _, err := LoadScenario("no-such-scenario"); err == nil {
		t.Error("unknown scenario loaded")
	}
}
