package kpi

import (
	"fmt"
	"strings"
)

//go:generate go test -run TestDocsUpToDate -update .

var familyTitles = map[string]string{
	"dossier":  "Dossiers (hồ sơ thủ tục hành chính)",
	"feedback": "Feedback (phản ánh kiến nghị, 1022)",
	"survey":   "Satisfaction (hài lòng)",
	"camera":   "Cameras",
}

// Markdown is docs/kpis.md, generated from the catalog.
func Markdown(c *Catalog) string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("# KPI catalog\n\n")
	p("*Danh mục chỉ số — sinh tự động từ `query/kpi/catalog.yaml`; đừng sửa tay.*\n\n")
	p("Generated from [`query/kpi/catalog.yaml`](../query/kpi/catalog.yaml) (catalog version %d) by\n", c.Version)
	p("`go generate ./query/kpi`; a test fails when this page and the catalog disagree.\n\n")
	p("## How a value is computed\n\n")
	p("Every value is keyed by **{kpi, unit, window}**. A unit means the unit **and its whole\n")
	p("subtree** (`units.path`). Each KPI sums two integer expressions over the rows of one\n")
	p("curated view ([schema.md](schema.md)) whose unit is in the subtree, whose `time` column is\n")
	p("in the window and that pass the filter:\n\n")
	p("| kind | value |\n|---|---|\n")
	p("| `count` | numerator (the denominator is the number of rows counted) |\n")
	p("| `ratio` | numerator / denominator, `null` when the denominator is 0 |\n")
	p("| `mean` | numerator / denominator × scale |\n")
	p("| `per_minute` | numerator / minutes of the window that have passed |\n\n")
	p("Windows (Asia/Ho_Chi_Minh): `today`, `week` (Monday–Sunday), `month`, `quarter`, `ytd`\n")
	p("(whole calendar periods), `7d`, `30d` (the last 7 or 30 days, today included), `24h` (the\n")
	p("last 24 hours, the current one included), or a custom `from`/`to` on REST. The engine keeps\n")
	p("the sums of every windowed KPI per hour and day and unit (tables `kpi_hourly`, `kpi_daily`),\n")
	p("so a window costs what it holds, not the whole history; the SQL below reads the views\n")
	p("themselves and gives the same numbers. Trends (`/series`) and custom windows are read from\n")
	p("these sums too when they hold the span: whole hours since the first hour of the standard windows\n")
	p("(January 1st, or 29 days before today if earlier), once the engine has built them with\n")
	p("the definitions in force; other spans read the views. KPIs without a time column are taken at an instant: their only\n")
	p("window is `now`. In the SQL fragments, `{now}` is that instant, `{now_minus:S}` S seconds\n")
	p("earlier and `{now_plus_working_hours:H}` H working hours later on the business calendar.\n")
	p("`{working_seconds:a,b}` is the working time in seconds from column `a` to column `b` on the\n")
	p("business calendar (0 when `b` is before `a`), and `{working_seconds_sum:as,bs}` the same for\n")
	p("each pair of elements of two `Array(DateTime)` columns, summed: the SQL carries the\n")
	p("calendar as a string literal (for each day from the day before the first exception to the\n")
	p("day after the last, weekend days worked minus weekdays off before it, two base-64 characters\n")
	p("from `0`; one lookup of four characters gives a day and the next) and the\n")
	p("sessions as seconds of the day, so it depends on the row and the calendar only, and counts\n")
	p("over windows too. A numerator made of these placeholders alone, added and subtracted, is\n")
	p("measured in Go when the engine looks up the entities a commit touched (the same seconds;\n")
	p("the tests check both against each other), as the SQL costs ClickHouse more per row than\n")
	p("the rest of such a lookup.\n\n")
	p("`GET /api/v1/kpis/{kpi}/sql?unit=&window=` gives the exact statement behind a value: run in\n")
	p("clickhouse-client it returns the same numerator, denominator and value. A KPI with\n")
	p("breakdowns is also given by each value of those columns of its view:\n")
	p("`GET /api/v1/kpis/{kpi}/breakdown?unit=&window=&by=` returns one group per value (an\n")
	p("officer with the name the reference data gives), each with its numerator, denominator and\n")
	p("value, which sum to the KPI's value, and the SQL behind them.\n\n")
	for _, fam := range c.Families() {
		title := familyTitles[fam]
		if title == "" {
			title = fam
		}
		p("## %s\n\n", title)
		for _, k := range c.KPIs {
			if k.Family != fam {
				continue
			}
			p("### `%s` — %s\n\n", k.ID, k.Title.EN)
			p("*%s*\n\n", k.Title.VI)
			p("%s\n\n", k.Definition)
			if k.Example != "" {
				p("Example: %s.\n\n", k.Example)
			}
			src := c.Sources[k.Source]
			p("| | |\n|---|---|\n")
			p("| kind | `%s`%s |\n", k.Kind, formatNote(k))
			p("| windows | %s |\n", "`"+strings.Join(k.Windows(), "`, `")+"`")
			p("| view | `%s` (unit column `%s`) |\n", src.View, src.Unit)
			if k.Time != "" {
				p("| time column | `%s` |\n", k.Time)
			}
			if k.Filter != "" {
				p("| filter | `%s` |\n", cell(k.Filter))
			}
			p("| numerator | `%s` |\n", cell(k.Numerator))
			if k.Denominator != "" {
				p("| denominator | `%s` |\n", cell(k.Denominator))
			}
			if k.Scale != 1 {
				p("| scale | %g |\n", k.Scale)
			}
			if len(k.Breakdowns) > 0 {
				p("| breakdowns | %s |\n", "`"+strings.Join(k.Breakdowns, "`, `")+"`")
			}
			p("| better | %s |\n| version | %d |\n\n", k.Better, k.Version)
		}
	}
	for _, sc := range c.Scorecards {
		scorecardMarkdown(p, sc)
	}
	return w.String()
}

// scorecardMarkdown documents a scorecard: its groups, indicators, points
// and sources.
func scorecardMarkdown(p func(string, ...any), sc *Scorecard) {
	p("## `%s.*` — %s\n\n", sc.ID, sc.Title.EN)
	p("*%s*\n\n", sc.Title.VI)
	p("Version %d: %s. Generated from [`query/kpi/%s.yaml`](../query/kpi/%[3]s.yaml).\n\n", sc.Version, sc.Methodology, sc.ID)
	p("Composite values `%s.total` (out of %g) and `%[1]s.<group>`, computed on request from the\n", sc.ID, sc.Max)
	p("values of their components for the same unit and window: each indicator earns\n")
	p("points × min(1, rate / full at); its rate is a KPI's value or the `indicator.reported`\n")
	p("figure of the unit for the latest period overlapping the window (`measure: percent` is\n")
	p("divided by 100); an indicator without a rate earns 0 and is listed as missing. `/sql`\n")
	p("answers 400: a composite is explained by its components. Live on the websocket as\n")
	p("`kpi:%s.total:<unit>:<window>`, computed by the node again when a component changes.\n\n", sc.ID)
	if len(sc.Ratings) > 0 {
		var rs []string
		for _, r := range sc.Ratings {
			rs = append(rs, fmt.Sprintf("%s (%s) ≥ %g", r.Name.VI, r.Name.EN, r.Min))
		}
		note := ""
		if sc.RatingsUnconfirmed {
			note = " (thresholds unconfirmed)"
		}
		p("Rating of a total%s: %s.\n\n", note, strings.Join(rs, ", "))
	}
	p("| group | indicator | points | full at | source |\n|---|---|---|---|---|\n")
	for _, g := range sc.Groups {
		for i, ind := range g.Indicators {
			group := ""
			if i == 0 {
				group = fmt.Sprintf("`%s` %s (%g)", g.ID, g.Title.EN, g.Max)
			}
			src := "KPI `" + ind.KPI + "`"
			if ind.Reported != "" {
				src = "reported `" + ind.Reported + "`"
			}
			pts := fmt.Sprintf("%g", ind.Points)
			if ind.Unconfirmed {
				pts += " (unconfirmed)"
			}
			p("| %s | `%s` %s | %s | %g | %s |\n", group, ind.ID, ind.Title.EN, pts, ind.FullAt, src)
		}
	}
	p("\n")
}

func formatNote(k *KPI) string {
	if k.Format == "" {
		return ""
	}
	return ", shown as " + k.Format
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
