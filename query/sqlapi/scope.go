package sqlapi

import (
	"strings"

	"github.com/vn-ioc/ioc/query"
)

// Views are the curated views analysts read, in the order GET
// /api/v1/schema lists them. They are the views the KPI SQL reads too.
var Views = []string{"dossiers", "tickets", "surveys", "detections", "camera_status", "camera_overview", "indicators",
	"alerts", "kpi_values", "units", "procedures", "officers", "cameras", "calendar"}

// viewSource names the table whose documentation describes a view's
// columns when the view's own section does not.
var viewSource = map[string]string{"surveys": "survey_events", "detections": "camera_events"}

// LeaderScope is the policy scope of a leader bound to a unit subtree:
// every curated view, those about units filtered to the subtree; raw
// tables, state tables and the audit are out of reach.
func LeaderScope(database string, subtree []string) map[string]string {
	quoted := make([]string, len(subtree))
	for i, u := range subtree {
		quoted[i] = quoteString(u)
	}
	in := "(" + strings.Join(quoted, ", ") + ")"
	if len(subtree) == 0 {
		in = "('')" // matches nothing
	}
	return map[string]string{
		"dossiers":        "unit IN " + in,
		"tickets":         "unit IN " + in,
		"surveys":         "unit IN " + in,
		"detections":      "unit IN " + in,
		"indicators":      "unit IN " + in,
		"officers":        "unit IN " + in,
		"cameras":         "unit IN " + in,
		"camera_overview": "unit IN " + in,
		"alerts":          "unit IN " + in,
		"kpi_values":      "unit IN " + in,
		"camera_status":   "camera_id IN (SELECT id FROM " + query.Ref(database, "cameras", "unit IN "+in) + ")",
		// Reference data that is not about one unit's work is public.
		"units":      "",
		"procedures": "",
		"calendar":   "",
	}
}
