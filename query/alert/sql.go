package alert

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
)

// thresholdValue is what the rule compares with, for the alert's record:
// the KPI threshold, the working hours, the minutes, the level.
func (r *Rule) thresholdValue() float64 {
	switch r.Kind {
	case KindThreshold:
		return r.threshold()
	case KindDossierDue:
		return r.Hours
	case KindCameraSilent, KindCameraOffline:
		return float64(r.Minutes)
	case KindCameraLevel:
		return float64(r.Level)
	}
	return 0
}

func formatNum(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func unixLit(t time.Time) string { return "toDateTime(" + strconv.FormatInt(t.Unix(), 10) + ")" }

// Query is the SQL an entity rule runs at an instant, over the curated
// views of database db: the subjects that keep an alert open, each with
// its unit, a time and a number the rule judges, and a label. Exposed so
// that operators can see what a rule reads (GET /api/v1/alerts/rules).
func (r *Rule) Query(db string, at, until time.Time) string { return r.QueryFor(db, at, until, nil) }

// QueryFor is Query limited to the subjects ids (all of them when ids is
// nil; the dossier and ticket rules only): with query.Pushdown,
// ClickHouse reads those subjects' state only.
func (r *Rule) QueryFor(db string, at, until time.Time, ids []string) string {
	now := unixLit(at)
	only := func(col string) string {
		if ids == nil {
			return ""
		}
		return query.In(col, ids) + "\n  AND "
	}
	switch r.Kind {
	case KindDossierDue:
		// Open dossiers due before the end of the window, overdue ones
		// included: an alert raised while due soon stays open until the
		// dossier is resolved or withdrawn, or its deadline moves away.
		return fmt.Sprintf("SELECT dossier_id, unit, due_at, toInt64(0), procedure_name FROM %s.dossiers\n"+
			"WHERE %sreceived_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0)\n"+
			"  AND supplement_requested_at[-1] <= supplement_received_at[-1]\n"+
			"  AND due_at > toDateTime(0) AND due_at <= %s", db, only("dossier_id"), unixLit(until))
	case KindTicketOverdue:
		return fmt.Sprintf("SELECT ticket_id, unit, due_at, toInt64(0), category FROM %s.tickets\n"+
			"WHERE %sreceived_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0)\n"+
			"  AND due_at > toDateTime(0) AND due_at < %s", db, only("ticket_id"), now)
	case KindCameraSilent:
		return fmt.Sprintf("SELECT camera_id, unit, last_seen_at, toInt64(0), name FROM %s.camera_overview\n"+
			"WHERE last_seen_at > toDateTime(0) AND last_seen_at < %s - %d", db, now, r.Minutes*60)
	case KindCameraOffline:
		// Offline since its last status saying online: a camera keeps
		// sending its status while offline, so the latest status (status_at)
		// says nothing of how long. The statuses are read over a lookback
		// (the events' key starts with type and time), far longer than any
		// rule's minutes: a camera not online within it has been offline
		// at least that long.
		lookback := unixLit(at.Add(-max(24*time.Hour, 2*time.Duration(r.Minutes)*time.Minute)))
		return fmt.Sprintf("SELECT camera_id, unit, greatest(last_online, %[3]s) AS since, toInt64(0), name FROM (\n"+
			"    SELECT camera_id, unit, name FROM %[1]s.camera_overview WHERE online = 0 AND status_at > toDateTime(0)\n"+
			") ANY LEFT JOIN (\n"+
			"    SELECT subject AS camera_id, maxIf(time, online = 1) AS last_online FROM %[1]s.camera_events\n"+
			"    WHERE type = 'status' AND time >= %[3]s AND time <= %[2]s GROUP BY subject\n"+
			") USING camera_id\n"+
			"WHERE since < %[2]s - %[4]d", db, now, lookback, r.Minutes*60)
	case KindCameraLevel:
		return fmt.Sprintf("SELECT camera_id, unit, %[2]s_at, toInt64(%[2]s_level), name FROM %[1]s.camera_overview\n"+
			"WHERE %[2]s_level >= %[3]d AND %[2]s_at >= %[4]s - %[5]d", db, r.Detection, *r.ClearLevel, now, r.FreshMinutes*60)
	}
	return ""
}

// Open entities. The dossier_due and ticket_overdue rules judge open
// dossiers and tickets; reading the dossiers or tickets view for them
// merges the state of every entity ever stored, on every evaluation, so
// its cost would grow with history. When the KPI engine keeps the family's
// open entities in kpi_open (schema 0010), the evaluator first takes from
// it the ids that can raise an alert now (open and due in the rule's
// window: at most what is open), adds the subjects of the rule's open
// alerts, and reads the view for those ids only, a lookup by key. The view
// stays the judge: kpi_open only narrows which ids are read, and the
// subject of an open alert is always read, so alerts clear exactly as
// before. The engine writes kpi_open in its own round after a commit, which
// may end after the evaluation that commit wakes; so the subjects of the
// commits that woke it are read as well (up to maxTouched), and an entity
// a commit made match raises its alert then, not one evaluation later.
// Without a generation of kpi_open (the engine not yet started) the rule
// reads the whole view.

// overOpen tells a rule over open entities (dossiers, tickets).
func (r *Rule) overOpen() bool { return r.Kind == KindDossierDue || r.Kind == KindTicketOverdue }

// candidates is the condition, over an open entity's unit and deadline
// (kpi.OpenIDs), under which rule r (overOpen) can raise an alert for it at
// `at`.
func (r *Rule) candidates(at, until time.Time) func(unit, due string) string {
	// dossier_due: due within the window, its end included (from 17:00 a
	// window ends at a 17:00, where deadlines fall).
	lo, hi, end := unixLit(at), unixLit(until), " <= "
	if r.Kind == KindTicketOverdue {
		lo, hi, end = "toDateTime(0)", unixLit(at), " < " // overdue
	}
	return func(_, due string) string { return due + " > " + lo + " AND " + due + end + hi }
}

// statements are the SQL statements that give rule r's matches at `at`:
// one over the whole view, or (lookup true) lookups by key of the
// candidates from kpi_open, the subjects of the rule's open alerts and the
// touched ones.
func (e *Evaluator) statements(ctx context.Context, r *Rule, at, until time.Time, touched map[string]bool) (stmts []string, lookup bool, err error) {
	db := e.d.DB.Database()
	whole := []string{r.Query(db, at, until)}
	if !r.overOpen() {
		return whole, false, nil
	}
	cand, gen, err := kpi.OpenIDs(ctx, e.d.DB.Conn, db, r.Family(), r.candidates(at, until))
	if err != nil || gen == 0 {
		return whole, false, err
	}
	ids := map[string]bool{}
	for k := range e.open {
		if k.rule == r.ID {
			ids[k.subject] = true
		}
	}
	for _, id := range cand {
		ids[id] = true
	}
	for id := range touched {
		ids[id] = true
	}
	sorted := slices.Sorted(maps.Keys(ids))
	for chunk := range query.Chunks(sorted, false) {
		stmts = append(stmts, r.QueryFor(db, at, until, chunk))
	}
	return stmts, true, nil
}

// matches runs an entity rule's statements and judges their rows.
func (e *Evaluator) matches(ctx context.Context, r *Rule, at time.Time, touched map[string]bool) ([]match, error) {
	cal := e.d.Calendar()
	var until time.Time
	if r.Kind == KindDossierDue {
		until = cal.AddWorkingHours(at, r.Hours)
	}
	stmts, lookup, err := e.statements(ctx, r, at, until, touched)
	if err != nil {
		return nil, err
	}
	if lookup {
		ctx = query.Pushdown(ctx)
	}
	var out []match
	for _, q := range stmts {
		if out, err = e.judgeRows(ctx, r, q, at, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// judgeRows runs one statement of rule r and appends its judged rows to out.
func (e *Evaluator) judgeRows(ctx context.Context, r *Rule, q string, at time.Time, out []match) ([]match, error) {
	cal := e.d.Calendar()
	rows, err := e.d.DB.Conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	loc := cal.Location()
	for rows.Next() {
		var m match
		var t time.Time
		var level int64
		var label string
		if err := rows.Scan(&m.subject, &m.unit, &t, &level, &label); err != nil {
			return nil, err
		}
		local := t.In(loc).Format("2006-01-02 15:04")
		switch r.Kind {
		case KindDossierDue:
			left := cal.WorkingHoursBetween(at, t)
			if !t.After(at) {
				left = -cal.WorkingHoursBetween(t, at)
			}
			m.value = roundTo(left, 2)
			m.raise = t.After(at) // due soon, not overdue already
			m.detail = fmt.Sprintf("%s, due %s: %s working hours left", label, local, formatNum(m.value))
			if !m.raise && !r.KeepOverdue {
				m.clear = "its deadline (" + local + ") passed: the dossier is overdue (in the overdue list)"
			}
		case KindTicketOverdue:
			m.value = roundTo(at.Sub(t).Hours(), 2)
			m.raise = true
			m.detail = fmt.Sprintf("%s, due %s: %s hours late", label, local, formatNum(m.value))
		case KindCameraSilent:
			m.value = float64(int(at.Sub(t).Minutes()))
			m.raise = true
			m.detail = fmt.Sprintf("%s: last heard %s, %s minutes ago", label, local, formatNum(m.value))
		case KindCameraOffline:
			m.value = float64(int(at.Sub(t).Minutes()))
			m.raise = true
			m.detail = fmt.Sprintf("%s: offline since %s (its last status saying online)", label, local)
		case KindCameraLevel:
			m.value = float64(level)
			m.raise = level >= int64(r.Level)
			m.detail = fmt.Sprintf("%s: %s level %d at %s", label, r.Detection, level, local)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func roundTo(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}
