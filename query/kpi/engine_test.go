package kpi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// city is a test database with Ho Chi Minh City's reference data and
// random events of every family around the instant at.
type city struct {
	db    *query.DB
	set   *refdata.Set
	cat   *kpi.Catalog
	b     *kpi.Builder
	at    time.Time
	units []string
}

func newCity(t *testing.T, seed uint64) *city {
	t.Helper()
	db, _ := testenv.ClickHouse(t)
	return newCityOn(t, db, seed)
}

// newCityOn fills the city into the database of db.
func newCityOn(t *testing.T, db *query.DB, seed uint64) *city {
	t.Helper()
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := refdata.NewStore(db).SaveAll(ctx, set); err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := kpi.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := &city{db: db, set: set, cat: cat, at: time.Now().Truncate(time.Second),
		b: &kpi.Builder{DB: db.Database(), Loc: cal.Location(), Calendar: func() *worktime.Calendar { return cal }}}
	for _, u := range set.Units {
		c.units = append(c.units, u.Code)
	}
	c.fill(t, rand.New(rand.NewPCG(seed, 7)))
	return c
}

// leader is an engine with the rollups of every family rebuilt, as a node
// that takes over with none; reg, when not nil, gets its metrics.
func (c *city) leader(t *testing.T, cfg kpi.Config, reg prometheus.Registerer) *kpi.Engine {
	t.Helper()
	eng, err := kpi.NewEngine(cfg, c.cat, c.b, c.db, nil, nil, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(context.Background(), fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

// points runs a series statement.
func (c *city) points(t *testing.T, sql string) []kpi.Point {
	t.Helper()
	rows, err := c.db.Conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	var out []kpi.Point
	for rows.Next() {
		var p kpi.Point
		if err := rows.Scan(&p.T, &p.Numerator, &p.Denominator, &p.Value); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// computeAll computes every family's KPIs, which loads the window sums
// into the engine's memory.
func (c *city) computeAll(t *testing.T, eng *kpi.Engine) {
	t.Helper()
	for _, fam := range c.cat.Families() {
		if _, err := eng.Compute(context.Background(), fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
}

// ids runs q, a query of one String column.
func (c *city) ids(t *testing.T, q string) []string {
	t.Helper()
	rows, err := c.db.Conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fill inserts raw events straight into the event tables (the state
// views fold them as the writer's inserts would be folded), some of them
// twice, as a crash between insert and acknowledgement would.
func (c *city) fill(t *testing.T, r *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	leaf := func() string { return c.units[r.IntN(len(c.units))] }
	ago := func(maxHours int) time.Time { return c.at.Add(-time.Duration(r.IntN(maxHours*3600)) * time.Second) }
	pick := func(s ...string) string { return s[r.IntN(len(s))] }

	type row = []any
	insert := func(table string, cols string, rows []row) {
		t.Helper()
		batch, err := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table(table)+" ("+cols+")")
		if err != nil {
			t.Fatal(err)
		}
		for i, rw := range rows {
			if err := batch.Append(rw...); err != nil {
				t.Fatal(err)
			}
			if i%10 == 0 { // a repeated delivery
				if err := batch.Append(rw...); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	var dossiers []row
	const dcols = "source, id, type, subject, time, accepted_at, unit, channel, service_level, due_at, e_result, method, portal"
	for i := 0; i < 3000; i++ {
		id := fmt.Sprintf("d%d", i)
		recv := ago(24 * 120)
		due := recv.Add(time.Duration(4+r.IntN(200)) * time.Hour)
		unit := leaf()
		ev := func(typ string, at time.Time, extra ...any) {
			rw := row{"test", id + "-" + typ, typ, id, at, at, "", "", "", time.Unix(0, 0), uint8(0), "", ""}
			copy(rw[6:], extra)
			if typ == "synced" {
				rw[12] = "national"
			}
			dossiers = append(dossiers, rw)
		}
		ev("received", recv, unit, pick("online", "counter", "postal"), pick("full_online", "partial_online", "offline"), due)
		if r.IntN(3) == 0 {
			ev("supplement_requested", recv.Add(time.Hour))
			due = due.Add(48 * time.Hour)
			ev("supplement_received", recv.Add(3*time.Hour), "", "", "", due)
		}
		if r.IntN(4) == 0 {
			ev("paid", recv.Add(time.Minute), "", "", "", time.Unix(0, 0), uint8(0), pick("online", "cash"))
		}
		if r.IntN(2) == 0 {
			ev("digitized", recv.Add(2*time.Minute))
		}
		if r.IntN(5) == 0 {
			ev("synced", recv.Add(3*time.Minute))
		}
		switch r.IntN(10) {
		case 0:
			ev("withdrawn", recv.Add(time.Hour))
		case 1, 2, 3:
			// open
		default:
			res := recv.Add(time.Duration(r.IntN(260)) * time.Hour)
			if res.After(c.at) {
				break
			}
			ev("resolved", res, "", "", "", time.Unix(0, 0), uint8(r.IntN(2)))
			if res.After(due) && r.IntN(2) == 0 {
				ev("apology_issued", res.Add(time.Hour))
			}
		}
	}
	insert("dossier_events", dcols, dossiers)

	var tickets []row
	for i := 0; i < 1500; i++ {
		id := fmt.Sprintf("t%d", i)
		recv := ago(24 * 60)
		due := recv.Add(time.Duration(24+r.IntN(300)) * time.Hour)
		unit := leaf()
		tickets = append(tickets, row{"test", id + "-r", "received", id, recv, recv, unit, due, uint8(0)})
		if r.IntN(3) > 0 {
			res := recv.Add(time.Duration(r.IntN(400)) * time.Hour)
			if res.Before(c.at) {
				tickets = append(tickets, row{"test", id + "-s", "resolved", id, res, res, "", time.Unix(0, 0), uint8(0)})
				if r.IntN(2) == 0 {
					tickets = append(tickets, row{"test", id + "-q", "rated", id, res.Add(time.Hour), res, "", time.Unix(0, 0), uint8(1 + r.IntN(5))})
				}
			}
		}
	}
	insert("feedback_events", "source, id, type, subject, time, accepted_at, unit, due_at, rating", tickets)

	var surveys []row
	for i := 0; i < 2000; i++ {
		at := ago(24 * 100)
		surveys = append(surveys, row{"test", fmt.Sprintf("s%d", i), "submitted", fmt.Sprintf("s%d", i), at, at, leaf(),
			pick("very_satisfied", "satisfied", "neutral", "unsatisfied", "very_unsatisfied")})
	}
	insert("survey_events", "source, id, type, subject, time, accepted_at, unit, rating", surveys)

	var cams []row
	for i, cam := range c.set.Cameras {
		if i%3 == 0 {
			continue // never heard from
		}
		at := c.at.Add(-time.Duration(r.IntN(300)) * time.Second)
		cams = append(cams, row{"test", cam.ID + "-st", "status", cam.ID, at, at, uint8(r.IntN(4)/3 ^ 1), "", int8(0)})
		for j := 0; j < 3; j++ {
			dt := ago(48)
			kind := pick("vehicle_count", "congestion", "flooding")
			cams = append(cams, row{"test", fmt.Sprintf("%s-d%d", cam.ID, j), "detection", cam.ID, dt, dt, uint8(0), kind, int8(r.IntN(5))})
		}
	}
	insert("camera_events", "source, id, type, subject, time, accepted_at, online, kind, level", cams)
}

// TestEngineEqualsSQL is the wall == SQL property: for random units and
// windows, the value the engine computes for every unit at once equals the
// value of the key's own SQL (what /sql shows), numerator, denominator
// and value alike.
func TestEngineEqualsSQL(t *testing.T) {
	c := newCity(t, 1)
	ctx := context.Background()
	eng, err := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	root := "79"
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatalf("%s: rebuild: %v", fam, err)
		}
	}
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool { return k.Unit == root || r.IntN(40) == 0 })
}

// checkAgainstSQL compares the engine's values of a sample of keys with
// their SQL.
func checkAgainstSQL(t *testing.T, c *city, eng *kpi.Engine, r *rand.Rand, pick func(kpi.Key) bool) {
	t.Helper()
	ctx := context.Background()
	reader := &kpi.Reader{Cat: c.cat, B: c.b, DB: c.db}
	checked, nonzero := 0, 0
	for _, fam := range c.cat.Families() {
		vals, err := eng.Compute(ctx, fam, c.at)
		if err != nil {
			t.Fatalf("%s: %v", fam, err)
		}
		var keys []kpi.Key
		for k := range vals {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b kpi.Key) int { return cmpKey(a, b) })
		var sample []kpi.Key
		for _, k := range keys {
			if pick(k) {
				sample = append(sample, k)
			}
		}
		for _, k := range sample {
			want := vals[k]
			kp, _ := c.cat.KPI(k.KPI)
			span := kpi.Span{Window: k.Window, From: want.From, To: want.To, At: want.At}
			got, err := reader.Compute(ctx, kp, k.Unit, span)
			if err != nil {
				t.Fatalf("%v: %v", k, err)
			}
			checked++
			if want.Numerator != 0 {
				nonzero++
			}
			if got.Numerator != want.Numerator || got.Denominator != want.Denominator || !sameFloat(got.Value, want.Value) {
				t.Errorf("%v: engine %d/%d=%v, sql %d/%d=%v", k, want.Numerator, want.Denominator, show(want.Value),
					got.Numerator, got.Denominator, show(got.Value))
			}
		}
	}
	if checked < 100 || nonzero < checked/3 {
		t.Fatalf("checked %d keys, %d of them non-zero: the data does not exercise the KPIs", checked, nonzero)
	}
	t.Logf("%d keys checked, %d non-zero", checked, nonzero)
}

// TestDuplicatesChangeNothing: delivering every event again leaves every
// value as it was.
func TestDuplicatesChangeNothing(t *testing.T) {
	c := newCity(t, 5)
	eng, _ := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	checkRepeatsChangeNothing(t, c, eng)
}

// checkRepeatsChangeNothing rebuilds every family, delivers every event
// again, rebuilds, and checks that no value changed.
func checkRepeatsChangeNothing(t *testing.T, c *city, eng *kpi.Engine) {
	t.Helper()
	ctx := context.Background()
	before := map[kpi.Key]kpi.Value{}
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
		vals, err := eng.Compute(ctx, fam, c.at)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			before[k] = v
		}
	}
	for _, tbl := range []string{"dossier_events", "feedback_events", "survey_events", "camera_events"} {
		var n, again uint64
		count := "SELECT count() FROM " + c.db.Table(tbl)
		if err := c.db.Conn.QueryRow(ctx, count).Scan(&n); err != nil {
			t.Fatal(err)
		}
		// Stored again, whatever the table: on a cluster a Replicated
		// table would drop a block equal to one it holds (nothing repeated).
		if err := c.db.Conn.Exec(c.db.AdditiveContext(ctx), "INSERT INTO "+c.db.Table(tbl)+" SELECT * FROM "+c.db.Table(tbl)); err != nil {
			t.Fatal(err)
		}
		if err := c.db.Conn.QueryRow(ctx, count).Scan(&again); err != nil || again != 2*n {
			t.Fatalf("%s: %d rows, then %d after delivering each again (%v)", tbl, n, again, err)
		}
	}
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
		vals, err := eng.Compute(ctx, fam, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) != countFamily(before, fam) {
			t.Errorf("%s: %d keys after, %d before", fam, len(vals), countFamily(before, fam))
		}
		for k, v := range vals {
			if b := before[k]; b.Numerator != v.Numerator || b.Denominator != v.Denominator {
				t.Errorf("%v: %d/%d before the repeats, %d/%d after", k, b.Numerator, b.Denominator, v.Numerator, v.Denominator)
			}
		}
	}
}

func countFamily(m map[kpi.Key]kpi.Value, fam string) int {
	n := 0
	for k := range m {
		if len(k.KPI) > len(fam) && k.KPI[:len(fam)+1] == fam+"." {
			n++
		}
	}
	return n
}

func cmpKey(a, b kpi.Key) int {
	if a.KPI != b.KPI {
		return cmpStr(a.KPI, b.KPI)
	}
	if a.Unit != b.Unit {
		return cmpStr(a.Unit, b.Unit)
	}
	return cmpStr(a.Window, b.Window)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func show(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprint(*f)
}

// TestEngineIncremental: after the rollups are built, new events are
// applied from commit notices alone (their subjects and times), and every
// value still equals its SQL.
func TestEngineIncremental(t *testing.T) {
	c := newCity(t, 9)
	ctx := context.Background()
	eng, _ := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
	// The engine now holds the window sums in memory; what follows must
	// update them from the changes it writes.
	c.computeAll(t, eng)
	// Resolve open dossiers, receive new ones, take new surveys: all in the
	// last hours, as live traffic would.
	var open []string
	rows, err := c.db.Conn.Query(ctx, "SELECT dossier_id FROM "+c.db.Table("dossiers")+" WHERE resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0) ORDER BY dossier_id LIMIT 60")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		open = append(open, id)
	}
	rows.Close()
	if len(open) < 20 {
		t.Fatalf("only %d open dossiers", len(open))
	}
	batch, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, unit, channel, due_at, e_result)")
	subjects := []string{}
	minT := c.at.Add(-3 * time.Hour)
	for i, id := range open {
		at := minT.Add(time.Duration(i) * time.Minute)
		_ = batch.Append("inc", id+"-res", "resolved", id, at, at, "", "", time.Unix(0, 0), uint8(i%2))
		subjects = append(subjects, id)
	}
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("new%d", i)
		at := minT.Add(time.Duration(i) * time.Minute)
		_ = batch.Append("inc", id+"-rec", "received", id, at, at, c.units[i*7%len(c.units)], "online", at.Add(48*time.Hour), uint8(0))
		subjects = append(subjects, id)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyCommit(ctx, ingest.CommitNotice{Family: "dossier", Subjects: subjects, MinTime: minT, MaxTime: c.at}, c.at); err != nil {
		t.Fatal(err)
	}
	sb, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("survey_events")+" (source, id, type, subject, time, accepted_at, unit, rating)")
	for i := 0; i < 30; i++ {
		at := minT.Add(time.Duration(i) * time.Minute)
		_ = sb.Append("inc", fmt.Sprintf("ns%d", i), "submitted", fmt.Sprintf("ns%d", i), at, at, c.units[i*11%len(c.units)], "satisfied")
	}
	if err := sb.Send(); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyCommit(ctx, ingest.CommitNotice{Family: "survey", MinTime: minT, MaxTime: c.at}, c.at); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	touched := map[string]bool{"dossier.resolved": true, "dossier.received": true, "survey.count": true, "dossier.e_result_rate": true}
	pick := func(k kpi.Key) bool {
		return touched[k.KPI] && (k.Unit == "79" || r.IntN(8) == 0) || r.IntN(60) == 0
	}
	checkAgainstSQL(t, c, eng, r, pick)
	// The same from the rollup tables, as a node that takes over reads
	// them: the days there changed as their hours did.
	eng.DropMemory()
	checkAgainstSQL(t, c, eng, r, pick)
}

// TestEngineCatchUp: a node that takes over applies the events accepted
// since the rollups were last written, without their commit notices, to
// the rollups and to the open entities.
func TestEngineCatchUp(t *testing.T) {
	c := newCity(t, 11)
	ctx := context.Background()
	eng, _ := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
	// Events the previous leader never applied.
	now := time.Now()
	batch, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, unit, channel, due_at)")
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("late%d", i)
		at := c.at.Add(-time.Duration(i) * time.Minute)
		due := at.Add(24 * time.Hour)
		if i%2 == 0 {
			due = at.Add(-time.Hour) // overdue: an open entity the instant KPIs count
		}
		_ = batch.Append("late", id, "received", id, at, now, c.units[i*5%len(c.units)], "online", due)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	for _, fam := range c.cat.Families() {
		rebuilt, err := eng.CatchUp(ctx, fam, c.at)
		if err != nil || rebuilt {
			t.Fatalf("%s: catch-up rebuilt=%v: %v", fam, rebuilt, err)
		}
	}
	r := rand.New(rand.NewPCG(6, 6))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool {
		return (k.KPI == "dossier.received" || k.KPI == "dossier.overdue_open") && (k.Unit == "79" || r.IntN(4) == 0) || r.IntN(80) == 0
	})

	// A definition changed (a new version of one KPI): the next takeover
	// rebuilds its family, once, so the definition applies to all
	// history; the other families are left as they are.
	changed := *c.cat
	changed.KPIs = slices.Clone(c.cat.KPIs)
	for i, k := range changed.KPIs {
		if k.ID == "dossier.received" {
			k2 := *k
			k2.Version++
			changed.KPIs[i] = &k2
		}
	}
	eng2, _ := kpi.NewEngine(kpi.Config{}, &changed, c.b, c.db, nil, nil, nil, nil, nil)
	for _, step := range []struct {
		family  string
		rebuilt bool
	}{{"dossier", true}, {"dossier", false}, {"survey", false}} {
		rebuilt, err := eng2.CatchUp(ctx, step.family, c.at)
		if err != nil || rebuilt != step.rebuilt {
			t.Fatalf("%s with a changed definition: rebuilt=%v (%v), want %v", step.family, rebuilt, err, step.rebuilt)
		}
	}
}

// TestEngineOpenEntities: the instant KPIs, taken from the open entities
// the engine keeps (kpi_open), still equal their SQL over the views after
// commits that open and close entities and move their deadlines: dossiers
// resolved, withdrawn, received, their deadline moved into, out of and
// past the due-soon window; tickets resolved, closed and received late.
// Every commit also copies the open entities into a new generation.
func TestEngineOpenEntities(t *testing.T) {
	c := newCity(t, 13)
	ctx := context.Background()
	ids := func(q string) []string { return c.ids(t, q) }
	at := fmt.Sprintf("toDateTime(%d)", c.at.Unix())
	soon := c.b.Calendar().AddWorkingHours(c.at, 8)
	// How many of the city's dossiers fall due within 8 working hours
	// depends on the time of week the test runs; ten more do, whenever
	// it runs (8 working hours are never less than 8 hours).
	pre, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, due_at)")
	for i, id := range ids("SELECT dossier_id FROM " + c.db.Table("dossiers") + " WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0) AND last_event_at < " + at + " ORDER BY dossier_id DESC LIMIT 10") {
		_ = pre.Append("soon", id+"-soon", "due_changed", id, c.at.Add(-time.Minute), c.at.Add(-time.Minute), c.at.Add(time.Duration(10+i)*time.Minute))
	}
	if err := pre.Send(); err != nil {
		t.Fatal(err)
	}
	eng := c.leader(t, kpi.Config{OpenCompact: time.Nanosecond}, nil)
	open := ids("SELECT dossier_id FROM " + c.db.Table("dossiers") + " WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0) AND last_event_at < " + at + " ORDER BY dossier_id LIMIT 100")
	dueSoon := ids(fmt.Sprintf("SELECT dossier_id FROM %s WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0) AND last_event_at < %s AND due_at >= %[2]s AND due_at < toDateTime(%d) ORDER BY dossier_id DESC LIMIT 10",
		c.db.Table("dossiers"), at, soon.Unix()))
	if len(open) < 100 || len(dueSoon) < 3 {
		t.Fatalf("%d open dossiers, %d due soon: the data does not exercise the open entities", len(open), len(dueSoon))
	}
	batch, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, unit, channel, due_at)")
	ev := func(id, typ string, due time.Time) {
		_ = batch.Append("open", id+"-"+typ, typ, id, c.at, c.at, "", "", due)
	}
	var subjects []string
	for i, id := range open {
		switch i / 20 {
		case 0:
			ev(id, "resolved", time.Unix(0, 0))
		case 1:
			ev(id, "withdrawn", time.Unix(0, 0))
		case 2:
			ev(id, "due_changed", c.at.Add(time.Hour)) // into the due-soon window
		case 3:
			ev(id, "due_changed", c.at.Add(-time.Hour)) // past its deadline
		default:
			ev(id, "supplement_received", c.at.Add(30*24*time.Hour)) // far off
		}
		subjects = append(subjects, id)
	}
	for _, id := range dueSoon {
		ev(id, "due_changed", c.at.Add(60*24*time.Hour)) // out of the window
		subjects = append(subjects, id)
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("open%d", i)
		_ = batch.Append("open", id, "received", id, c.at.Add(-time.Minute), c.at, c.units[i*13%len(c.units)], "online", c.at.Add(time.Duration(i-15)*time.Hour))
		subjects = append(subjects, id)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	// Two commits: the second is a repeated notice, which changes nothing.
	for range 2 {
		if err := eng.ApplyCommit(ctx, ingest.CommitNotice{Family: "dossier", Subjects: subjects, MinTime: c.at.Add(-time.Hour), MaxTime: c.at}, c.at); err != nil {
			t.Fatal(err)
		}
	}
	tickets := ids("SELECT ticket_id FROM " + c.db.Table("tickets") + " WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0) AND due_at < " + at + " ORDER BY ticket_id LIMIT 40")
	if len(tickets) < 20 {
		t.Fatalf("only %d overdue open tickets", len(tickets))
	}
	tb, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("feedback_events")+" (source, id, type, subject, time, accepted_at, unit, due_at)")
	var tsubjects []string
	for i, id := range tickets {
		_ = tb.Append("open", id+"-x", []string{"resolved", "closed"}[i%2], id, c.at, c.at, "", time.Unix(0, 0))
		tsubjects = append(tsubjects, id)
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("topen%d", i)
		_ = tb.Append("open", id, "received", id, c.at.Add(-48*time.Hour), c.at, c.units[i*17%len(c.units)], c.at.Add(-time.Hour))
		tsubjects = append(tsubjects, id)
	}
	if err := tb.Send(); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyCommit(ctx, ingest.CommitNotice{Family: "feedback", Subjects: tsubjects, MinTime: c.at.Add(-48 * time.Hour), MaxTime: c.at}, c.at); err != nil {
		t.Fatal(err)
	}
	// The values come from the table of open entities, whose older
	// generations were dropped.
	var gens, opened uint64
	if err := c.db.Conn.QueryRow(ctx, "SELECT uniqExact(gen), countIf(open = 1) FROM "+c.db.Table("kpi_open")+" WHERE family = 'dossier'").Scan(&gens, &opened); err != nil {
		t.Fatal(err)
	}
	if gens > 2 || opened == 0 {
		t.Errorf("kpi_open holds %d generations of dossiers and %d open rows", gens, opened)
	}
	instant := map[string]bool{"dossier.overdue_open": true, "dossier.due_soon": true, "feedback.overdue_open": true}
	r := rand.New(rand.NewPCG(8, 8))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool { return instant[k.KPI] || r.IntN(60) == 0 })
}

// TestEngineDropsOrphanOpen: a node whose catalog no longer keeps a
// family's open entities (or has no KPI of the family) drops the
// generations an earlier catalog left in kpi_open when it takes over, so
// that no reader takes them as current.
func TestEngineDropsOrphanOpen(t *testing.T) {
	c := newCity(t, 17)
	ctx := context.Background()
	gen := func(family string) uint64 {
		t.Helper()
		g, err := kpi.Generation(ctx, c.db.Conn, c.db.Database(), "kpi_open", family)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	eng, _ := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	for _, fam := range []string{"dossier", "feedback"} {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
	if gen("feedback") == 0 || gen("dossier") == 0 {
		t.Fatal("no generation of open entities built")
	}
	b, err := os.ReadFile("catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const open = "    open: received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0)\n"
	if !strings.Contains(string(b), open) {
		t.Fatal("the tickets source of catalog.yaml has no such open condition")
	}
	cat, err := kpi.Parse([]byte(strings.Replace(string(b), open, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	next, _ := kpi.NewEngine(kpi.Config{}, cat, c.b, c.db, nil, nil, nil, nil, nil)
	// And a family no KPI of the catalog counts any more.
	q := fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) "+
		"SELECT 'permit', 1, arrayJoin(['', 'P1']) AS i, if(i = '', '', '79'), toDateTime(0), toUInt8(i != ''), 1", c.db.Table("kpi_open"))
	if err := c.db.Conn.Exec(c.db.InsertContext(ctx), q); err != nil {
		t.Fatal(err)
	}
	if err := next.DropOrphanOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if g := gen("permit"); g != 0 {
		t.Errorf("generation %d of a family without KPIs left behind", g)
	}
	if g := gen("feedback"); g != 0 {
		t.Errorf("generation %d of open tickets left behind", g)
	}
	if gen("dossier") == 0 {
		t.Error("the open dossiers the catalog still keeps were dropped")
	}
}

// A series is read from the rollups once the engine has built them with
// the definitions in force, and its points are those of the view's series
// (SeriesSQL): for every KPI with a series, random units, windows and steps.
// Before, and for a span the rollups cannot cut, it is read from the view.
func TestSeriesFromTheRollups(t *testing.T) {
	c := newCity(t, 3)
	ctx := context.Background()
	reader := &kpi.Reader{Cat: c.cat, B: c.b, DB: c.db}
	points := func(sql string) []kpi.Point { return c.points(t, sql) }
	fromRollups := func(sql string) bool {
		return strings.Contains(sql, ".kpi_hourly") || strings.Contains(sql, ".kpi_daily")
	}
	k, _ := c.cat.KPI("dossier.received")
	span, err := kpi.Resolve(kpi.Window30d, c.at, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	if sql, _, err := reader.Series(ctx, k, "79", span, "day"); err != nil || fromRollups(sql) {
		t.Fatalf("read from the rollups before the engine built them (%v):\n%s", err, sql)
	}
	c.leader(t, kpi.Config{}, nil)
	r := rand.New(rand.NewPCG(5, 8))
	steps := []string{"hour", "day", "week", "month"}
	checked, nonzero := 0, 0
	for _, k := range c.cat.KPIs {
		if k.Instant() {
			continue
		}
		for range 4 {
			unit := "79"
			if r.IntN(2) == 0 {
				unit = c.units[r.IntN(len(c.units))]
			}
			win, step := kpi.StandardWindows[r.IntN(len(kpi.StandardWindows))], steps[r.IntN(len(steps))]
			span, err := kpi.Resolve(win, c.at, c.b.Loc)
			if err != nil {
				t.Fatal(err)
			}
			sql, got, err := reader.Series(ctx, k, unit, span, step)
			if err != nil {
				t.Fatalf("%s %s %s %s: %v", k.ID, unit, win, step, err)
			}
			if !fromRollups(sql) {
				t.Fatalf("%s over %s by %s not read from the rollups:\n%s", k.ID, win, step, sql)
			}
			viewSQL, err := c.b.SeriesSQL(c.cat, k, unit, span, step)
			if err != nil {
				t.Fatal(err)
			}
			want := points(viewSQL)
			checked++
			if len(want) > 0 {
				nonzero++
			}
			if len(got) != len(want) {
				t.Errorf("%s %s %s by %s: %d points from the rollups, %d from the view", k.ID, unit, win, step, len(got), len(want))
				continue
			}
			for i := range want {
				g, w := got[i], want[i]
				if !g.T.Equal(w.T) || g.Numerator != w.Numerator || g.Denominator != w.Denominator || !sameFloat(g.Value, w.Value) {
					t.Errorf("%s %s %s by %s, point %d: rollups %v %d/%d=%v, view %v %d/%d=%v", k.ID, unit, win, step, i,
						g.T, g.Numerator, g.Denominator, show(g.Value), w.T, w.Numerator, w.Denominator, show(w.Value))
					break
				}
			}
		}
	}
	if checked < 60 || nonzero < checked/3 {
		t.Fatalf("checked %d series, %d with points: the data does not exercise them", checked, nonzero)
	}
	t.Logf("%d series checked, %d with points", checked, nonzero)
	// Values over custom spans of whole hours or days, read from the
	// rollups, are those /sql gives.
	var windowed []*kpi.KPI
	for _, k := range c.cat.KPIs {
		if !k.Instant() {
			windowed = append(windowed, k)
		}
	}
	y, m, d := c.at.In(c.b.Loc).Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, c.b.Loc)
	values, valuesNonzero := 0, 0
	for i := range 60 {
		k := windowed[r.IntN(len(windowed))]
		from := midnight.AddDate(0, 0, -r.IntN(40))
		to := from.AddDate(0, 0, 1+r.IntN(20))
		if i%2 == 1 { // whole hours
			from, to = from.Add(time.Duration(r.IntN(24))*time.Hour), to.Add(-time.Duration(r.IntN(24))*time.Hour)
		}
		span, err := kpi.Custom(from, to, c.at, c.b.Loc)
		if err != nil {
			t.Fatal(err)
		}
		unit := "79"
		if r.IntN(2) == 0 {
			unit = c.units[r.IntN(len(c.units))]
		}
		q, ok := c.b.RollupSQL(c.cat, k, unit, span)
		if !ok {
			t.Fatalf("%s over %v: no rollup statement", k.ID, span)
		}
		var got kpi.Value
		if err := c.db.Conn.QueryRow(ctx, q).Scan(&got.Numerator, &got.Denominator, &got.Value); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		var want kpi.Value
		if err := c.db.Conn.QueryRow(ctx, c.b.SQL(c.cat, k, unit, span)).Scan(&want.Numerator, &want.Denominator, &want.Value); err != nil {
			t.Fatal(err)
		}
		if v, err := reader.Custom(ctx, k, unit, span); err != nil || v.Numerator != want.Numerator || v.Denominator != want.Denominator {
			t.Fatalf("%s: Custom gives %d/%d (%v), want %d/%d", k.ID, v.Numerator, v.Denominator, err, want.Numerator, want.Denominator)
		}
		values++
		if want.Numerator != 0 {
			valuesNonzero++
		}
		if got.Numerator != want.Numerator || got.Denominator != want.Denominator || !sameFloat(got.Value, want.Value) {
			t.Errorf("%s %s [%v, %v): rollups %d/%d=%v, sql %d/%d=%v", k.ID, unit, from, to,
				got.Numerator, got.Denominator, show(got.Value), want.Numerator, want.Denominator, show(want.Value))
		}
	}
	if valuesNonzero < values/4 {
		t.Fatalf("%d of %d custom values non-zero: the data does not exercise them", valuesNonzero, values)
	}
	// Rollups the engine has not written for a while after a commit (no
	// node leads) are not read; written since, they are.
	reader.LastCommit = func(string) time.Time { return time.Now().Add(kpi.RollupsStale + time.Minute) }
	if sql, _, err := reader.Series(ctx, k, "79", span, "day"); err != nil || fromRollups(sql) {
		t.Fatalf("rollups not written since a commit read (%v):\n%s", err, sql)
	}
	reader.LastCommit = func(string) time.Time { return time.Now() }
	if sql, _, err := reader.Series(ctx, k, "79", span, "day"); err != nil || !fromRollups(sql) {
		t.Fatalf("rollups written since the last commit not read (%v):\n%s", err, sql)
	}
	// A rebuild under way: the views are read until it is done.
	var noted string
	if err := c.db.Conn.QueryRow(ctx, "SELECT argMax(fingerprint, written) FROM "+c.db.Table("kpi_definitions")+" WHERE family = 'dossier'").Scan(&noted); err != nil || noted == "" {
		t.Fatalf("fingerprint %q after the rebuild: %v", noted, err)
	}
	if err := c.db.Conn.Exec(c.db.InsertContext(ctx), fmt.Sprintf("INSERT INTO %s (family, fingerprint, written) SELECT 'dossier', '', %d",
		c.db.Table("kpi_definitions"), time.Now().UnixNano())); err != nil {
		t.Fatal(err)
	}
	if sql, _, err := reader.Series(ctx, k, "79", span, "day"); err != nil || fromRollups(sql) {
		t.Fatalf("rollups read while noted as being rebuilt (%v):\n%s", err, sql)
	}
	// A custom span that is not whole hours is read from the view.
	custom, err := kpi.Custom(c.at.Add(-50*time.Hour-17*time.Minute), c.at, c.at, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	if sql, _, err := reader.Series(ctx, k, "79", custom, "day"); err != nil || fromRollups(sql) {
		t.Fatalf("a span of part hours read from the rollups (%v):\n%s", err, sql)
	}
}

// A change of the reference data the rollups took from rebuilds them: a
// camera moved to another ward (its detections' unit), a holiday added in
// the past (the working time of dossier.avg_processing_days). Until the
// engine has rebuilt, trends and custom values are read from the views;
// after, from the rollups again, equal to the views.
func TestReferenceChangeRebuilds(t *testing.T) {
	c := newCity(t, 4)
	ctx := context.Background()
	eng := c.leader(t, kpi.Config{}, nil)
	reader := &kpi.Reader{Cat: c.cat, B: c.b, DB: c.db}
	rollups := func(k *kpi.KPI, unit string, s kpi.Span) bool {
		t.Helper()
		sql, _, err := reader.Series(ctx, k, unit, s, "day")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(sql, ".kpi_daily")
	}
	same := func(k *kpi.KPI, unit string, s kpi.Span) {
		t.Helper()
		_, got, err := reader.Series(ctx, k, unit, s, "day")
		if err != nil {
			t.Fatal(err)
		}
		sql, err := c.b.SeriesSQL(c.cat, k, unit, s, "day")
		if err != nil {
			t.Fatal(err)
		}
		want := c.points(t, sql)
		if len(got) != len(want) {
			t.Fatalf("%s %s: %d points from the rollups, %d from the view", k.ID, unit, len(got), len(want))
		}
		for i := range want {
			if got[i].Numerator != want[i].Numerator || got[i].Denominator != want[i].Denominator {
				t.Fatalf("%s %s point %d: rollups %d/%d, view %d/%d", k.ID, unit, i, got[i].Numerator, got[i].Denominator, want[i].Numerator, want[i].Denominator)
			}
		}
	}

	// A camera heard from (one in three never is) moves to another ward.
	cam := c.set.Cameras[1]
	to := ""
	for _, u := range c.set.Units {
		if u.Kind == "ward" && u.Code != cam.Unit {
			to = u.Code
			break
		}
	}
	detections, _ := c.cat.KPI("camera.detections_per_min")
	week, err := kpi.Resolve(kpi.Window7d, c.at, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	if !rollups(detections, cam.Unit, week) {
		t.Fatal("the detections' trend is not read from the rollups after the rebuild")
	}
	if rebuilt, err := eng.RebuildOnReferenceChange(ctx, "camera", c.at); err != nil || rebuilt {
		t.Fatalf("rebuilt %v (%v) with nothing changed", rebuilt, err)
	}
	if err := c.db.Conn.Exec(c.db.InsertContext(ctx), fmt.Sprintf(`INSERT INTO %s (id, code, name, lat, lon, unit, type, ptz, version, deleted)
SELECT id, code, name, lat, lon, %s, type, ptz, version + 1, 0 FROM %s FINAL WHERE id = %s`,
		c.db.Table("ref_cameras"), query.Quote(to), c.db.Table("ref_cameras"), query.Quote(cam.ID))); err != nil {
		t.Fatal(err)
	}
	if rollups(detections, to, week) {
		t.Fatal("the detections' trend is read from rollups that keep the camera's old ward")
	}
	eng.ForgetReferenceChecks()
	if rebuilt, err := eng.RebuildOnReferenceChange(ctx, "camera", c.at); err != nil || !rebuilt {
		t.Fatalf("not rebuilt (%v) after the camera moved", err)
	}
	for _, unit := range []string{cam.Unit, to} {
		if !rollups(detections, unit, week) {
			t.Fatalf("%s: not read from the rebuilt rollups", unit)
		}
		same(detections, unit, week)
	}
	var moved int64
	if err := c.db.Conn.QueryRow(ctx, "SELECT toInt64(sum(numerator)) FROM "+c.db.Table("kpi_hourly")+" WHERE kpi = 'camera.detections_per_min' AND unit = ?", to).Scan(&moved); err != nil || moved == 0 {
		t.Fatalf("the ward the camera moved to holds %d detections in the rollups (%v)", moved, err)
	}

	// A weekday holiday added 10 days back (or more, to find a weekday).
	days, _ := c.cat.KPI("dossier.avg_processing_days")
	month, err := kpi.Resolve(kpi.Window30d, c.at, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	if !rollups(days, "79", month) {
		t.Fatal("the processing days' trend is not read from the rollups after the rebuild")
	}
	cal := c.b.Calendar()
	day := c.at.In(c.b.Loc).AddDate(0, 0, -10)
	for !cal.IsWorkingDay(day) {
		day = day.AddDate(0, 0, -1)
	}
	y, m, d := day.Date()
	withHoliday, err := worktime.New(append(slices.Clone(c.set.Calendar), refdata.Day{Date: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Kind: refdata.DayHoliday, Name: "test"}), worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c.b.Calendar = func() *worktime.Calendar { return withHoliday }
	if rollups(days, "79", month) {
		t.Fatal("the processing days' trend is read from rollups measured on the old calendar")
	}
	eng.ForgetReferenceChecks()
	if rebuilt, err := eng.RebuildOnReferenceChange(ctx, "dossier", c.at); err != nil || !rebuilt {
		t.Fatalf("not rebuilt (%v) after the calendar changed", err)
	}
	if !rollups(days, "79", month) {
		t.Fatal("the processing days' trend is not read from the rebuilt rollups")
	}
	same(days, "79", month)
}
