package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query/kpi"
)

var (
	fixtureOnce sync.Once
	fixtureSet  *refdata.Set
	fixtureCal  *worktime.Calendar
	fixtureErr  error
)

// fixture loads the bundled HCMC reference data and calendar once.
func fixture(t testing.TB) (*refdata.Set, *worktime.Calendar) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureSet, fixtureErr = refdata.HCMC()
		if fixtureErr == nil {
			fixtureCal, fixtureErr = worktime.New(fixtureSet.Calendar, worktime.Config{})
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureSet, fixtureCal
}

// validator is the real intake validator of the event contract.
func validator(t testing.TB) *ingest.Validator {
	t.Helper()
	c, err := ingest.LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPseudonymizer([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return ingest.NewValidator(c, nil, p)
}

// testConfig spans several simulated days in 20,000 events: a few cameras
// and a busy one-stop shop, across a month boundary (indicator reports).
func testConfig() Config {
	return Config{
		Seed:           42,
		Start:          time.Date(2025, 9, 29, 6, 0, 0, 0, ict),
		Cameras:        2,
		DetectionEvery: 2 * time.Minute,
		HeartbeatEvery: 10 * time.Minute,
		DossiersPerDay: 600,
		FeedbackPerDay: 200,
	}
}

func TestGeneratorEventsValidate(t *testing.T) {
	set, cal := fixture(t)
	g, err := NewGenerator(testConfig(), set, cal)
	if err != nil {
		t.Fatal(err)
	}
	v := validator(t)
	types := map[string]int{}
	ids := map[string]bool{}
	var last time.Time
	for i := range 20000 {
		ev, ok := g.Next()
		if !ok {
			t.Fatal("stream ended")
		}
		raw := ev.AppendJSON(nil)
		if _, err := v.Prepare(raw, ""); err != nil {
			t.Fatalf("event %d rejected: %v\n%s", i, err, raw)
		}
		if ev.Time.Before(last) {
			t.Fatalf("event %d at %v before %v", i, ev.Time, last)
		}
		last = ev.Time
		key := ev.Source + "/" + ev.ID
		if ids[key] {
			t.Fatalf("duplicate id %s", key)
		}
		ids[key] = true
		types[ev.Type]++
	}
	t.Logf("simulated %v; %v", last.Sub(testConfig().Start), types)
	c, _ := ingest.LoadContract()
	for _, typ := range c.Types() {
		if types[typ] == 0 {
			t.Errorf("no %s event", typ)
		}
	}
}

// TestCamerasFrom: with CamerasFrom after Start, the cameras' events begin
// there, the dossiers' and tickets' at Start.
func TestCamerasFrom(t *testing.T) {
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.CamerasFrom = cfg.Start.Add(36 * time.Hour)
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	var before, cameras int
	for {
		ev, _ := g.Next()
		if ev.Time.After(cfg.CamerasFrom.Add(time.Hour)) {
			break
		}
		camera := strings.HasPrefix(ev.Type, "vn.ioc.camera.")
		switch {
		case camera && ev.Time.Before(cfg.CamerasFrom):
			t.Fatalf("%s at %v, before CamerasFrom %v", ev.Type, ev.Time, cfg.CamerasFrom)
		case camera:
			cameras++
		case ev.Time.Before(cfg.CamerasFrom):
			before++
		}
	}
	// 2 cameras, a heartbeat every 10 minutes and a detection every 2
	// (testConfig): about 70 events in the hour after CamerasFrom.
	if cameras < 20 || before < 100 {
		t.Errorf("%d camera events in the hour after CamerasFrom, %d other events before it", cameras, before)
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.Cameras = 0
	cfg.InvalidShare, cfg.DuplicateShare = 0.01, 0.01
	a, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		x, _ := a.Next()
		y, _ := b.Next()
		if xb, yb := x.AppendJSON(nil), y.AppendJSON(nil); !bytes.Equal(xb, yb) {
			t.Fatalf("event %d differs:\n%s\n%s", i, xb, yb)
		}
	}
	cfg.Seed++
	c, _ := NewGenerator(cfg, set, cal)
	x, _ := a.Next()
	y, _ := c.Next()
	if bytes.Equal(x.AppendJSON(nil), y.AppendJSON(nil)) {
		t.Error("another seed gives the same event")
	}
}

// TestArrivalsFollowTheRate counts the dossiers received in the morning
// peak of a working day against the configured rate, from a quiet city to
// one with several arrivals a second (where restarting each draw from the
// second an event carries once kept every arrival in the same second).
func TestArrivalsFollowTheRate(t *testing.T) {
	set, cal := fixture(t)
	from := time.Date(2025, 6, 3, 8, 0, 0, 0, ict) // a Tuesday, in the peak 07:30–11:30
	if !cal.IsWorkingDay(from) {
		t.Fatalf("%v: not a working day in the calendar", from)
	}
	for _, perDay := range []float64{5_000, 20_000, 500_000} {
		span := 3 * time.Hour
		if perDay > 100_000 {
			span = 20 * time.Minute
		}
		g, err := NewGenerator(Config{Seed: 3, Start: from, DossiersPerDay: perDay, FeedbackPerDay: 1,
			Cameras: -1, NoIndicators: true, SurveyShare: -1, SyncShare: -1}, set, cal)
		if err != nil {
			t.Fatal(err)
		}
		a := &arrivals{rate: perDay, weight: dossierWeight}
		a.init()
		want := a.peak * span.Seconds()
		got, seconds := 0, map[int64]bool{}
		// Bounded, so that a stream stuck in one second fails instead of
		// running forever.
		for range int(4*want) + 10_000 {
			ev, _ := g.Next()
			if !ev.Time.Before(from.Add(span)) {
				break
			}
			if ev.Type == "vn.ioc.dossier.received" {
				got++
				seconds[ev.Time.Unix()] = true
			}
		}
		// The count is Poisson: ±5 % is more than 4 standard deviations
		// at the smallest expectation here (~1,900).
		if math.Abs(float64(got)-want) > 0.05*want {
			t.Errorf("%.0f dossiers a day: %d received from %v to %v, want %.0f ± 5 %%",
				perDay, got, from.Format("15:04"), from.Add(span).Format("15:04"), want)
		}
		if perDay > 100_000 && len(seconds) < int(0.9*span.Seconds()) {
			t.Errorf("%.0f dossiers a day: arrivals in %d distinct seconds of %v", perDay, len(seconds), span)
		}
	}
}

// TestGeneratorFaults checks that the broken events are exactly those the
// contract rejects, and that duplicates repeat an earlier event unchanged.
func TestGeneratorFaults(t *testing.T) {
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.InvalidShare, cfg.DuplicateShare = 0.03, 0.03
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	v := validator(t)
	sent := map[string][]byte{}
	var invalid, dups int
	for i := range 20000 {
		ev, _ := g.Next()
		raw := ev.AppendJSON(nil)
		_, err := v.Prepare(raw, "")
		switch {
		case strings.HasPrefix(ev.Flaw, "invalid"):
			invalid++
			if err == nil {
				t.Fatalf("event %d (%s) accepted:\n%s", i, ev.Flaw, raw)
			}
		case err != nil:
			t.Fatalf("event %d rejected: %v\n%s", i, err, raw)
		case ev.Flaw == "duplicate":
			dups++
			if prev, ok := sent[ev.Source+"/"+ev.ID]; !ok || !bytes.Equal(prev, raw) {
				t.Fatalf("duplicate %d does not repeat an earlier event", i)
			}
		default:
			if _, ok := sent[ev.Source+"/"+ev.ID]; ok {
				t.Fatalf("event %d reuses id %s", i, ev.ID)
			}
			sent[ev.Source+"/"+ev.ID] = raw
		}
	}
	if invalid < 400 || dups < 400 {
		t.Errorf("%d invalid, %d duplicates of 20,000; want about 600 each", invalid, dups)
	}
}

// A certification of 8 working hours is due the same day, or at the end of
// the next working day when received after 15:00; other procedures count
// working days.
func TestDeadlinesOfProcedures(t *testing.T) {
	set, cal := fixture(t)
	byCode := map[string]*procedure{}
	for i := range set.Procedures {
		byCode[set.Procedures[i].Code] = &procedure{Procedure: &set.Procedures[i]}
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, ict)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct{ code, received, due string }{
		{"TP-010", "2026-03-02 10:00", "2026-03-02 17:00"}, // Monday morning: the same day
		{"TP-010", "2026-03-02 16:00", "2026-03-03 17:00"}, // after 15:00: the next working day
		{"TP-011", "2026-03-06 15:30", "2026-03-09 17:00"}, // Friday after 15:00: Monday
		{"TP-001", "2026-03-02 10:00", "2026-03-02 17:00"}, // one working day
	} {
		p := byCode[tc.code]
		if p == nil {
			t.Fatalf("no procedure %s in the bundled data", tc.code)
		}
		if got := deadline(cal, p, at(tc.received)); !got.Equal(at(tc.due)) {
			t.Errorf("%s received %s: due %s, want %s", tc.code, tc.received, got.Format("2006-01-02 15:04"), tc.due)
		}
	}
}

// Every indicator the scorecards read from reports (query/kpi/score766.yaml,
// dti.yaml: `reported:`) is reported by the live city: a month boundary
// and a year boundary.
func TestReportsFeedTheScorecards(t *testing.T) {
	set, cal := fixture(t)
	cat, err := kpi.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range []string{"score766.total", "dti.total"} {
		_, reported := cat.Components(id)
		for _, code := range reported {
			want[code] = true
		}
	}
	if len(want) < 10 {
		t.Fatalf("the scorecards read only %d reported indicators", len(want))
	}
	cfg := testConfig()
	cfg.Cameras = 0
	cfg.Start = time.Date(2025, 12, 31, 23, 0, 0, 0, ict)
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{} // code → units
	for {
		ev, ok := g.Next()
		if !ok || ev.Time.After(cfg.Start.Add(10*time.Hour)) {
			break
		}
		if ev.Type != typeIndicatorReported {
			continue
		}
		var d struct {
			Data struct{ Unit string } `json:"data"`
		}
		if err := json.Unmarshal(ev.AppendJSON(nil), &d); err != nil {
			t.Fatal(err)
		}
		if seen[ev.Subject] == nil {
			seen[ev.Subject] = map[string]bool{}
		}
		seen[ev.Subject][d.Data.Unit] = true
	}
	for code := range want {
		if !seen[code][refdata.CityCode] {
			t.Errorf("%s: not reported for the city", code)
		}
	}
}

// A city started mid-month has the reports of the month before from its
// start, as published on the 1st; one started on the 1st before 08:00
// publishes them at 08:00.
func TestReportsOfTheMonthBeforeAtTheStart(t *testing.T) {
	set, cal := fixture(t)
	for _, c := range []struct {
		start, at time.Time
	}{
		{time.Date(2025, 11, 18, 10, 0, 0, 0, ict), time.Date(2025, 11, 18, 10, 0, 0, 0, ict)},
		{time.Date(2025, 11, 1, 6, 0, 0, 0, ict), time.Date(2025, 11, 1, 8, 0, 0, 0, ict)},
	} {
		cfg := testConfig()
		cfg.Cameras, cfg.Start = 0, c.start
		g, err := NewGenerator(cfg, set, cal)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for !found {
			ev, ok := g.Next()
			if !ok || ev.Time.After(c.at) {
				break
			}
			if ev.Type == typeIndicatorReported && ev.Subject == "766.dossiers_on_time" {
				found = ev.Time.Equal(c.at) && strings.Contains(string(ev.AppendJSON(nil)), `"period":"2025-10"`)
				if !found {
					t.Errorf("start %v: %s", c.start, ev.AppendJSON(nil))
					break
				}
			}
		}
		if !found {
			t.Errorf("start %v: no report of October at %v", c.start, c.at)
		}
	}
}
