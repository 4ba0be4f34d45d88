package app

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/testenv"
)

// The SQL API through the node: roles, a leader's scope from its token, the
// schema, and the audit.
func TestSQLThroughNode(t *testing.T) {
	a, toks := node(t)
	u := a.URL() + "/api/v1/sql"
	for role, c := range map[string]auth.Claims{
		"wall":        {Role: auth.RoleWall, Dashboard: "city"},
		"leader":      {Role: auth.RoleLeader, Unit: "25747"},
		"leader-city": {Role: auth.RoleLeader, Unit: "79"},
		"leader-none": {Role: auth.RoleLeader, Unit: "00000"},
	} {
		tok, err := a.Tokens.Issue(c, role, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks[role] = tok
	}
	count := `{"sql": "SELECT count() AS n FROM units WHERE kind = {k:String}", "params": {"k": "ward"}, "format": "csv"}`
	for _, c := range []struct {
		name, token, body string
		want              int
		contains          string
	}{
		{"no token", "", count, 401, ""},
		{"ingest refused", toks["ingest"], count, 403, ""},
		{"wall refused", toks["wall"], count, 403, ""},
		{"analyst", toks["analyst"], count, 200, "\"n\"\r\n113\r\n"},
		{"admin", toks["admin"], count, 200, "113"},
		{"leader reads units (reference data)", toks["leader"], count, 200, "113"},
		{"city leader sees other wards", toks["leader-city"], `{"sql": "SELECT countIf(unit != '26734') > 0 AS outside FROM officers", "format": "csv"}`, 200, "\"outside\"\r\n1\r\n"},
		{"leader raw table", toks["leader"], `{"sql": "SELECT * FROM dossier_events"}`, 400, "outside your scope"},
		{"leader of an unknown unit", toks["leader-none"], count, 403, "not a known unit"},
		{"raw body with Accept", toks["analyst"], "SELECT 1 AS one", 200, "\"one\"\r\n1\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := "application/json"
			if !strings.HasPrefix(c.body, "{") {
				ct = "text/plain"
			}
			code, body := callAccept(t, u, c.token, ct, "text/csv", c.body)
			if code != c.want || !strings.Contains(body, c.contains) {
				t.Fatalf("%d %q, want %d containing %q", code, body, c.want, c.contains)
			}
		})
	}
	// A leader counts the officers of its subtree, whatever it asks.
	subtree, _ := json.Marshal(a.refs.Subtree("25747"))
	_, mine := callAccept(t, u, toks["leader"], "application/json", "text/csv", `{"sql": "SELECT count() FROM officers"}`)
	_, theirs := callAccept(t, u, toks["analyst"], "application/json", "text/csv", `{"sql": "SELECT count() FROM officers WHERE has({s:Array(String)}, unit)", "params": {"s": `+string(subtree)+`}}`)
	_, all := callAccept(t, u, toks["analyst"], "application/json", "text/csv", `{"sql": "SELECT count() FROM officers"}`)
	if mine != theirs || mine == all {
		t.Errorf("leader of 25747 counts %q officers; its subtree has %q, the city %q", mine, theirs, all)
	}
	code, body := call(t, "GET", a.URL()+"/api/v1/schema", toks["leader"], "", "")
	var schema struct {
		Views []struct {
			Name   string
			Scoped bool
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &schema) != nil || len(schema.Views) == 0 {
		t.Fatalf("schema: %d %s", code, body)
	}
	for _, v := range schema.Views {
		if v.Scoped != (v.Name != "units" && v.Name != "procedures" && v.Name != "calendar") {
			t.Errorf("view %s scoped=%v for a leader", v.Name, v.Scoped)
		}
	}
	_, body = call(t, "GET", a.URL()+"/readyz", "", "", "")
	if !strings.Contains(body, `"sql":"ok"`) {
		t.Errorf("readyz: %s", body)
	}
	// Officers and cameras over REST are scoped as the SQL views are; a
	// wall reads neither, and still reads the org tree.
	inTree := map[string]bool{}
	for _, u := range a.refs.Subtree("25747") {
		inTree[u] = true
	}
	for _, kind := range []string{"officers", "cameras"} {
		code, body := call(t, "GET", a.URL()+"/api/v1/reference/"+kind, toks["leader"], "", "")
		var rows map[string][]struct{ Unit string }
		if code != 200 || json.Unmarshal([]byte(body), &rows) != nil {
			t.Fatalf("leader's %s: %d %.200s", kind, code, body)
		}
		for _, r := range rows[kind] {
			if !inTree[r.Unit] {
				t.Errorf("leader of 25747 reads %s of unit %s", kind, r.Unit)
			}
		}
		if n := len(a.refs.Set().Officers); kind == "officers" && (len(rows[kind]) == 0 || len(rows[kind]) == n) {
			t.Errorf("leader of 25747 reads %d of the city's %d officers", len(rows[kind]), n)
		}
		if code, body := call(t, "GET", a.URL()+"/api/v1/reference/"+kind, toks["wall"], "", ""); code != 403 {
			t.Errorf("wall reads %s: %d %.100s", kind, code, body)
		}
	}
	if code, _ := call(t, "GET", a.URL()+"/api/v1/reference/units", toks["wall"], "", ""); code != 200 {
		t.Errorf("wall reads units: %d", code)
	}
	// The leader of an unknown unit was refused before its statement ran;
	// the audit has it, with who asked.
	testenv.Eventually(t, 10*time.Second, "the refused leader in the audit", func() (bool, error) {
		var n uint64
		err := a.DB().Conn.QueryRow(context.Background(), "SELECT count() FROM "+a.DB().Table("sql_audit")+
			" WHERE outcome = 'forbidden' AND who = 'leader:leader-none' AND sql LIKE '%FROM units%'").Scan(&n)
		return n == 1, err
	})
}

// A node whose SQL reader cannot connect still ingests and is ready; /readyz,
// which answers anyone, says the SQL API is off without saying what
// ClickHouse answered; an analyst's call gets the reason.
func TestSQLDisabledSaysWhyOnlyToACaller(t *testing.T) {
	a, toks := nodeWith(t, func(c *Config) { c.SQL.ReaderUser, c.SQL.ReaderPassword = "ioc_nobody", "secret-x" })
	code, body := call(t, "GET", a.URL()+"/readyz", "", "", "")
	if code != 200 || !strings.Contains(body, `"sql":"disabled"`) || strings.Contains(body, "ioc_nobody") {
		t.Errorf("readyz: %d %s", code, body)
	}
	code, body = callAccept(t, a.URL()+"/api/v1/sql", toks["analyst"], "text/plain", "text/csv", "SELECT 1")
	if code != 503 || !strings.Contains(body, "ioc_nobody") {
		t.Errorf("sql: %d %s", code, body)
	}
	code, _ = callAccept(t, a.URL()+"/api/v1/sql", "", "text/plain", "text/csv", "SELECT 1")
	if code != 401 {
		t.Errorf("sql without a token: %d", code)
	}
}
