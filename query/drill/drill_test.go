package drill

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/worktime"
)

func calendar(t *testing.T) *worktime.Calendar {
	t.Helper()
	// 2026: Tết off 16–20 Feb.
	var days []refdata.Day
	for d := 16; d <= 20; d++ {
		days = append(days, refdata.Day{Date: time.Date(2026, 2, d, 0, 0, 0, 0, time.UTC), Kind: refdata.DayHoliday, Name: "Tết"})
	}
	cal, err := worktime.New(days, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return cal
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Request
		want string // "" = valid
	}{
		{"defaults", Request{List: DossierOverdue, Unit: "79"}, ""},
		{"due soon hours", Request{List: DossierDueSoon, Unit: "79", Hours: 80}, ""},
		{"fractional hours", Request{List: DossierDueSoon, Unit: "79", Hours: 1.5}, ""},
		{"max limit", Request{List: FeedbackOverdue, Unit: "79", Limit: 1000}, ""},
		{"unknown list", Request{List: "dossier.late", Unit: "79"}, `list "dossier.late": unknown list`},
		{"no unit", Request{List: DossierOverdue}, "unit: missing"},
		{"limit over", Request{List: DossierOverdue, Unit: "79", Limit: 1001}, "limit 1001: between 1 and 1000"},
		{"limit negative", Request{List: DossierOverdue, Unit: "79", Limit: -1}, "limit -1"},
		{"hours on overdue", Request{List: DossierOverdue, Unit: "79", Hours: 8}, "hours: only dossier.due_soon"},
		{"hours under", Request{List: DossierDueSoon, Unit: "79", Hours: 0.5}, "hours 0.5: between 1 and 80"},
		{"hours over", Request{List: DossierDueSoon, Unit: "79", Hours: 81}, "hours 81"},
		{"hours NaN", Request{List: DossierDueSoon, Unit: "79", Hours: math.NaN()}, "hours NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// The statements quote the unit, cut the page in the innermost SELECT, join
// one reference view per SELECT, and take instants as local literals.
func TestBuild(t *testing.T) {
	cal := calendar(t)
	at := time.Date(2026, 2, 13, 16, 0, 0, 700_000_000, cal.Location()) // a Friday before Tết
	st, err := Build("ioc", cal, Request{List: DossierOverdue, Unit: "x') OR 1=1 --", At: at, Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`WHERE unit IN (SELECT code FROM ioc.ref_units FINAL WHERE deleted = 0 AND has(path, 'x\') OR 1=1 --'))`,
		"AND resolved_at = toDateTime(0)\n",
		"AND withdrawn_at = toDateTime(0)\n",
		"AND due_at < toDateTime('2026-02-13 16:00:00', 'Asia/Ho_Chi_Minh')\n",
		"ORDER BY due_at, dossier_id\n            LIMIT 7\n",
		"ANY LEFT JOIN (SELECT code AS unit, name AS unit_name FROM ioc.ref_units FINAL WHERE deleted = 0) USING unit",
		"ANY LEFT JOIN (SELECT code AS procedure_code, name AS ref_procedure_name FROM ioc.ref_procedures FINAL WHERE deleted = 0) USING procedure_code",
		"ANY LEFT JOIN (SELECT id AS officer, name AS officer_name FROM ioc.ref_officers FINAL WHERE deleted = 0) USING officer",
	} {
		if !strings.Contains(st.SQL, want) {
			t.Errorf("SQL lacks %q:\n%s", want, st.SQL)
		}
	}
	if !strings.HasSuffix(st.SQL, "ORDER BY due_at, dossier_id") || strings.Count(st.SQL, "JOIN") != 3 {
		t.Errorf("SQL:\n%s", st.SQL)
	}
	for _, bad := range []string{"OVER (", "WITH FILL", "toStartOfInterval", "DateTime64"} {
		if strings.Contains(st.SQL, bad) {
			t.Errorf("SQL uses %s, which ClickHouse 18.16 lacks", bad)
		}
	}
	if !strings.Contains(st.CountSQL, "SELECT count() AS total\nFROM ioc.dossiers\nWHERE unit IN") ||
		strings.Contains(st.CountSQL, "LIMIT") || !st.At.Equal(at.Truncate(time.Second)) {
		t.Errorf("count SQL:\n%s", st.CountSQL)
	}

	// Due soon: the window ends 8 working hours later; Friday 16:00 + 8 h
	// skips the weekend and Tết to Monday 23 Feb 16:00.
	st, err = Build("ioc", cal, Request{List: DossierDueSoon, Unit: "26740", At: at})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 2, 23, 16, 0, 0, 0, cal.Location())
	if !st.Until.Equal(want) ||
		!strings.Contains(st.SQL, "AND due_at >= toDateTime('2026-02-13 16:00:00', 'Asia/Ho_Chi_Minh')\n") ||
		!strings.Contains(st.SQL, "AND due_at <= toDateTime('2026-02-23 16:00:00', 'Asia/Ho_Chi_Minh')\n") ||
		!strings.Contains(st.SQL, "LIMIT 100\n") {
		t.Errorf("until %v, SQL:\n%s", st.Until, st.SQL)
	}

	st, err = Build("db_1", cal, Request{List: FeedbackOverdue, Unit: "L-760", At: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM db_1.tickets\n", "AND closed_at = toDateTime(0)\n", "has(path, 'L-760')",
		"ORDER BY due_at, ticket_id\n        LIMIT 100\n"} {
		if !strings.Contains(st.SQL, want) {
			t.Errorf("feedback SQL lacks %q:\n%s", want, st.SQL)
		}
	}
	if strings.Count(st.SQL, "JOIN") != 2 {
		t.Errorf("feedback SQL joins:\n%s", st.SQL)
	}
	if _, err := Build("ioc", cal, Request{List: "nope", Unit: "79"}); err == nil {
		t.Error("unknown list built")
	}
}

// Row mapping: working time from each row's due_at on the calendar, times
// in local time, total and truncation, and the JSON a client reads.
func TestFinish(t *testing.T) {
	cal := calendar(t)
	loc := cal.Location()
	at := time.Date(2026, 2, 23, 9, 30, 0, 0, loc) // Monday after Tết
	due1 := time.Date(2026, 2, 13, 17, 0, 0, 0, loc).UTC()
	due2 := time.Date(2026, 2, 23, 8, 0, 0, 0, loc).UTC()
	res := &Result{List: DossierOverdue, Unit: "26740", At: at, Total: 5, Rows: []Dossier{
		{DossierID: "D1", DueAt: due1, ReceivedAt: due1.Add(-72 * time.Hour)},
		{DossierID: "D2", DueAt: due2},
	}}
	res.finish(cal, 2, false)
	d := res.Dossiers()
	// D1: due at the end of Friday 13; Tết and the weekend do not count;
	// 07:30–09:30 of Monday: 2 / 8 days late.
	if *d[0].WorkingDaysLate != 0.25 || *d[0].WorkingDaysLate != cal.WorkingDaysBetween(due1, at) {
		t.Errorf("D1 late %v days", *d[0].WorkingDaysLate)
	}
	if *d[1].WorkingDaysLate != 1.5/8 || d[1].WorkingHoursLeft != nil {
		t.Errorf("D2 late %v days", *d[1].WorkingDaysLate)
	}
	if d[0].DueAt.Location() != loc || !res.Truncated || res.Total != 5 {
		t.Errorf("due %v, total %d truncated %v", d[0].DueAt, res.Total, res.Truncated)
	}
	b, _ := json.Marshal(res)
	for _, want := range []string{`"dossier_id":"D1"`, `"due_at":"2026-02-13T17:00:00+07:00"`, `"working_days_late":0.25`,
		`"supplements":0`, `"officer_name":""`, `"total":5`, `"truncated":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "working_hours_left") || strings.Contains(string(b), `"until"`) {
		t.Errorf("overdue JSON with due-soon fields: %s", b)
	}

	soon := &Result{List: DossierDueSoon, At: at, Rows: []Dossier{{DossierID: "D3", DueAt: time.Date(2026, 2, 23, 14, 0, 0, 0, loc)}}}
	soon.finish(cal, 1, false)
	if h := soon.Dossiers()[0].WorkingHoursLeft; h == nil || *h != 3 || soon.Dossiers()[0].WorkingDaysLate != nil {
		t.Errorf("hours left %v", h)
	}
	// Rows committed between the page and the count never make the total
	// smaller than the page.
	if soon.Total != 1 || soon.Truncated {
		t.Errorf("total %d truncated %v", soon.Total, soon.Truncated)
	}

	tk := &Result{List: FeedbackOverdue, At: at, Total: 1, Rows: []Ticket{{TicketID: "T1", DueAt: due1}}}
	tk.finish(cal, 1, false)
	if tk.Tickets()[0].WorkingDaysLate != cal.WorkingDaysBetween(due1, at) || tk.Truncated {
		t.Errorf("ticket %+v", tk.Tickets()[0])
	}
	// The whole list read: its rows are the total, whatever the count
	// (a statement of its own) saw.
	for _, total := range []uint64{0, 1, 2} {
		whole := &Result{List: FeedbackOverdue, At: at, Total: total, Rows: []Ticket{{TicketID: "T1", DueAt: due1}}}
		whole.finish(cal, 1, true)
		if whole.Total != 1 || whole.Truncated {
			t.Errorf("the whole list of 1 row, counted %d: total %d, truncated %v", total, whole.Total, whole.Truncated)
		}
	}
}

// The digest moves with the rows and with whole working hours, not with
// the instant alone.
func TestDigest(t *testing.T) {
	cal := calendar(t)
	loc := cal.Location()
	due := time.Date(2026, 3, 2, 8, 0, 0, 0, loc) // Monday
	list := func(at time.Time, ids ...string) [32]byte {
		var rows []Dossier
		for _, id := range ids {
			rows = append(rows, Dossier{DossierID: id, DueAt: due})
		}
		r := &Result{List: DossierOverdue, Unit: "79", At: at, Total: uint64(len(ids)), Rows: rows}
		r.finish(cal, len(rows), true)
		return r.Digest()
	}
	at := time.Date(2026, 3, 2, 9, 20, 0, 0, loc) // 1h20 late
	if list(at, "A") != list(at.Add(20*time.Minute), "A") {
		t.Error("digest moved within a working hour")
	}
	if list(at, "A") == list(at.Add(50*time.Minute), "A") {
		t.Error("digest did not move past a whole working hour")
	}
	if list(at, "A") == list(at, "A", "B") || list(at, "A") == list(at, "B") {
		t.Error("digest did not move with the rows")
	}
}

func TestChannel(t *testing.T) {
	if ch := Channel(DossierOverdue, "26740"); ch != "list:dossier.overdue:26740" {
		t.Fatal(ch)
	}
	for _, tc := range []struct {
		ch, list, unit string
		ok             bool
	}{
		{"list:dossier.overdue:26740", "dossier.overdue", "26740", true},
		{"list:feedback.overdue:L-760", "feedback.overdue", "L-760", true},
		{"list:dossier.overdue", "", "", false},
		{"list::79", "", "", false},
		{"list:dossier.overdue:", "", "", false},
		{"list:dossier.overdue:79:today", "", "", false},
		{"kpi:dossier.overdue:79", "", "", false},
	} {
		l, u, ok := ParseChannel(tc.ch)
		if l != tc.list || u != tc.unit || ok != tc.ok {
			t.Errorf("ParseChannel(%q) = %q %q %v", tc.ch, l, u, ok)
		}
	}
}
