package kpi

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
)

// hcmcCalendar is Ho Chi Minh City's reference data and calendar, and a
// parser of its local times.
func hcmcCalendar(t *testing.T) (*refdata.Set, *worktime.Calendar, func(string) time.Time) {
	t.Helper()
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return set, cal, func(s string) time.Time {
		v, err := time.ParseInLocation(time.DateTime, s, cal.Location())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// cityDB is a ClickHouse database holding Ho Chi Minh City's reference
// data, with hcmcCalendar's set, calendar and time parser.
func cityDB(t *testing.T) (*query.DB, *refdata.Set, *worktime.Calendar, func(string) time.Time) {
	t.Helper()
	db, _ := testenv.ClickHouse(t)
	set, cal, at := hcmcCalendar(t)
	if err := refdata.NewStore(db).SaveAll(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	return db, set, cal, at
}

// catalogKPI is the catalog, one of its KPIs and a Builder over db on the
// calendar cal.
func catalogKPI(t *testing.T, db *query.DB, cal *worktime.Calendar, id string) (*Catalog, *KPI, *Builder) {
	t.Helper()
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	k, ok := cat.KPI(id)
	if !ok {
		t.Fatalf("no kpi %s", id)
	}
	return cat, k, &Builder{DB: db.Database(), Loc: cal.Location(), Calendar: func() *worktime.Calendar { return cal }}
}

// TestWorkingSecondsMatchesCalendar: the SQL of {working_seconds:a,b}, run
// in ClickHouse, gives the working time of worktime.WorkingHoursBetween to
// the second, on Ho Chi Minh City's calendar, for spans across weekends,
// Tết, swapped days and make-up Saturdays, and for random spans.
func TestWorkingSecondsMatchesCalendar(t *testing.T) {
	_, cal, at := hcmcCalendar(t)
	loc := cal.Location()
	pairs := [][2]time.Time{
		{at("2024-05-03 16:00:00"), at("2024-05-06 08:30:00")}, // Friday → Monday across Saturday 4 May 2024, worked
		{at("2024-04-26 10:00:00"), at("2024-05-02 10:00:00")}, // across 29 Apr (swapped), 30 Apr, 1 May
		{at("2024-02-07 09:00:00"), at("2024-02-15 14:00:00")}, // Tết 2024
		{at("2026-08-21 12:00:00"), at("2026-09-01 07:00:00")}, // make-up Saturday 22 Aug, 31 Aug off
		{at("2025-06-06 11:45:00"), at("2025-06-06 12:30:00")}, // lunch break only
		{at("2025-06-07 09:00:00"), at("2025-06-08 16:00:00")}, // a weekend only
		{at("2025-06-09 07:00:00"), at("2025-06-09 18:00:00")}, // one whole working day
		{at("2025-06-10 10:00:00"), at("2025-06-09 10:00:00")}, // backwards: 0
		{at("2014-12-15 10:00:00"), at("2015-01-09 10:00:00")}, // from before the calendar's first exception
		{at("2014-11-03 08:00:00"), at("2014-11-28 17:00:00")}, // wholly before it
		{at("2035-11-20 09:00:00"), at("2036-03-02 15:00:00")}, // to after its last
		{at("2037-01-05 07:30:00"), at("2037-02-27 11:30:00")}, // wholly after it
	}
	r := rand.New(rand.NewPCG(3, 1))
	base := at("2015-01-01 00:00:00").Unix()
	for range 300 {
		a := base + r.Int64N(20*365*86400)
		pairs = append(pairs, [2]time.Time{time.Unix(a, 0), time.Unix(a+r.Int64N(60*86400), 0)})
	}
	lits := make([]string, len(pairs))
	for i, p := range pairs {
		lits[i] = fmt.Sprintf("(toDateTime(%d), toDateTime(%d))", p[0].Unix(), p[1].Unix())
	}
	b := &Builder{Loc: loc, Calendar: func() *worktime.Calendar { return cal }}
	expr := b.expand("{working_seconds:a,b}", time.Time{})
	q := "SELECT toInt64(a), toInt64(b), " + expr + " FROM (SELECT arrayJoin([" + strings.Join(lits, ", ") +
		"]) AS p, tupleElement(p, 1) AS a, tupleElement(p, 2) AS b)"
	ctx := context.Background()
	db, err := query.Open(ctx, query.Config{Addr: testenv.ClickHouseAddr(t), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Conn.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n, nonzero := 0, 0
	for rows.Next() {
		var a, bb, got int64
		if err := rows.Scan(&a, &bb, &got); err != nil {
			t.Fatal(err)
		}
		want := int64(math.Round(max(0, cal.WorkingHoursBetween(time.Unix(a, 0), time.Unix(bb, 0))) * 3600))
		if got != want {
			t.Errorf("%s → %s: ClickHouse %d s, worktime %d s", time.Unix(a, 0).In(loc), time.Unix(bb, 0).In(loc), got, want)
		}
		// What the engine's lookups measure in Go instead.
		if s := cal.WorkingSecondsBetween(time.Unix(a, 0), time.Unix(bb, 0)); s != got {
			t.Errorf("%s → %s: ClickHouse %d s, WorkingSecondsBetween %d s", time.Unix(a, 0).In(loc), time.Unix(bb, 0).In(loc), got, s)
		}
		n++
		if got > 0 {
			nonzero++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(pairs) || nonzero < n/2 {
		t.Fatalf("%d spans compared of %d, %d non-zero", n, len(pairs), nonzero)
	}
}

// TestWorkingTerms: the fragments whose value the engine's lookups measure
// in Go, and those left to SQL.
func TestWorkingTerms(t *testing.T) {
	terms, ok := workingTerms("{working_seconds:received_at,resolved_at} - {working_seconds_sum:supplement_requested_at,supplement_paused_until}")
	want := []workingTerm{{1, false, "received_at", "resolved_at"}, {-1, true, "supplement_requested_at", "supplement_paused_until"}}
	if !ok || !slices.Equal(terms, want) {
		t.Fatalf("got %v %v, want %v", terms, ok, want)
	}
	if terms, ok := workingTerms(" -{working_seconds:a,b}+{working_seconds:c,d} "); !ok || len(terms) != 2 || terms[0].sign != -1 || terms[1].sign != 1 {
		t.Errorf("signs: %v %v", terms, ok)
	}
	for _, frag := range []string{
		"",
		"resolved_at > due_at",
		"{working_seconds:a,b} / 28800",
		"2 * {working_seconds:a,b}",
		"{working_seconds:a,b} {working_seconds:c,d}",
		"{working_seconds:a,b} - - {working_seconds:c,d}",
		"{working_seconds:a,b} - {now}",
		"toInt64({working_seconds:a,b})",
	} {
		if terms, ok := workingTerms(frag); ok {
			t.Errorf("%q: measured in Go as %v", frag, terms)
		}
	}
}

// TestAvgProcessingDaysMatchesCalendar: dossier.avg_processing_days of
// single dossiers equals the working time worktime measures from reception
// to resolution minus the supplement pauses, across weekends, Tết 2024,
// the swap of 29 April 2024 with Saturday 4 May, and repeated requests.
func TestAvgProcessingDaysMatchesCalendar(t *testing.T) {
	db, _, cal, at := cityDB(t)
	ctx := context.Background()
	loc := cal.Location()
	type dossier struct {
		id, received, resolved string
		pauses                 [][2]string // requested, received ("" for none)
		wantPaused             [][2]string // the pauses worktime measures
	}
	ds := []dossier{
		{id: "weekend", received: "2024-05-31 16:00:00", resolved: "2024-06-04 09:00:00"},
		{id: "tet", received: "2024-02-06 10:00:00", resolved: "2024-02-16 15:30:00",
			pauses: [][2]string{{"2024-02-07 08:00:00", "2024-02-15 09:00:00"}}, wantPaused: [][2]string{{"2024-02-07 08:00:00", "2024-02-15 09:00:00"}}},
		{id: "swap", received: "2024-04-26 14:00:00", resolved: "2024-05-07 11:00:00",
			pauses: [][2]string{{"2024-05-03 16:00:00", "2024-05-04 10:00:00"}}, wantPaused: [][2]string{{"2024-05-03 16:00:00", "2024-05-04 10:00:00"}}},
		// Two requests before one reception: one pause from the first.
		{id: "twice", received: "2024-03-04 08:00:00", resolved: "2024-03-15 16:00:00",
			pauses:     [][2]string{{"2024-03-05 09:00:00", ""}, {"2024-03-06 10:00:00", "2024-03-08 11:00:00"}},
			wantPaused: [][2]string{{"2024-03-05 09:00:00", "2024-03-08 11:00:00"}}},
		// Resolved (rejected) while waiting: the pause ends with it.
		{id: "waiting", received: "2024-03-11 13:30:00", resolved: "2024-03-20 10:00:00",
			pauses: [][2]string{{"2024-03-18 09:00:00", ""}}, wantPaused: [][2]string{{"2024-03-18 09:00:00", "2024-03-20 10:00:00"}}},
	}
	batch, err := db.Conn.PrepareBatch(db.InsertContext(ctx), "INSERT INTO "+db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, unit, channel, due_at)")
	if err != nil {
		t.Fatal(err)
	}
	add := func(d dossier, typ, when string, n int) {
		tm := at(when)
		for range 2 { // every event delivered twice
			if err := batch.Append("t", fmt.Sprintf("%s-%s-%d", d.id, typ, n), typ, d.id, tm, tm, "26740", "online", tm.Add(240*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range ds {
		add(d, "received", d.received, 0)
		for i, p := range d.pauses {
			add(d, "supplement_requested", p[0], i)
			if p[1] != "" {
				add(d, "supplement_received", p[1], i)
			}
		}
		add(d, "resolved", d.resolved, 0)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	cat, k, b := catalogKPI(t, db, cal, "dossier.avg_processing_days")
	reader := &Reader{Cat: cat, DB: db, B: b}
	var total int64
	for _, d := range ds {
		want := cal.WorkingHoursBetween(at(d.received), at(d.resolved))
		for _, p := range d.wantPaused {
			want -= cal.WorkingHoursBetween(at(p[0]), at(p[1]))
		}
		wantSec := int64(math.Round(want * 3600))
		total += wantSec
		res := at(d.resolved)
		span, err := Custom(res, res.Add(time.Second), res, loc)
		if err != nil {
			t.Fatal(err)
		}
		v, err := reader.Compute(ctx, k, "79", span)
		if err != nil {
			t.Fatal(err)
		}
		if v.Numerator != wantSec || v.Denominator != 1 || v.Value == nil || math.Abs(*v.Value-want/8) > 1e-9 {
			if v.Value == nil {
				t.Fatalf("%s: no value", d.id)
			}
			t.Errorf("%s: %d s over %d dossiers = %v days; worktime: %d s = %v days", d.id, v.Numerator, v.Denominator, *v.Value, wantSec, want/8)
		}
	}
	span, _ := Custom(at("2024-01-01 00:00:00"), at("2025-01-01 00:00:00"), time.Now(), loc)
	v, err := reader.Compute(ctx, k, "79", span)
	if err != nil {
		t.Fatal(err)
	}
	if v.Numerator != total || v.Denominator != int64(len(ds)) {
		t.Errorf("2024: %d s over %d dossiers, want %d s over %d", v.Numerator, v.Denominator, total, len(ds))
	}
}

// TestPerMinuteSeriesCountsTheMinutesPassed: a per-minute KPI's series
// divides each step by its minutes in the window that have passed — the
// step still running, and a first step the window cuts, are not whole —
// as the KPI's value over a window does. They were divided by a whole step.
func TestPerMinuteSeriesCountsTheMinutesPassed(t *testing.T) {
	db, set, cal, at := cityDB(t)
	ctx := context.Background()
	cam := set.Cameras[0]
	batch, err := db.Conn.PrepareBatch(db.InsertContext(ctx), "INSERT INTO "+db.Table("camera_events")+" (source, id, type, subject, time, accepted_at, kind, level)")
	if err != nil {
		t.Fatal(err)
	}
	// One detection every 10 s from 09:30 to 10:15: 180 in the hour of 9,
	// 90 in that of 10 — 6 a minute in both.
	for i := range 270 {
		tm := at("2025-06-09 09:30:00").Add(time.Duration(i) * 10 * time.Second)
		if err := batch.Append("t", fmt.Sprintf("d-%d", i), "detection", cam.ID, tm, tm, "congestion", int8(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	cat, k, b := catalogKPI(t, db, cal, "camera.detections_per_min")
	// From 09:30 (a cut first hour) to 11:00, taken at 10:15 (a running hour).
	span, err := Custom(at("2025-06-09 09:30:00"), at("2025-06-09 11:00:00"), at("2025-06-09 10:15:00"), cal.Location())
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.SeriesSQL(cat, k, "79", span, "hour")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	got := map[string]float64{}
	for rows.Next() {
		var tm time.Time
		var n, d int64
		var v float64
		if err := rows.Scan(&tm, &n, &d, &v); err != nil {
			t.Fatal(err)
		}
		got[tm.In(cal.Location()).Format("15:04")] = v
	}
	if want := map[string]float64{"09:00": 180.0 / 30, "10:00": 90.0 / 15}; !maps.Equal(got, want) {
		t.Fatalf("series %v, want %v\n%s", got, want, q)
	}
}
