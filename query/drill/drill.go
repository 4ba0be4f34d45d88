package drill

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
)

// The lists.
const (
	DossierOverdue  = "dossier.overdue"
	DossierDueSoon  = "dossier.due_soon"
	FeedbackOverdue = "feedback.overdue"
)

// Lists are the names of every list.
var Lists = []string{DossierOverdue, DossierDueSoon, FeedbackOverdue}

// Known reports whether name is a list.
func Known(name string) bool { return slices.Contains(Lists, name) }

// Family is the event family whose commits can change a list: "dossier"
// or "feedback".
func Family(list string) string {
	f, _, _ := strings.Cut(list, ".")
	return f
}

// KPI is the KPI that counts what a list holds: its total for a unit is
// the KPI's value for that unit at the same instant.
func KPI(list string) string {
	switch list {
	case DossierOverdue:
		return "dossier.overdue_open"
	case DossierDueSoon:
		return "dossier.due_soon"
	case FeedbackOverdue:
		return "feedback.overdue_open"
	}
	return ""
}

// Bounds and defaults of a request.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	DefaultHours = 8
	MinHours     = 1
	MaxHours     = 80
)

// ErrUnknownList is wrapped by the error for a list that does not exist.
var ErrUnknownList = errors.New("unknown list")

// Request names one list of one unit subtree at one instant.
type Request struct {
	// List is one of Lists.
	List string
	// Unit is the root of the subtree: the unit and every unit whose path
	// holds it.
	Unit string
	// At is the instant the list is taken at, cut to the second. Default
	// now.
	At time.Time
	// Limit on the rows returned, 1–MaxLimit. Default DefaultLimit.
	Limit int
	// Hours of working time of the due-soon window (dossier.due_soon only),
	// MinHours–MaxHours. Default DefaultHours.
	Hours float64
}

// Validate names the field that is wrong. Zero values stand for the
// defaults.
func (r Request) Validate() error {
	switch {
	case !Known(r.List):
		return fmt.Errorf("list %q: %w (one of %s)", r.List, ErrUnknownList, strings.Join(Lists, ", "))
	case r.Unit == "":
		return errors.New("unit: missing")
	case r.Limit < 0 || r.Limit > MaxLimit:
		return fmt.Errorf("limit %d: between 1 and %d", r.Limit, MaxLimit)
	case r.Hours != 0 && r.List != DossierDueSoon:
		return fmt.Errorf("hours: only %s has a window of working hours", DossierDueSoon)
	case r.Hours != 0 && !(r.Hours >= MinHours && r.Hours <= MaxHours): // NaN too
		return fmt.Errorf("hours %v: between %d and %d working hours", r.Hours, MinHours, MaxHours)
	}
	return nil
}

func (r *Request) setDefaults() {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = r.At.Truncate(time.Second)
	if r.Limit == 0 {
		r.Limit = DefaultLimit
	}
	if r.Hours == 0 && r.List == DossierDueSoon {
		r.Hours = DefaultHours
	}
}

// Dossier is a row of dossier.overdue and dossier.due_soon.
type Dossier struct {
	DossierID     string `json:"dossier_id"`
	Unit          string `json:"unit"`
	UnitName      string `json:"unit_name"`
	HolderUnit    string `json:"holder_unit"`
	ProcedureCode string `json:"procedure_code"`
	// ProcedureName as the dossier was received with, else the reference
	// procedure's.
	ProcedureName string `json:"procedure_name"`
	Officer       string `json:"officer"`
	// OfficerName is empty when the officer is not in the reference data.
	OfficerName string    `json:"officer_name"`
	ReceivedAt  time.Time `json:"received_at"`
	DueAt       time.Time `json:"due_at"`
	Supplements uint64    `json:"supplements"`
	// WorkingDaysLate (dossier.overdue): working time from DueAt to the
	// list's instant, in working days of the calendar's working hours.
	WorkingDaysLate *float64 `json:"working_days_late,omitempty"`
	// WorkingHoursLeft (dossier.due_soon): working time from the list's
	// instant to DueAt, in hours.
	WorkingHoursLeft *float64 `json:"working_hours_left,omitempty"`

	hours float64 // working hours late or left
}

// Ticket is a row of feedback.overdue.
type Ticket struct {
	TicketID        string    `json:"ticket_id"`
	Unit            string    `json:"unit"`
	UnitName        string    `json:"unit_name"`
	HolderUnit      string    `json:"holder_unit"`
	Category        string    `json:"category"`
	Channel         string    `json:"channel"`
	Officer         string    `json:"officer"`
	OfficerName     string    `json:"officer_name"`
	ReceivedAt      time.Time `json:"received_at"`
	DueAt           time.Time `json:"due_at"`
	WorkingDaysLate float64   `json:"working_days_late"`

	hours float64
}

// Result is a list with what it was taken from.
type Result struct {
	List string    `json:"list"`
	Unit string    `json:"unit"`
	At   time.Time `json:"at"`
	// Until and Hours: the due-soon window, [At, Until) = Hours working
	// hours (dossier.due_soon only).
	Until *time.Time `json:"until,omitempty"`
	Hours float64    `json:"hours,omitempty"`
	Limit int        `json:"limit"`
	// Total counts every row the list matches, not only those returned.
	Total     uint64 `json:"total"`
	Truncated bool   `json:"truncated"`
	// Rows is []Dossier or []Ticket (never nil), most late first.
	Rows     any    `json:"rows"`
	SQL      string `json:"sql"`
	CountSQL string `json:"count_sql"`
}

// Dossiers are the rows of a dossier list (nil for feedback.overdue).
func (r *Result) Dossiers() []Dossier { d, _ := r.Rows.([]Dossier); return d }

// Tickets are the rows of feedback.overdue (nil for the dossier lists).
func (r *Result) Tickets() []Ticket { t, _ := r.Rows.([]Ticket); return t }

// Run computes a list: the rows page and the total, then the working time of
// each row on cal.
//
// When the KPI engine keeps the family's open entities (kpi_open, see
// kpi.OpenSQL), Run does not run the list's SQL over the whole view, whose
// cost grows with history. The entities of kpi_open that the list can hold
// give the total, as they give the KPI's count; they are taken in the
// list's order, a page at a time, and read from the view by key with the
// list's conditions until a page of them matches; the list's SQL limited
// to those ids gives the rows. A candidate the view no longer matches
// (the engine has not yet taken up the commit that closed it) is not
// listed, and not counted once read (one past the page read still is).
// The rows are the SQL's as soon as the engine has taken up the latest
// commit of the family; until then an entity that commit made match is
// missing, as it is from the KPI. Without open entities (no engine yet)
// Run runs the SQL and its count.
func Run(ctx context.Context, db *query.DB, cal *worktime.Calendar, r Request) (*Result, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	r.setDefaults()
	st := build(db.Database(), cal, r, nil)
	res := newResult(r, st, cal.Location())
	gen, err := kpi.Generation(ctx, db.Conn, db.Database(), "kpi_open", Family(r.List))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.List, err)
	}
	n := 0
	whole := false // every row of the list was read
	if gen == 0 {
		if n, err = res.read(ctx, db, st.SQL); err != nil {
			return nil, err
		}
		whole = n < r.Limit
		if err := db.Conn.QueryRow(ctx, st.CountSQL).Scan(&res.Total); err != nil {
			return nil, fmt.Errorf("list %s total: %w", r.List, err)
		}
	} else {
		ctx = query.Pushdown(ctx)
		page, total, err := fromOpen(ctx, db, cal, r, st, gen)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r.List, err)
		}
		res.Total = total
		whole = len(page) < r.Limit // the candidates ran out
		if beforePageRead != nil {
			beforePageRead()
		}
		// The page's ids in as many statements as their length needs,
		// the rows put back in the list's order.
		runs := 0
		for run := range query.Chunks(page, false) {
			m, err := res.read(ctx, db, build(db.Database(), cal, r, run).SQL)
			if err != nil {
				return nil, err
			}
			n, runs = n+m, runs+1
		}
		if runs > 1 {
			res.sortRows()
		}
		// An id of the page that no longer matches was closed since it
		// was matched: it is neither listed nor counted.
		res.Total -= min(res.Total, uint64(len(page)-n))
	}
	res.finish(cal, n, whole)
	return res, nil
}

// Test hooks: afterOpenCount runs between the count of the open entities
// and the reading of their pages, beforePageRead between the matching of
// the page's ids and the reading of their rows.
var afterOpenCount, beforePageRead func()

// fromOpen takes the list's page and total from generation gen of the
// family's open entities (Run): the ids of the page, in the list's order,
// and the total.
func fromOpen(ctx context.Context, db *query.DB, cal *worktime.Calendar, r Request, st Statement, gen uint64) (page []string, total uint64, err error) {
	open := kpi.OpenSQL(db.Database(), Family(r.List), gen, st.open)
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM ("+open+")").Scan(&total); err != nil {
		return nil, 0, err
	}
	if afterOpenCount != nil {
		afterOpenCount()
	}
	type key struct {
		due time.Time
		id  string
	}
	var keys []key
	seen := map[string]bool{}
	// Pages of candidates double, up to query.MaxKeys, so that many stale
	// ones at the head (an engine stopped for a while) cost few statements.
	for off, n := 0, r.Limit; len(keys) < r.Limit; off, n = off+n, min(2*n, query.MaxKeys) {
		ids, err := query.Strings(ctx, db.Conn, fmt.Sprintf("SELECT id FROM (%s)\nORDER BY due_at, id LIMIT %d, %d", open, off, n))
		if err != nil {
			return nil, 0, err
		}
		got := len(ids)
		// A commit between two pages can move an id into the next one.
		ids = slices.DeleteFunc(ids, func(id string) bool { return seen[id] })
		for _, id := range ids {
			seen[id] = true
		}
		matched := 0
		for run := range query.Chunks(ids, false) {
			m, err := matchKeys(ctx, db, build(db.Database(), cal, r, run).keys, func(due time.Time, id string) {
				keys = append(keys, key{due, id})
			})
			if err != nil {
				return nil, 0, err
			}
			matched += m
		}
		total -= min(total, uint64(len(ids)-matched)) // closed since the engine took them
		if got < n {
			break
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, k := range keys[:min(len(keys), r.Limit)] {
		page = append(page, k.id)
	}
	return page, total, nil
}

// matchKeys runs a statement of ids and deadlines, passes each row to add
// and says how many there were.
func matchKeys(ctx context.Context, db *query.DB, sql string, add func(due time.Time, id string)) (int, error) {
	rows, err := db.Conn.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var due time.Time
		if err := rows.Scan(&id, &due); err != nil {
			return 0, err
		}
		add(due, id)
		n++
	}
	return n, rows.Err()
}

// read runs a statement of the list's rows, adds them to res.Rows and
// says how many it read.
func (res *Result) read(ctx context.Context, db *query.DB, sql string) (int, error) {
	rows, err := db.Conn.Query(ctx, sql)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", res.List, err)
	}
	defer rows.Close()
	var n int
	switch res.List {
	case FeedbackOverdue:
		out := res.Rows.([]Ticket)
		for rows.Next() {
			var t Ticket
			if err := rows.Scan(&t.TicketID, &t.Unit, &t.UnitName, &t.HolderUnit, &t.Category, &t.Channel,
				&t.Officer, &t.OfficerName, &t.ReceivedAt, &t.DueAt); err != nil {
				return 0, fmt.Errorf("list %s: %w", res.List, err)
			}
			out = append(out, t)
			n++
		}
		res.Rows = out
	default:
		out := res.Rows.([]Dossier)
		for rows.Next() {
			var d Dossier
			if err := rows.Scan(&d.DossierID, &d.Unit, &d.UnitName, &d.HolderUnit, &d.ProcedureCode, &d.ProcedureName,
				&d.Officer, &d.OfficerName, &d.ReceivedAt, &d.DueAt, &d.Supplements); err != nil {
				return 0, fmt.Errorf("list %s: %w", res.List, err)
			}
			out = append(out, d)
			n++
		}
		res.Rows = out
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list %s: %w", res.List, err)
	}
	return n, nil
}

// sortRows puts the rows in the list's order (the SQL's ORDER BY due_at,
// id) after reads of several statements.
func (res *Result) sortRows() {
	switch rows := res.Rows.(type) {
	case []Dossier:
		slices.SortFunc(rows, func(a, b Dossier) int {
			return cmp.Or(a.DueAt.Compare(b.DueAt), strings.Compare(a.DossierID, b.DossierID))
		})
	case []Ticket:
		slices.SortFunc(rows, func(a, b Ticket) int {
			return cmp.Or(a.DueAt.Compare(b.DueAt), strings.Compare(a.TicketID, b.TicketID))
		})
	}
}

func newResult(r Request, st Statement, loc *time.Location) *Result {
	res := &Result{List: r.List, Unit: r.Unit, At: st.At.In(loc), Limit: r.Limit, SQL: st.SQL, CountSQL: st.CountSQL, Rows: []Dossier{}}
	if r.List == FeedbackOverdue {
		res.Rows = []Ticket{}
	}
	if r.List == DossierDueSoon {
		u := st.Until.In(loc)
		res.Until, res.Hours = &u, r.Hours
	}
	return res
}

// finish sets the working time of every row from its due_at, puts the
// times in the calendar's zone, and reconciles the total with the n rows
// read: when they are the whole list, they are the total (the count, a
// statement of its own, may have seen a commit more or less).
func (res *Result) finish(cal *worktime.Calendar, n int, whole bool) {
	loc := cal.Location()
	switch rows := res.Rows.(type) {
	case []Dossier:
		for i := range rows {
			d := &rows[i]
			d.ReceivedAt, d.DueAt = d.ReceivedAt.In(loc), d.DueAt.In(loc)
			if res.List == DossierDueSoon {
				d.hours = cal.WorkingHoursBetween(res.At, d.DueAt)
				h := d.hours
				d.WorkingHoursLeft = &h
			} else {
				d.hours = cal.WorkingHoursBetween(d.DueAt, res.At)
				days := cal.WorkingDaysBetween(d.DueAt, res.At)
				d.WorkingDaysLate = &days
			}
		}
	case []Ticket:
		for i := range rows {
			t := &rows[i]
			t.ReceivedAt, t.DueAt = t.ReceivedAt.In(loc), t.DueAt.In(loc)
			t.hours = cal.WorkingHoursBetween(t.DueAt, res.At)
			t.WorkingDaysLate = cal.WorkingDaysBetween(t.DueAt, res.At)
		}
	}
	if whole || res.Total < uint64(n) {
		res.Total = uint64(n)
	}
	res.Truncated = res.Total > uint64(n)
}

// Digest identifies what a list shows, to tell whether it changed: the
// total, the truncation and every field of every row, with the working time
// in whole working hours — the instant alone does not change it until a
// row's working time crosses a whole hour.
func (res *Result) Digest() [32]byte {
	h := sha256.New()
	var buf [8]byte
	num := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	str := func(ss ...string) {
		for _, s := range ss {
			num(uint64(len(s)))
			h.Write([]byte(s))
		}
	}
	hours := func(f float64) { num(uint64(int64(math.Floor(f)))) }
	str(res.List, res.Unit)
	num(res.Total)
	if res.Truncated {
		num(1)
	} else {
		num(0)
	}
	switch rows := res.Rows.(type) {
	case []Dossier:
		num(uint64(len(rows)))
		for _, d := range rows {
			str(d.DossierID, d.Unit, d.UnitName, d.HolderUnit, d.ProcedureCode, d.ProcedureName, d.Officer, d.OfficerName)
			num(uint64(d.ReceivedAt.Unix()))
			num(uint64(d.DueAt.Unix()))
			num(d.Supplements)
			hours(d.hours)
		}
	case []Ticket:
		num(uint64(len(rows)))
		for _, t := range rows {
			str(t.TicketID, t.Unit, t.UnitName, t.HolderUnit, t.Category, t.Channel, t.Officer, t.OfficerName)
			num(uint64(t.ReceivedAt.Unix()))
			num(uint64(t.DueAt.Unix()))
			hours(t.hours)
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ChannelPrefix starts the websocket channel of a list.
const ChannelPrefix = "list:"

// Channel is the websocket channel of a list of a unit subtree:
// list:<list>:<unit>.
func Channel(list, unit string) string { return ChannelPrefix + list + ":" + unit }

// ParseChannel reads a list:<list>:<unit> channel; ok is false when the
// channel does not have that shape (the list is not checked).
func ParseChannel(ch string) (list, unit string, ok bool) {
	rest, found := strings.CutPrefix(ch, ChannelPrefix)
	if !found {
		return "", "", false
	}
	list, unit, found = strings.Cut(rest, ":")
	if !found || list == "" || unit == "" || strings.Contains(unit, ":") {
		return "", "", false
	}
	return list, unit, true
}
