package drill

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seed makes a migrated database with the bundled city's reference data.
func seed(t *testing.T) (*query.DB, *worktime.Calendar) {
	t.Helper()
	db, _ := testenv.ClickHouse(t)
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	if err := refdata.NewStore(db).SaveAll(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return db, cal
}

type event struct {
	table, typ, subject string
	time                time.Time
	unit, procedure     string
	due                 time.Time
	officer, extra      string // extra: category for tickets
}

func insert(t *testing.T, db *query.DB, evs ...event) {
	t.Helper()
	ctx := context.Background()
	for i, e := range evs {
		var sql string
		lit := func(t time.Time) string {
			if t.IsZero() {
				return "toDateTime(0)"
			}
			return fmt.Sprintf("toDateTime(%d)", t.Unix())
		}
		switch e.table {
		case "dossier_events":
			sql = fmt.Sprintf("INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, procedure_code, due_at, officer) "+
				"SELECT 'test', %s, %s, %s, %s, now(), %s, %s, %s, %s", db.Table(e.table), query.Quote(fmt.Sprint(i, e.subject, e.typ)),
				query.Quote(e.typ), query.Quote(e.subject), lit(e.time), query.Quote(e.unit), query.Quote(e.procedure), lit(e.due), query.Quote(e.officer))
		case "feedback_events":
			sql = fmt.Sprintf("INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, channel, category, due_at, officer) "+
				"SELECT 'test', %s, %s, %s, %s, now(), %s, 'phone', %s, %s, %s", db.Table(e.table), query.Quote(fmt.Sprint(i, e.subject, e.typ)),
				query.Quote(e.typ), query.Quote(e.subject), lit(e.time), query.Quote(e.unit), query.Quote(e.extra), lit(e.due), query.Quote(e.officer))
		}
		if err := db.Conn.Exec(db.InsertContext(ctx), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// The three lists on ClickHouse 18.16: filters, subtree, order, page,
// total, joins to the reference views, and the SQL returned gives the same
// rows when run again.
func TestRunOnClickHouse(t *testing.T) {
	db, cal := seed(t)
	ctx := context.Background()
	loc := cal.Location()
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, loc) // a Wednesday
	rcv := at.Add(-10 * 24 * time.Hour)
	d := func(typ, id, unit string, due time.Time, officer string) event {
		return event{table: "dossier_events", typ: typ, subject: id, time: rcv, unit: unit, procedure: "TP-001", due: due, officer: officer}
	}
	insert(t, db,
		d("received", "D-late2", "26740", at.Add(-48*time.Hour), ""),
		d("received", "D-late1", "26740", at.Add(-24*time.Hour), ""),
		event{table: "dossier_events", typ: "assigned", subject: "D-late1", time: rcv.Add(time.Hour), unit: "26740", officer: "CB-26740-02"},
		d("received", "D-ghost-officer", "26740", at.Add(-time.Hour), ""),
		event{table: "dossier_events", typ: "assigned", subject: "D-ghost-officer", time: rcv.Add(time.Hour), unit: "26740", officer: "CB-NOBODY"},
		d("received", "D-resolved", "26740", at.Add(-72*time.Hour), ""),
		event{table: "dossier_events", typ: "resolved", subject: "D-resolved", time: rcv.Add(2 * time.Hour)},
		d("received", "D-withdrawn", "26740", at.Add(-72*time.Hour), ""),
		event{table: "dossier_events", typ: "withdrawn", subject: "D-withdrawn", time: rcv.Add(2 * time.Hour)},
		d("received", "D-other-ward", "25747", at.Add(-72*time.Hour), ""),
		// Waiting for the citizen's supplement: the legal clock stopped
		// before the deadline passed, so it is not overdue.
		d("received", "D-waiting", "26740", at.Add(-36*time.Hour), ""),
		event{table: "dossier_events", typ: "supplement_requested", subject: "D-waiting", time: at.Add(-40 * time.Hour)},
		d("received", "D-soon", "26740", cal.AddWorkingHours(at, 2), ""),
		d("received", "D-later", "26740", cal.AddWorkingHours(at, 9), ""),
		event{table: "feedback_events", typ: "received", subject: "T-late", time: rcv, unit: "26740", due: at.Add(-30 * time.Hour), extra: "traffic"},
		event{table: "feedback_events", typ: "received", subject: "T-closed", time: rcv, unit: "26740", due: at.Add(-30 * time.Hour), extra: "traffic"},
		event{table: "feedback_events", typ: "closed", subject: "T-closed", time: rcv.Add(time.Hour)},
	)

	run := func(r Request) *Result {
		t.Helper()
		r.At = at
		res, err := Run(ctx, db, cal, r)
		if err != nil {
			t.Fatalf("%s %s: %v", r.List, r.Unit, err)
		}
		return res
	}
	ids := func(res *Result) string {
		var out []string
		for _, d := range res.Dossiers() {
			out = append(out, d.DossierID)
		}
		for _, t := range res.Tickets() {
			out = append(out, t.TicketID)
		}
		return strings.Join(out, ",")
	}

	res := run(Request{List: DossierOverdue, Unit: "26740"})
	if got := ids(res); got != "D-late2,D-late1,D-ghost-officer" || res.Total != 3 || res.Truncated {
		t.Fatalf("overdue: %s, total %d", got, res.Total)
	}
	d0, d1, d2 := res.Dossiers()[0], res.Dossiers()[1], res.Dossiers()[2]
	if d0.UnitName != "Phường Sài Gòn" || d0.ProcedureName != "Đăng ký khai sinh" || d0.Officer != "" || d0.OfficerName != "" ||
		d0.HolderUnit != "26740" || !d0.ReceivedAt.Equal(rcv) || !d0.DueAt.Equal(at.Add(-48*time.Hour)) {
		t.Errorf("row %+v", d0)
	}
	if d1.Officer != "CB-26740-02" || d1.OfficerName == "" || d2.Officer != "CB-NOBODY" || d2.OfficerName != "" {
		t.Errorf("officers: %+v / %+v", d1, d2)
	}
	if *d0.WorkingDaysLate != cal.WorkingDaysBetween(d0.DueAt, at) || *d0.WorkingDaysLate != 2 {
		t.Errorf("late %v working days, want 2", *d0.WorkingDaysLate)
	}

	// The city sees the other ward too; a page of 2 is truncated.
	res = run(Request{List: DossierOverdue, Unit: "79", Limit: 2})
	if got := ids(res); got != "D-other-ward,D-late2" || res.Total != 4 || !res.Truncated {
		t.Fatalf("city page: %s, total %d, truncated %v", got, res.Total, res.Truncated)
	}
	// The SQL returned gives the same rows and total.
	var n, total uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM ("+res.SQL+")").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rerun: %d rows, %v", n, err)
	}
	if err := db.Conn.QueryRow(ctx, res.CountSQL).Scan(&total); err != nil || total != 4 {
		t.Fatalf("rerun count: %d, %v", total, err)
	}

	res = run(Request{List: DossierDueSoon, Unit: "26740"})
	if got := ids(res); got != "D-soon" || res.Until == nil || res.Hours != 8 {
		t.Fatalf("due soon: %s", got)
	}
	if h := res.Dossiers()[0].WorkingHoursLeft; h == nil || *h != 2 {
		t.Errorf("hours left %v", h)
	}
	if got := ids(run(Request{List: DossierDueSoon, Unit: "26740", Hours: 10})); got != "D-soon,D-later" {
		t.Errorf("due soon within 10 h: %s", got)
	}
	// In the evening, 8 working hours end at the next working day's 17:00,
	// where deadlines fall: a dossier due then is due soon.
	evening := time.Date(2026, 3, 4, 18, 0, 0, 0, loc)
	insert(t, db, d("received", "D-tomorrow", "25747", time.Date(2026, 3, 5, 17, 0, 0, 0, loc), ""))
	eve, err := Run(ctx, db, cal, Request{List: DossierDueSoon, Unit: "25747", At: evening})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(eve); got != "D-tomorrow" {
		t.Errorf("due soon at Wednesday 18:00: %q, want the dossier due Thursday 17:00", got)
	}

	res = run(Request{List: FeedbackOverdue, Unit: "79"})
	if got := ids(res); got != "T-late" || res.Tickets()[0].Category != "traffic" || res.Tickets()[0].UnitName != "Phường Sài Gòn" {
		t.Fatalf("feedback: %s %+v", got, res.Tickets())
	}

	// A hostile unit is a string, nothing more.
	for _, u := range []string{"x') OR 1=1 --", `\'`, "26740'\n"} {
		if res := run(Request{List: DossierOverdue, Unit: u}); res.Total != 0 || len(res.Dossiers()) != 0 {
			t.Errorf("unit %q: %d rows", u, res.Total)
		}
	}

	// With the open entities the KPI engine keeps, the same lists are read
	// from them: the same rows and totals.
	reqs := []Request{
		{List: DossierOverdue, Unit: "26740"}, {List: DossierOverdue, Unit: "79", Limit: 2},
		{List: DossierOverdue, Unit: "79", Limit: 1}, {List: DossierDueSoon, Unit: "26740"},
		{List: DossierDueSoon, Unit: "26740", Hours: 10}, {List: FeedbackOverdue, Unit: "79"},
		{List: FeedbackOverdue, Unit: "25747"}, {List: DossierOverdue, Unit: "x') OR 1=1 --"},
	}
	var whole []*Result
	for _, r := range reqs {
		whole = append(whole, run(r))
	}
	// As the engine builds a generation: the open entities of the view.
	gen := time.Now().UnixNano()
	for _, f := range []struct{ family, view, id, open string }{
		{"dossier", "dossiers", "dossier_id", "withdrawn_at = toDateTime(0) AND supplement_requested_at[-1] <= supplement_received_at[-1]"},
		{"feedback", "tickets", "ticket_id", "closed_at = toDateTime(0)"},
	} {
		for _, q := range []string{
			fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) SELECT %s, %d, %s, unit, due_at, 1, 1 FROM %s "+
				"WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND %s",
				db.Table("kpi_open"), query.Quote(f.family), gen, f.id, db.Table(f.view), f.open),
			fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) SELECT %s, %d, '', '', toDateTime(0), 0, 1",
				db.Table("kpi_open"), query.Quote(f.family), gen),
		} {
			if err := db.Conn.Exec(db.InsertContext(ctx), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	for i, r := range reqs {
		got := run(r)
		if w := whole[i]; ids(got) != ids(w) || got.Total != w.Total || got.Truncated != w.Truncated ||
			!reflect.DeepEqual(got.Rows, w.Rows) || got.SQL != w.SQL || got.CountSQL != w.CountSQL {
			t.Errorf("%+v: %s total %d, want %s total %d", r, ids(got), got.Total, ids(w), w.Total)
		}
	}

	// Only what kpi_open holds is read: an entity the engine has not taken
	// up yet is missing (as from the KPI) until it has; one it took up as
	// closed is not read.
	insert(t, db, d("received", "D-new", "26740", at.Add(-72*time.Hour), ""))
	if res := run(Request{List: DossierOverdue, Unit: "26740"}); ids(res) != "D-late2,D-late1,D-ghost-officer" || res.Total != 3 {
		t.Errorf("before the engine took D-new up: %s, total %d", ids(res), res.Total)
	}
	ver := 1 // each version of an entity newer than the one before
	version := func(id string, due time.Time, open int) {
		t.Helper()
		ver++
		q := fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) SELECT 'dossier', %d, %s, '26740', %s, %d, %d",
			db.Table("kpi_open"), gen, query.Quote(id), literal(due, time.UTC), open, ver)
		if err := db.Conn.Exec(db.InsertContext(ctx), q); err != nil {
			t.Fatal(err)
		}
	}
	version("D-new", at.Add(-72*time.Hour), 1)
	version("D-late1", at.Add(-24*time.Hour), 0)
	if res := run(Request{List: DossierOverdue, Unit: "26740"}); ids(res) != "D-new,D-late2,D-ghost-officer" || res.Total != 3 {
		t.Errorf("after: %s, total %d", ids(res), res.Total)
	}
	// The view judges: an entity kpi_open still has open (the engine has
	// not taken up its resolution) is neither listed nor counted once read,
	// and the next candidates fill the page.
	version("D-resolved", at.Add(-96*time.Hour), 1)
	for _, limit := range []int{1, 2, 100} {
		want := strings.Join(strings.Split("D-new,D-late2,D-ghost-officer", ",")[:min(limit, 3)], ",")
		if res := run(Request{List: DossierOverdue, Unit: "26740", Limit: limit}); ids(res) != want || res.Total != 3 || res.Truncated != (limit < 3) {
			t.Errorf("limit %d with a stale candidate: %s, total %d, truncated %v", limit, ids(res), res.Total, res.Truncated)
		}
	}
	// A dossier of the page resolved after its id was matched and before
	// its row was read is neither listed nor counted.
	beforePageRead = func() {
		beforePageRead = nil
		insert(t, db, event{table: "dossier_events", typ: "resolved", subject: "D-late2", time: rcv.Add(3 * time.Hour)})
	}
	defer func() { beforePageRead = nil }()
	if res := run(Request{List: DossierOverdue, Unit: "26740"}); ids(res) != "D-new,D-ghost-officer" || res.Total != 2 || res.Truncated {
		t.Errorf("resolved between the match and the read: %s, total %d, truncated %v", ids(res), res.Total, res.Truncated)
	}
	// A version of kpi_open between its count and its pages (the engine
	// took D-new up as closed): the list is what the pages hold, and its
	// total is its rows.
	afterOpenCount = func() {
		afterOpenCount = nil
		version("D-new", at.Add(-72*time.Hour), 0)
	}
	defer func() { afterOpenCount = nil }()
	if res := run(Request{List: DossierOverdue, Unit: "26740"}); ids(res) != "D-ghost-officer" || res.Total != 1 || res.Truncated {
		t.Errorf("kpi_open changed between its count and its pages: %s, total %d, truncated %v", ids(res), res.Total, res.Truncated)
	}
}

// A page of ids too long for one statement (1,000 ids of ~250 bytes, with
// characters quoting doubles) is read in several, with the same rows in the
// same order as the list's SQL over the view gives.
func TestLongIDsTakeSeveralStatements(t *testing.T) {
	db, cal := seed(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, cal.Location())
	tail := strings.Repeat(`\`, 20) + strings.Repeat("x", 220)
	ins := fmt.Sprintf("INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, procedure_code, due_at, officer) "+
		"SELECT 'test', toString(number), 'received', concat('D-', toString(number), '-', %s), toDateTime(%d), now(), '26740', 'TP-001', "+
		"toDateTime(%d) - 3600 * (number %% 5 + 1), '' FROM system.numbers LIMIT 1000",
		db.Table("dossier_events"), query.Quote(tail), at.Add(-240*time.Hour).Unix(), at.Unix())
	if err := db.Conn.Exec(db.InsertContext(ctx), ins); err != nil {
		t.Fatal(err)
	}
	r := Request{List: DossierOverdue, Unit: "26740", Limit: 1000, At: at}
	whole, err := Run(ctx, db, cal, r)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Total != 1000 || len(whole.Dossiers()) != 1000 {
		t.Fatalf("over the view: %d rows, total %d", len(whole.Dossiers()), whole.Total)
	}
	var ids []string
	for _, d := range whole.Dossiers() {
		ids = append(ids, d.DossierID)
	}
	if b := len(query.In("dossier_id", ids)); b < 256<<10 {
		t.Fatalf("the page's ids take %d bytes quoted: one statement would do", b)
	}
	gen := time.Now().UnixNano()
	for _, q := range []string{
		fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) SELECT 'dossier', %d, dossier_id, unit, due_at, 1, 1 FROM %s",
			db.Table("kpi_open"), gen, db.Table("dossiers")),
		fmt.Sprintf("INSERT INTO %s (family, gen, id, unit, due_at, open, version) SELECT 'dossier', %d, '', '', toDateTime(0), 0, 1",
			db.Table("kpi_open"), gen),
	} {
		if err := db.Conn.Exec(db.InsertContext(ctx), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	got, err := Run(ctx, db, cal, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != whole.Total || !reflect.DeepEqual(got.Rows, whole.Rows) {
		t.Errorf("from the open entities: %d rows, total %d; want the %d rows over the view, in their order",
			len(got.Dossiers()), got.Total, len(whole.Dossiers()))
	}
}
