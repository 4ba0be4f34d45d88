package alert

import (
	"context"
	"fmt"
	"strconv"
	"time"
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
func (r *Rule) Query(db string, at, until time.Time) string {
	now := unixLit(at)
	switch r.Kind {
	case KindDossierDue:
		// Open dossiers due before the end of the window, overdue ones
		// included: an alert raised while due soon stays open until the
		// dossier is resolved or withdrawn, or its deadline moves away.
		return fmt.Sprintf("SELECT dossier_id, unit, due_at, toInt64(0), procedure_name FROM %s.dossiers\n"+
			"WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0)\n"+
			"  AND due_at > toDateTime(0) AND due_at < %s", db, unixLit(until))
	case KindTicketOverdue:
		return fmt.Sprintf("SELECT ticket_id, unit, due_at, toInt64(0), category FROM %s.tickets\n"+
			"WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0)\n"+
			"  AND due_at > toDateTime(0) AND due_at < %s", db, now)
	case KindCameraSilent:
		return fmt.Sprintf("SELECT camera_id, unit, last_seen_at, toInt64(0), name FROM %s.camera_overview\n"+
			"WHERE last_seen_at > toDateTime(0) AND last_seen_at < %s - %d", db, now, r.Minutes*60)
	case KindCameraOffline:
		return fmt.Sprintf("SELECT camera_id, unit, status_at, toInt64(0), name FROM %s.camera_overview\n"+
			"WHERE online = 0 AND status_at > toDateTime(0) AND status_at < %s - %d", db, now, r.Minutes*60)
	case KindCameraLevel:
		return fmt.Sprintf("SELECT camera_id, unit, %[2]s_at, toInt64(%[2]s_level), name FROM %[1]s.camera_overview\n"+
			"WHERE %[2]s_level >= %[3]d AND %[2]s_at >= %[4]s - %[5]d", db, r.Detection, *r.ClearLevel, now, r.FreshMinutes*60)
	}
	return ""
}

// matches runs an entity rule's query and judges its rows.
func (e *Evaluator) matches(ctx context.Context, r *Rule, at time.Time) ([]match, error) {
	cal := e.d.Calendar()
	var until time.Time
	if r.Kind == KindDossierDue {
		until = cal.AddWorkingHours(at, r.Hours)
	}
	rows, err := e.d.DB.Conn.Query(ctx, r.Query(e.d.DB.Database(), at, until))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	loc := cal.Location()
	var out []match
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
			m.detail = fmt.Sprintf("%s: offline since %s", label, local)
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
