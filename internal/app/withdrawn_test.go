package app

import (
	"testing"
	"time"
)

// A withdrawn dossier is never resolved (KPIS.md): a resolution that comes
// after its withdrawal counts in none of the resolution KPIs, though the
// dossier still counts as received; another dossier resolved the same way
// does.
func TestWithdrawnDossierIsNeverResolved(t *testing.T) {
	a, toks := node(t)
	const ward = "26740"
	now := time.Now().Truncate(time.Second)
	postEvents(t, a, toks["ingest"],
		dossierReceived("WD-1", ward, now.Add(-2*time.Hour), now.Add(-time.Hour)),
		event("dossier.withdrawn", "WD-1", now.Add(-90*time.Minute), `{"reason":"citizen asked"}`),
		event("dossier.resolved", "WD-1", now.Add(-30*time.Minute), `{"outcome":"rejected"}`),
		dossierReceived("RS-1", ward, now.Add(-2*time.Hour), now.Add(time.Hour)),
		event("dossier.resolved", "RS-1", now.Add(-30*time.Minute), `{"outcome":"approved"}`))
	waitKPI(t, a, toks["analyst"], "dossier.received?unit="+ward+"&window=24h", 2, 2)
	waitKPI(t, a, toks["analyst"], "dossier.resolved?unit="+ward+"&window=24h", 1, 1)
	waitKPI(t, a, toks["analyst"], "dossier.on_time_rate?unit="+ward+"&window=24h", 1, 1)
	waitKPI(t, a, toks["analyst"], "dossier.overdue_rate?unit="+ward+"&window=24h", 0, 1)
}

// A dossier waiting for a citizen's supplement is not overdue (BRIEF: the
// legal clock stops at the request), however long it waits; once the
// supplement is received, its new deadline decides.
func TestDossierWaitingForASupplementIsNotOverdue(t *testing.T) {
	a, toks := node(t)
	const ward = "26740"
	now := time.Now().Truncate(time.Second)
	postEvents(t, a, toks["ingest"],
		dossierReceived("SP-1", ward, now.Add(-72*time.Hour), now.Add(-24*time.Hour)),
		event("dossier.supplement_requested", "SP-1", now.Add(-48*time.Hour), `{"reason":"thiếu giấy tờ"}`),
		dossierReceived("SP-LATE", ward, now.Add(-72*time.Hour), now.Add(-24*time.Hour)))
	waitKPI(t, a, toks["analyst"], "dossier.received?unit="+ward+"&window=7d", 2, 2)
	waitKPI(t, a, toks["analyst"], "dossier.overdue_open?unit="+ward+"&window=now", 1, 1)
	// Received, with a new deadline already passed: overdue again.
	postEvents(t, a, toks["ingest"],
		event("dossier.supplement_received", "SP-1", now.Add(-2*time.Hour), `{"due_at":"`+now.Add(-time.Hour).Format(time.RFC3339)+`"}`))
	waitKPI(t, a, toks["analyst"], "dossier.overdue_open?unit="+ward+"&window=now", 2, 2)
}
