package query

import (
	"regexp"
	"strings"
	"testing"
)

// viewsInSubqueries names the views of views (as db.name) that sql reads
// inside the subquery of an IN or a JOIN.
func viewsInSubqueries(sql string, views map[string]bool) []string {
	var found []string
	for _, open := range regexp.MustCompile(`(?i)(JOIN|IN)\s*\(`).FindAllStringIndex(sql, -1) {
		depth, end := 1, open[1]
		for ; end < len(sql) && depth > 0; end++ {
			switch sql[end] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		for _, m := range regexp.MustCompile(`\b(\w+\.\w+)\b`).FindAllString(sql[open[1]:end], -1) {
			if views[m] {
				found = append(found, m)
			}
		}
	}
	return found
}

// The views, as the migrations leave them, read no view in a subquery of
// an IN or a JOIN (see Ref).
func TestViewsReadNoViewInSubqueries(t *testing.T) {
	ms, err := Migrations("ioc", "")
	if err != nil {
		t.Fatal(err)
	}
	create := regexp.MustCompile(`(?m)^CREATE VIEW IF NOT EXISTS (ioc\.\w+)`)
	views, last := map[string]bool{}, map[string]string{}
	for _, m := range ms {
		for _, s := range m.Statements {
			if c := create.FindStringSubmatch(s); c != nil {
				views[c[1]] = true
				last[c[1]] = s
			}
		}
	}
	if len(views) < 10 {
		t.Fatalf("found %d views: the pattern no longer matches the migrations", len(views))
	}
	for v, s := range last {
		if found := viewsInSubqueries(s, views); len(found) > 0 {
			t.Errorf("%s reads %s in a subquery of an IN or a JOIN", v, strings.Join(found, ", "))
		}
	}
	if got := viewsInSubqueries("SELECT 1 FROM ioc.dossiers WHERE unit IN (SELECT code FROM ioc.units WHERE has(path, '79'))", views); len(got) != 1 {
		t.Errorf("the check found %v in a statement that reads ioc.units in an IN", got)
	}
	if got := viewsInSubqueries("SELECT 1 FROM ioc.dossiers WHERE unit IN (SELECT code FROM "+Ref("ioc", "units", "has(path, '79')")+")", views); len(got) != 0 {
		t.Errorf("the check found %v in a statement through Ref", got)
	}
}
