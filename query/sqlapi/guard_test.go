package sqlapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

var testPolicy = Policy{Database: "ioc"}

// hostile statements and the refusal each must get (a substring of the reason).
var hostile = []struct{ name, sql, why string }{
	{"insert", "INSERT INTO dossier_events (id) VALUES ('x')", "only SELECT"},
	{"drop", "DROP TABLE dossier_events", "only SELECT"},
	{"alter", "ALTER TABLE dossier_events DELETE WHERE 1", "only SELECT"},
	{"create", "CREATE TABLE x (a UInt8) ENGINE = Memory", "only SELECT"},
	{"truncate", "TRUNCATE TABLE dossier_events", "only SELECT"},
	{"optimize", "OPTIMIZE TABLE dossier_events FINAL", "only SELECT"},
	{"kill", "KILL QUERY WHERE 1", "only SELECT"},
	{"system statement", "SYSTEM SHUTDOWN", "only SELECT"},
	{"set", "SET readonly = 0", "only SELECT"},
	{"use", "USE system", "only SELECT"},
	{"attach", "ATTACH TABLE x", "only SELECT"},
	{"grant", "GRANT ALL ON *.* TO ioc_reader", "only SELECT"},
	{"stacked", "SELECT 1; DROP TABLE dossier_events", "one statement"},
	{"stacked after comment", "SELECT 1 -- x\n; DROP TABLE t", "one statement"},
	{"two semicolons", "SELECT 1;;", "one statement"},
	{"comment hides nothing", "/* SELECT */ DROP TABLE t", "only SELECT"},
	{"nested comment", "SELECT 1 /* a /* b */ ; DROP TABLE t */", "nested"},
	{"unterminated comment", "SELECT 1 /* DROP", "unterminated"},
	{"unterminated string", "SELECT 'abc", "unterminated"},
	{"hash comment", "SELECT 1 # ; DROP TABLE t", "unexpected '#'"},
	{"heredoc", "SELECT $$x$$", "unexpected '$'"},
	{"parenthesised drop", "(DROP TABLE t)", "only SELECT"},
	{"settings clause", "SELECT 1 SETTINGS readonly = 0", "SETTINGS"},
	{"settings max_execution_time", "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 100000", "SETTINGS"},
	{"format clause", "SELECT 1 FORMAT TabSeparated", "FORMAT"},
	{"into outfile", "SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"},
	{"url", "SELECT * FROM url('http://example.com/x', CSV, 'a String')", "url() is not allowed"},
	{"file", "SELECT * FROM file('/etc/passwd', TSV, 'l String')", "file() is not allowed"},
	{"remote", "SELECT * FROM remote('127.0.0.1', system.tables)", "remote() is not allowed"},
	{"remoteSecure", "SELECT * FROM remoteSecure('127.0.0.1', db.t)", "remoteSecure() is not allowed"},
	{"s3", "SELECT * FROM s3('http://x/y.csv')", "s3() is not allowed"},
	{"hdfs", "SELECT * FROM hdfs('hdfs://x/y', TSV, 'a String')", "hdfs() is not allowed"},
	{"mysql", "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')", "mysql() is not allowed"},
	{"postgresql", "SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')", "postgresql() is not allowed"},
	{"jdbc", "SELECT * FROM jdbc('jdbc:x', 't')", "jdbc() is not allowed"},
	{"odbc", "SELECT * FROM odbc('DSN=x', 't')", "odbc() is not allowed"},
	{"executable", "SELECT * FROM executable('x.sh', TSV, 'a String')", "executable() is not allowed"},
	{"input", "SELECT * FROM input('a String')", "input() is not allowed"},
	{"merge other db", "SELECT * FROM merge('system', '.*')", "merge() is not allowed"},
	{"cluster", "SELECT * FROM cluster('c', system.one)", "cluster() is not allowed"},
	{"dictionary", "SELECT * FROM dictionary('d')", "dictionary() is not allowed"},
	{"quoted url", "SELECT * FROM \"url\"('http://x', CSV, 'a String')", "url() is not allowed"},
	{"table function in join", "SELECT * FROM numbers(1) AS a JOIN file('x', TSV, 'n UInt64') AS b USING n", "file() is not allowed"},
	{"table function after comma", "SELECT * FROM numbers(1), url('http://x', CSV, 'a String')", "url() is not allowed"},
	{"unknown table function", "SELECT * FROM iceberg('http://x')", "not allowed"},
	{"new table function in FROM", "SELECT * FROM fancyLake('x')", "table function fancyLake() is not allowed"},
	{"url inside subquery", "SELECT * FROM (SELECT * FROM url('http://x', CSV, 'a String'))", "url() is not allowed"},
	{"url in IN", "SELECT 1 WHERE 1 IN (SELECT 1 FROM url('http://x', CSV, 'a UInt8'))", "url() is not allowed"},
	{"system tables", "SELECT * FROM system.tables", "system.tables is not allowed"},
	{"system processes", "SELECT query FROM system.processes", "system.processes is not allowed"},
	{"system users quoted", "SELECT * FROM `system`.`users`", "system.users is not allowed"},
	{"system in IN", "SELECT 1 WHERE 'x' IN system.databases", "system.databases is not allowed"},
	{"system in scalar", "SELECT (SELECT count() FROM system.parts)", "system.parts is not allowed"},
	{"information_schema", "SELECT * FROM information_schema.tables", "not allowed"},
	{"other database", "SELECT * FROM default.secrets", "database default is not allowed"},
	{"other database in join", "SELECT * FROM dossiers AS d JOIN other.t AS o ON d.unit = o.unit", "database other is not allowed"},
	{"other database after comma", "SELECT * FROM dossiers, other.t", "database other is not allowed"},
	{"show databases", "SHOW DATABASES", "only SHOW TABLES and SHOW CREATE"},
	{"show processlist", "SHOW PROCESSLIST", "only SHOW TABLES and SHOW CREATE"},
	{"show tables from system", "SHOW TABLES FROM system", "only the database ioc"},
	{"describe system", "DESCRIBE TABLE system.tables", "system.tables is not allowed"},
	{"describe url", "DESCRIBE url('http://x', CSV, 'a String')", "url() is not allowed"},
	{"explain insert", "EXPLAIN INSERT INTO t VALUES (1)", "EXPLAIN may only explain a SELECT"},
	{"joinGet", "SELECT joinGet('other.j', 'v', 1)", "joinGet() is not allowed"},
	{"dictGet", "SELECT dictGetString('d', 'a', toUInt64(1))", "dictionary functions"},
	{"hasColumnInTable", "SELECT hasColumnInTable('system', 'users', 'name')", "hasColumnInTable() is not allowed"},
	{"comma after a join", "SELECT * FROM units CROSS JOIN procedures, otherdb.t", "database otherdb is not allowed"},
	{"comma after using", "SELECT * FROM units AS u JOIN procedures AS p USING (x), otherdb.t", "database otherdb is not allowed"},
	{"comma after a keyword alias", "SELECT * FROM units AS where, otherdb.secret", "database otherdb is not allowed"},
	{"comma after final", "SELECT * FROM units FINAL, otherdb.t", "database otherdb is not allowed"},
	{"in function", "SELECT * FROM units WHERE in(('a', 'b'), otherdb.t)", "function form in(…)"},
	{"notIn function", "SELECT notIn(1, otherdb.t)", "function form notIn(…)"},
	{"globalNotIn function", "SELECT * FROM units WHERE globalNotIn(code, otherdb.t)", "function form globalNotIn(…)"},
	{"show create database", "SHOW CREATE DATABASE default", "nothing may follow"},
	{"show create dictionary", "SHOW CREATE DICTIONARY otherdb.d", "nothing may follow"},
	{"show tables where", "SHOW TABLES FROM ioc WHERE name IN (SELECT 1)", "nothing may follow"},
	{"icebergLocal", "SELECT * FROM icebergLocal('/x')", "icebergLocal() is not allowed"},
	{"empty", "  -- nothing\n", "empty"},
	{"only semicolon", ";", "empty"},
	{"non-ASCII outside strings", "SELECT 1 ；DROP TABLE t", "unexpected character"},
}

func TestGuardRefuses(t *testing.T) {
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Guard(tc.sql, testPolicy, nil)
			if err == nil {
				t.Fatalf("accepted %q as %q", tc.sql, st.SQL)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("refusal %q does not say %q", err, tc.why)
			}
		})
	}
}

func TestGuardAccepts(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT 1", "SELECT 1"},
		{"select 1;", "select 1"},
		{"SELECT 1 ; -- done\n", "SELECT 1 ; -- done"[:8]},
		{"  WITH 2 AS x SELECT x * 3", "WITH 2 AS x SELECT x * 3"},
		{"(SELECT 1) UNION ALL (SELECT 2)", "(SELECT 1) UNION ALL (SELECT 2)"},
		{"SELECT count() FROM dossiers WHERE unit = '79'", ""},
		{"SELECT count() FROM ioc.dossiers FINAL", ""},
		{"SELECT * FROM system.one", ""},
		{"SELECT number FROM system.numbers LIMIT 3", ""},
		{"SELECT * FROM numbers(10)", ""},
		{"SELECT ';' AS semi, 'DROP TABLE x' AS s, '/* no */' AS c", ""},
		{"SELECT 'it''s', 'a\\'b', \"weird name\" FROM dossiers", ""},
		{"SELECT format('{} {}', 'a', 'b')", ""},
		{"SELECT extract(DAY FROM now()), substring('abc' FROM 2), trim(BOTH ' ' FROM ' x ')", ""},
		{"SELECT x FROM dossiers ARRAY JOIN [1, 2] AS x", ""},
		{"SHOW TABLES", ""},
		{"SHOW TABLES FROM ioc", ""},
		{"SHOW CREATE TABLE dossiers", ""},
		{"DESCRIBE TABLE dossiers", ""},
		{"DESC dossiers", ""},
		{"EXPLAIN SELECT 1", ""},
		{"SELECT url FROM t", ""}, // a column named url is fine
		{"SELECT t.system FROM t", ""},
		{"SELECT 1 /* comment ; with semicolon */", ""},
		{"SELECT d.unit, count() FROM dossiers AS d ANY LEFT JOIN units AS u ON d.unit = u.code GROUP BY d.unit", ""},
		{"SELECT x, y FROM dossiers ARRAY JOIN [1, 2] AS x, [3, 4] AS y", ""},
		{"SELECT count() FROM dossiers WHERE unit NOT IN ('1') AND unit GLOBAL NOT IN ('2') AND (unit) IN ('3')", ""},
		{"SELECT position('abc' IN 'b'), position('abc', 'b')", ""},
		{"SHOW TABLES FROM ioc LIKE 'd%'", ""},
		{"SHOW TABLES NOT ILIKE 'kpi%' LIMIT 5", ""},
		{"SHOW CREATE TABLE ioc.dossiers", ""},
	} {
		st, err := Guard(tc.sql, testPolicy, nil)
		if err != nil {
			t.Errorf("%q refused: %v", tc.sql, err)
			continue
		}
		if tc.want != "" && st.SQL != tc.want {
			t.Errorf("%q → %q, want %q", tc.sql, st.SQL, tc.want)
		}
	}
}

func TestGuardLeaderScope(t *testing.T) {
	p := Policy{Database: "ioc", Scope: LeaderScope("ioc", []string{"26734", "26737"})}
	for _, tc := range []struct{ sql, want, why string }{
		{sql: "SELECT count() FROM dossiers", want: "SELECT count() FROM (SELECT * FROM ioc.dossiers WHERE unit IN ('26734', '26737')) AS dossiers"},
		{sql: "SELECT count() FROM ioc.dossiers WHERE 1", want: "SELECT count() FROM (SELECT * FROM ioc.dossiers WHERE unit IN ('26734', '26737')) AS dossiers WHERE 1"},
		{sql: "SELECT d.unit FROM dossiers AS d", want: "SELECT d.unit FROM (SELECT * FROM ioc.dossiers WHERE unit IN ('26734', '26737')) AS d"},
		{sql: "SELECT d.unit FROM dossiers d", want: "SELECT d.unit FROM (SELECT * FROM ioc.dossiers WHERE unit IN ('26734', '26737')) d"},
		{sql: "SELECT * FROM tickets, surveys", want: "SELECT * FROM (SELECT * FROM ioc.tickets WHERE unit IN ('26734', '26737')) AS tickets, (SELECT * FROM ioc.surveys WHERE unit IN ('26734', '26737')) AS surveys"},
		{sql: "SELECT * FROM (SELECT * FROM tickets)", want: "SELECT * FROM (SELECT * FROM (SELECT * FROM ioc.tickets WHERE unit IN ('26734', '26737')) AS tickets)"},
		{sql: "SELECT name FROM procedures", want: "SELECT name FROM procedures"},
		{sql: "DESCRIBE dossiers", want: "DESCRIBE dossiers"},
		{sql: "SELECT * FROM dossier_events", why: "dossier_events is outside your scope"},
		{sql: "SELECT * FROM dossier_state2", why: "outside your scope"},
		{sql: "SELECT * FROM sql_audit", why: "outside your scope"},
		{sql: "SELECT * FROM dossiers WHERE dossier_id IN (SELECT subject FROM dossier_events)", why: "dossier_events is outside your scope"},
		{sql: "SELECT * FROM dossiers AS d JOIN ref_officers AS o ON d.officer = o.id", why: "ref_officers is outside your scope"},
		{sql: "SELECT * FROM dossiers WHERE dossier_id IN dossier_events", why: "outside your scope"},
		{sql: "DESCRIBE dossier_events", why: "outside your scope"},
		{sql: "WITH t AS (SELECT * FROM dossiers) SELECT * FROM t", why: "t is outside your scope"},
		{sql: "SELECT * FROM units CROSS JOIN procedures, sql_audit", why: "sql_audit is outside your scope"},
		{sql: "SELECT * FROM units AS u JOIN procedures AS p USING (code), survey_events", why: "survey_events is outside your scope"},
		{sql: "SELECT * FROM units AS like, dossiers", want: "SELECT * FROM units AS like, (SELECT * FROM ioc.dossiers WHERE unit IN ('26734', '26737')) AS dossiers"},
		{sql: "SELECT * FROM units AS where, dossier_events", why: "dossier_events is outside your scope"},
		{sql: "SELECT * FROM units WHERE in(('s1', 'U2'), dossiers)", why: "function form in(…)"},
		{sql: "SELECT * FROM units WHERE nullIn(code, dossiers)", why: "function form nullIn(…)"},
		{sql: "SELECT * FROM units WHERE position(name, code IN dossier_events) > 0", why: "dossier_events is outside your scope"},
		{sql: "SHOW CREATE TABLE dossier_events", why: "outside your scope"},
	} {
		st, err := Guard(tc.sql, p, nil)
		if tc.why != "" {
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("%q: got %v, want a refusal saying %q", tc.sql, err, tc.why)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q refused: %v", tc.sql, err)
			continue
		}
		if st.SQL != tc.want {
			t.Errorf("%q\n got %q\nwant %q", tc.sql, st.SQL, tc.want)
		}
	}
}

func TestGuardParams(t *testing.T) {
	params := func(s string) map[string]any {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct{ sql, params, want, why string }{
		{sql: "SELECT {u:String}", params: `{"u":"79'; DROP TABLE t --"}`, want: `SELECT '79\'; DROP TABLE t --'`},
		{sql: "SELECT {u:String}", params: `{"u":"a\\b\nc"}`, want: `SELECT 'a\\b\nc'`},
		{sql: "SELECT {n:UInt32} + {m:Int8}", params: `{"n": 7, "m": -3}`, want: "SELECT toUInt32('7') + toInt8('-3')"},
		{sql: "SELECT {f:Float64}", params: `{"f": 0.5}`, want: "SELECT toFloat64('0.5')"},
		{sql: "SELECT {d:Date}, {t:DateTime}", params: `{"d":"2024-01-31","t":"2024-01-31T08:00:00+07:00"}`, want: "SELECT toDate('2024-01-31'), toDateTime('2024-01-31 01:00:00', 'UTC')"},
		{sql: "SELECT {a:Array(String)}", params: `{"a":["x","y'"]}`, want: `SELECT ['x', 'y\'']`},
		{sql: "SELECT {x:Nullable(String)}", params: `{"x":null}`, want: "SELECT NULL"},
		{sql: "SELECT '{u:String}'", params: `{}`, want: "SELECT '{u:String}'"},
		{sql: "SELECT {u:String}", params: `{}`, why: "parameter u has no value"},
		{sql: "SELECT 1", params: `{"u":"x"}`, why: "parameter u is not used"},
		{sql: "SELECT {n:UInt8}", params: `{"n": 300}`, why: "out of range"},
		{sql: "SELECT {n:UInt8}", params: `{"n": "7"}`, why: "want a JSON number"},
		{sql: "SELECT {n:Int32}", params: `{"n": 1.5}`, why: "not an integer"},
		{sql: "SELECT {d:Date}", params: `{"d": "31/01/2024"}`, why: "not a date"},
		{sql: "SELECT {u:String}", params: `{"u": 5}`, why: "want a JSON string"},
		{sql: "SELECT {u:Map(String, String)}", params: `{"u": {}}`, why: "not supported"},
	} {
		st, err := Guard(tc.sql, testPolicy, params(tc.params))
		if tc.why != "" {
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("%s %s: got %v, want a refusal saying %q", tc.sql, tc.params, err, tc.why)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.sql, tc.params, err)
			continue
		}
		if st.SQL != tc.want {
			t.Errorf("%s %s\n got %s\nwant %s", tc.sql, tc.params, st.SQL, tc.want)
		}
	}
}

// FuzzGuard: the guard never panics, and whatever it accepts is one
// statement of an allowed kind with no denied function, setting or
// foreign table in it — checked by lexing the output again.
func FuzzGuard(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.sql)
	}
	f.Add("SELECT count() FROM dossiers WHERE unit IN (SELECT code FROM units)")
	f.Add("SELECT '\\'' , \"a\"\"b\", `c` FROM t /* x */ -- y")
	f.Fuzz(func(t *testing.T, sql string) {
		for _, p := range []Policy{testPolicy, {Database: "ioc", Scope: LeaderScope("ioc", []string{"1"})}} {
			st, err := Guard(sql, p, nil)
			if err != nil {
				continue
			}
			toks, err := lex(st.SQL)
			if err != nil {
				t.Fatalf("accepted %q but its output %q does not lex: %v", sql, st.SQL, err)
			}
			var first string
			for i, tk := range toks {
				if tk.kind == tkSpace || tk.kind == tkComment {
					continue
				}
				n, _ := name(tk)
				if first == "" && tk.text != "(" {
					first = n
				}
				if tk.kind == tkPunct && tk.text == ";" {
					t.Fatalf("accepted %q with a ';' inside", sql)
				}
				if tk.kind == tkIdent && (n == "settings" || n == "into") {
					t.Fatalf("accepted %q with %s", sql, n)
				}
				if n == "system" || n == "information_schema" {
					for j := i + 1; j < len(toks); j++ {
						if toks[j].kind == tkSpace || toks[j].kind == tkComment {
							continue
						}
						if toks[j].text == "." {
							for k := j + 1; k < len(toks); k++ {
								if toks[k].kind == tkSpace || toks[k].kind == tkComment {
									continue
								}
								if tn, _ := name(toks[k]); n != "system" || !slices.Contains(systemTables, tn) {
									t.Fatalf("accepted %q naming %s.%s", sql, n, tn)
								}
								break
							}
						}
						break
					}
				}
				if n == "url" || n == "file" || n == "remote" || n == "s3" || n == "executable" || n == "input" || n == "merge" {
					for j := i + 1; j < len(toks); j++ {
						if toks[j].kind == tkSpace || toks[j].kind == tkComment {
							continue
						}
						if toks[j].text == "(" {
							t.Fatalf("accepted %q calling %s()", sql, n)
						}
						break
					}
				}
			}
			switch first {
			case "select", "with", "show", "describe", "desc", "explain":
			default:
				t.Fatalf("accepted %q starting with %q", sql, first)
			}
		}
	})
}
