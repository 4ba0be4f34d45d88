package drill

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
)

// Statement is the SQL of one list at one instant.
type Statement struct {
	// SQL returns the rows, in order: for dossier lists dossier_id, unit,
	// unit_name, holder_unit, procedure_code, procedure_name, officer,
	// officer_name, received_at, due_at, supplements; for feedback.overdue
	// ticket_id, unit, unit_name, holder_unit, category, channel, officer,
	// officer_name, received_at, due_at.
	SQL string
	// CountSQL returns one row, total: every row the list matches.
	CountSQL string
	// At is the instant the list is taken at, to the second.
	At time.Time
	// Until is the end (excluded) of the due-soon window: At plus Hours
	// working hours, to the second. Zero for the other lists.
	Until time.Time

	// keys returns the id and due_at of every row the list matches.
	keys string
	// open is the list's filter over an open entity's unit and deadline,
	// for kpi.OpenIDs.
	open func(unit, due string) string
}

// Build writes the statements of a request over the views of database db.
// The request must be valid (Validate); Build applies its defaults.
func Build(db string, cal *worktime.Calendar, r Request) (Statement, error) {
	if err := r.Validate(); err != nil {
		return Statement{}, err
	}
	r.setDefaults()
	return build(db, cal, r, nil), nil
}

// build writes the statements of a valid request with its defaults; ids,
// when not nil, limit them to those entities (a lookup by key of the view
// with query.Pushdown).
func build(db string, cal *worktime.Calendar, r Request, ids []string) Statement {
	loc := cal.Location()
	st := Statement{At: r.At}
	lit := func(t time.Time) string { return literal(t, loc) }
	var conds []string
	var table, id string
	switch r.List {
	case DossierOverdue, DossierDueSoon:
		table, id = "dossiers", "dossier_id"
		// Not waiting for a citizen's supplement: the legal clock stops at
		// the request (the new deadline comes with the reception).
		conds = []string{"received_at > toDateTime(0)", "resolved_at = toDateTime(0)", "withdrawn_at = toDateTime(0)",
			"supplement_requested_at[-1] <= supplement_received_at[-1]"}
	case FeedbackOverdue:
		table, id = "tickets", "ticket_id"
		conds = []string{"received_at > toDateTime(0)", "resolved_at = toDateTime(0)", "closed_at = toDateTime(0)"}
	}
	due := func(col string) []string { return []string{col + " > toDateTime(0)", col + " < " + lit(r.At)} }
	if r.List == DossierDueSoon {
		// As the KPI dossier.due_soon: the end of the window to the second.
		st.Until = cal.AddWorkingHours(r.At, r.Hours).Truncate(time.Second)
		// The end included: 8 working hours from 17:00 end at the next
		// working day's 17:00, where deadlines fall.
		due = func(col string) []string { return []string{col + " >= " + lit(r.At), col + " <= " + lit(st.Until)} }
	}
	conds = append(conds, due("due_at")...)
	subtree := func(col string) string { return query.Subtree(db, col, r.Unit) }
	st.open = func(unit, d string) string { return strings.Join(append([]string{subtree(unit)}, due(d)...), " AND ") }
	where := subtree("unit") + "\n"
	if ids != nil {
		where += "  AND " + query.In(id, ids) + "\n"
	}
	for _, c := range conds {
		where += "  AND " + c + "\n"
	}
	st.keys = fmt.Sprintf("SELECT %s, due_at FROM %s.%s\nWHERE %s", id, db, table, where)

	var head strings.Builder
	fmt.Fprintf(&head, "-- %s: %s\n", r.List, titles[r.List])
	fmt.Fprintf(&head, "-- unit %s and its subtree, at %s (%s)", oneLine(r.Unit), r.At.In(loc).Format(time.DateTime), loc)
	if r.List == DossierDueSoon {
		fmt.Fprintf(&head, ", due before %s (%s working hours later)", st.Until.In(loc).Format(time.DateTime),
			strconv.FormatFloat(r.Hours, 'g', -1, 64))
	}
	head.WriteString("\n")
	st.CountSQL = head.String() + "SELECT count() AS total\nFROM " + db + "." + table + "\nWHERE " + where
	st.CountSQL = strings.TrimSuffix(st.CountSQL, "\n")

	// The page is cut first, from the view alone, and only its rows are
	// joined to the reference views: ClickHouse 18.16 takes one JOIN per
	// SELECT, so each join nests the previous SELECT.
	var w strings.Builder
	w.WriteString(head.String())
	fmt.Fprintf(&w, "-- the first %d, %s; %s is computed by ioc from the business calendar\n",
		r.Limit, order(r.List), workingColumn(r.List))
	inner := func(indent string, s string) string {
		return indent + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+indent) + "\n"
	}
	page := fmt.Sprintf("FROM %s.%s\nWHERE %sORDER BY due_at, %s\nLIMIT %d\n", db, table, where, id, r.Limit)
	switch table {
	case "dossiers":
		l0 := "SELECT dossier_id, unit, holder_unit, procedure_code, procedure_name AS sent_procedure_name,\n" +
			"    officer, received_at, due_at, supplements\n" + page
		l1 := "SELECT dossier_id, unit, unit_name, holder_unit, procedure_code, sent_procedure_name,\n" +
			"    officer, received_at, due_at, supplements\nFROM (\n" + inner("    ", l0) + ")\n" +
			"ANY LEFT JOIN (SELECT code AS unit, name AS unit_name FROM " + query.Ref(db, "units", "") + ") USING unit\n"
		l2 := "SELECT dossier_id, unit, unit_name, holder_unit, procedure_code,\n" +
			"    if(sent_procedure_name != '', sent_procedure_name, ref_procedure_name) AS procedure_name,\n" +
			"    officer, received_at, due_at, supplements\nFROM (\n" + inner("    ", l1) + ")\n" +
			"ANY LEFT JOIN (SELECT code AS procedure_code, name AS ref_procedure_name FROM " + query.Ref(db, "procedures", "") + ") USING procedure_code\n"
		w.WriteString("SELECT dossier_id, unit, unit_name, holder_unit, procedure_code, procedure_name,\n" +
			"    officer, officer_name, received_at, due_at, supplements\nFROM (\n" + inner("    ", l2) + ")\n")
	case "tickets":
		l0 := "SELECT ticket_id, unit, holder_unit, category, channel, officer, received_at, due_at\n" + page
		l1 := "SELECT ticket_id, unit, unit_name, holder_unit, category, channel, officer, received_at, due_at\nFROM (\n" +
			inner("    ", l0) + ")\n" +
			"ANY LEFT JOIN (SELECT code AS unit, name AS unit_name FROM " + query.Ref(db, "units", "") + ") USING unit\n"
		w.WriteString("SELECT ticket_id, unit, unit_name, holder_unit, category, channel, officer, officer_name,\n" +
			"    received_at, due_at\nFROM (\n" + inner("    ", l1) + ")\n")
	}
	w.WriteString("ANY LEFT JOIN (SELECT id AS officer, name AS officer_name FROM " + query.Ref(db, "officers", "") + ") USING officer\n")
	fmt.Fprintf(&w, "ORDER BY due_at, %s", id)
	st.SQL = w.String()
	return st
}

var titles = map[string]string{
	DossierOverdue:  "open dossiers (received, neither resolved nor withdrawn) past their latest deadline",
	DossierDueSoon:  "open dossiers (received, neither resolved nor withdrawn) whose deadline falls within the next working hours",
	FeedbackOverdue: "open tickets (received, neither resolved nor closed) past their deadline",
}

func workingColumn(list string) string {
	if list == DossierDueSoon {
		return "working_hours_left"
	}
	return "working_days_late"
}

// literal is a DateTime literal in local time, readable by an analyst.
func literal(t time.Time, loc *time.Location) string {
	return "toDateTime('" + t.In(loc).Format(time.DateTime) + "', " + query.Quote(loc.String()) + ")"
}

// oneLine keeps a value from ending an SQL comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func order(list string) string {
	if list == DossierDueSoon {
		return "soonest deadline first"
	}
	return "most late first"
}
