package alert

import (
	"fmt"
	"strings"
)

// Markers around the generated part of docs/alerts.md.
const (
	DocsBegin = "<!-- rules: generated from query/alert/rules.yaml; go test ./query/alert -run TestDocsUpToDate -update -->"
	DocsEnd   = "<!-- end of rules -->"
)

// Markdown is the table of the rules, as docs/alerts.md shows them.
func Markdown(rs *Rules) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rules file version %d.\n\n", rs.Version)
	b.WriteString("| rule | kind | severity | raises when | clears when |\n|---|---|---|---|---|\n")
	for _, r := range rs.Rules {
		raise, clear := r.conditions()
		title := r.Title.EN + " / " + r.Title.VI
		if r.Disabled {
			title += " (disabled)"
		}
		fmt.Fprintf(&b, "| `%s` — %s | %s | %s | %s | %s |\n", r.ID, title, r.Kind, r.Severity, raise, clear)
	}
	return b.String()
}

// conditions says in words when the rule raises and clears.
func (r *Rule) conditions() (raise, clear string) {
	pct := ""
	if r.Percent {
		pct = " %"
	}
	switch r.Kind {
	case KindThreshold:
		units := strings.Join(r.UnitKinds, ", ")
		floor := ""
		if r.MinDenominator > 0 {
			floor = fmt.Sprintf(", with a denominator of at least %d", r.MinDenominator)
		}
		if r.Above != nil {
			return fmt.Sprintf("`%s` over `%s` > %s%s for a unit (%s)%s", r.KPI, r.Window, formatNum(*r.Above), pct, units, floor),
				fmt.Sprintf("≤ %s%s", formatNum(*r.Clear), pct)
		}
		return fmt.Sprintf("`%s` over `%s` < %s%s for a unit (%s)%s", r.KPI, r.Window, formatNum(*r.Below), pct, units, floor),
			fmt.Sprintf("≥ %s%s", formatNum(*r.Clear), pct)
	case KindDossierDue:
		clear := "resolved or withdrawn, deadline moved past the window, or deadline passed (overdue)"
		if r.KeepOverdue {
			clear = "resolved or withdrawn, or deadline moved past the window (kept when overdue)"
		}
		return fmt.Sprintf("an open dossier is due within %s working hours", formatNum(r.Hours)), clear
	case KindTicketOverdue:
		return "an open ticket is past its deadline", "resolved or closed"
	case KindCameraSilent:
		return fmt.Sprintf("a camera heard from before is silent for %d minutes", r.Minutes), "heard from again"
	case KindCameraOffline:
		return fmt.Sprintf("a camera reports offline for %d minutes", r.Minutes), "reports online"
	case KindCameraLevel:
		return fmt.Sprintf("latest %s level ≥ %d, reported within %d minutes", r.Detection, r.Level, r.FreshMinutes),
			fmt.Sprintf("level < %d, or no report within %d minutes", *r.ClearLevel, r.FreshMinutes)
	}
	return "", ""
}
