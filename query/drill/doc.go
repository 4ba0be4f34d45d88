// Package drill lists the dossiers and tickets behind the overdue and
// due-soon KPIs of a unit subtree, and guarantees that every list is the
// result of one ClickHouse statement (plus one for its total) that it returns
// with the rows, so an analyst who runs that SQL gets the same rows, and that
// its filters are those of the KPIs (dossier.overdue_open, dossier.due_soon,
// feedback.overdue_open), so a list's total is the KPI's count.
//
// The lists:
//
//   - dossier.overdue: dossiers received, neither resolved nor withdrawn,
//     whose latest deadline (due_at) is before the instant at;
//   - dossier.due_soon: the same open dossiers whose deadline falls in
//     [at, at + H working hours], H = 8 by default (1–80);
//   - feedback.overdue: tickets received, neither resolved nor closed, whose
//     deadline is before at.
//
// Rows come most late first (due_at ascending, ties by id), at most Limit of
// them (100 by default, 1,000 at most); Total counts every matching row and
// Truncated says rows were left out. Working time is that of the business
// calendar (internal/worktime): working_days_late is the working time from
// due_at to at in working days of 8 working hours (fractional: 4 working
// hours late is 0.5), working_hours_left the working time from at to due_at;
// ClickHouse does not know the calendar, so ioc computes both in Go from the
// due_at of each row.
//
// The SQL reads the curated views (dossiers, tickets, units, procedures,
// officers) and stays within what ClickHouse 18.16 accepts: no window
// functions, one ANY LEFT JOIN … USING per SELECT (nested for several),
// instants as toDateTime('YYYY-MM-DD hh:mm:ss', '<zone>') literals in the
// calendar's zone, strings quoted as ClickHouse string literals.
//
// The list and its total are two statements: rows committed between them can
// make Total disagree with the rows by that much; Run never reports fewer
// total rows than it returns.
//
// Run does not run them over the whole view when the KPI engine keeps the
// family's open entities (kpi_open): it reads only those the list can hold,
// by key (see Run).
package drill
