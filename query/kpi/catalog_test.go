package kpi

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/kpis.md from the catalog")

// notYet are the ids of KPIS.md the catalog does not compute yet; the
// test fails when one is added without being taken off this list.
var notYet = map[string]bool{}

func TestCatalogCoversKPIsMD(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "domain", "KPIS.md"))
	if err != nil {
		t.Skipf("the domain brief is not next to the repository: %v", err)
	}
	ids := regexp.MustCompile("\\| `([a-z0-9_]+\\.[a-z0-9_]+)` \\|").FindAllStringSubmatch(string(b), -1)
	if len(ids) < 25 {
		t.Fatalf("found only %d ids in KPIS.md", len(ids))
	}
	for _, m := range ids {
		_, ok := cat.KPI(m[1])
		switch {
		case !ok && !notYet[m[1]]:
			t.Errorf("%s is in KPIS.md but not in the catalog", m[1])
		case ok && notYet[m[1]]:
			t.Errorf("%s is in the catalog: take it off notYet", m[1])
		}
	}
}

func TestCatalogRejects(t *testing.T) {
	base := `catalog_version: 1
sources: {dossiers: {view: dossiers, unit: unit, id: dossier_id, family: dossier, hours: {received_at: received}}}
kpis:
  - id: dossier.x
    family: dossier
    version: 1
    title: {en: X, vi: X}
    definition: x
    source: dossiers
    time: received_at
    numerator: "1"
    kind: count
    better: higher
`
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("base catalog: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "better: higher", "better: higher\n    colour: red", "field colour not found"},
		{"bad id", "id: dossier.x", "id: Dossier-X", "must look like family.name"},
		{"family prefix", "    family: dossier\n", "    family: feedback\n", "must be the id's prefix"},
		{"unknown source", "source: dossiers", "source: nowhere", `source "nowhere" is not declared`},
		{"ratio without denominator", "kind: count", "kind: ratio", "needs a denominator"},
		{"count with denominator", `numerator: "1"`, "numerator: \"1\"\n    denominator: \"1\"", "a count has no denominator"},
		{"unknown kind", "kind: count", "kind: median", `kind "median"`},
		{"semicolon", `numerator: "1"`, `numerator: "1; DROP TABLE x"`, `";" is not allowed`},
		{"comment", `numerator: "1"`, `numerator: "1 -- x"`, `"--" is not allowed`},
		{"placeholder", `numerator: "1"`, `numerator: "due_at < {tomorrow}"`, "unknown placeholder {tomorrow}"},
		{"placeholder arg", `numerator: "1"`, `numerator: "due_at < {now_minus}"`, "needs a number"},
		{"unbalanced", `numerator: "1"`, `numerator: "(1"`, "unbalanced"},
		{"time column", "time: received_at", "time: received at", "is not a column name"},
		{"time without hours", "time: received_at", "time: resolved_at", "keeps no hours for it"},
		{"placeholder over windows", `numerator: "1"`, `numerator: "due_at < {now}"`, "may not depend on the instant"},
		{"working seconds of one column", `numerator: "1"`, `numerator: "{working_seconds:received_at}"`, "needs two column names"},
		{"working seconds of an expression", `numerator: "1"`, `numerator: "{working_seconds_sum:a,b+1}"`, "not a placeholder"},
		{"better", "better: higher", "better: more", `better "more"`},
		{"filtered without its condition", "received}}}", `received}, filtered: "(SELECT * FROM {db}.dossiers)"}}`, "needs a parenthesized table expression with {where} once"},
		{"filtered with a semicolon", "received}}}", `received}, filtered: "(SELECT * FROM {db}.dossiers WHERE {where}); DROP TABLE x"}}`, "needs a parenthesized table expression"},
		{"unknown breakdown", "better: higher", "better: higher\n    breakdowns: [officer]", `"officer" is not a dimension of source dossiers`},
		{"duplicate", "", "", "declared twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if tc.name == "duplicate" {
				src = base + base[strings.Index(base, "  - id"):]
			}
			_, err := Parse([]byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDocsUpToDate(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "kpis.md")
	want := Markdown(cat)
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/kpis.md is not generated from catalog.yaml: run go test ./query/kpi -run TestDocsUpToDate -update")
	}
}

func TestResolve(t *testing.T) {
	loc := time.FixedZone("ICT", 7*3600)
	at := time.Date(2026, 11, 22, 15, 4, 5, 0, loc) // a Sunday
	for _, tc := range []struct{ window, from, to string }{
		{"today", "2026-11-22 00:00:00", "2026-11-23 00:00:00"},
		{"week", "2026-11-16 00:00:00", "2026-11-23 00:00:00"},
		{"month", "2026-11-01 00:00:00", "2026-12-01 00:00:00"},
		{"quarter", "2026-10-01 00:00:00", "2027-01-01 00:00:00"},
		{"ytd", "2026-01-01 00:00:00", "2027-01-01 00:00:00"},
		{"24h", "2026-11-21 16:00:00", "2026-11-22 16:00:00"},
		{"7d", "2026-11-16 00:00:00", "2026-11-23 00:00:00"},
		{"30d", "2026-10-24 00:00:00", "2026-11-23 00:00:00"},
	} {
		s, err := Resolve(tc.window, at, loc)
		if err != nil {
			t.Fatal(err)
		}
		if f, to := s.From.Format(time.DateTime), s.To.Format(time.DateTime); f != tc.from || to != tc.to {
			t.Errorf("%s: [%s, %s), want [%s, %s)", tc.window, f, to, tc.from, tc.to)
		}
	}
	if _, err := Resolve("fortnight", at, loc); err == nil {
		t.Error("unknown window accepted")
	}
	mon := time.Date(2026, 11, 23, 0, 0, 0, 0, loc)
	if s, _ := Resolve("week", mon, loc); !s.From.Equal(mon) {
		t.Errorf("week of a Monday starts %v", s.From)
	}
}

func TestChannelAndBucketKey(t *testing.T) {
	k := Key{KPI: "dossier.on_time_rate", Unit: "L-26734", Window: "24h"}
	if got, ok := ParseChannel(k.Channel()); !ok || got != k {
		t.Errorf("channel round trip: %v %v", got, ok)
	}
	if got, ok := parseBucketKey(k.bucketKey()); !ok || got != k {
		t.Errorf("bucket key round trip: %v %v", got, ok)
	}
	for _, bad := range []string{"kpi:a.b:79", "kpi::79:today", "x:a.b:79:today", "kpi:a.b:79:today:x"} {
		if _, ok := ParseChannel(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
