package sqlapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/sqlapi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// typed selects one column of each kind the codecs handle.
const typed = `SELECT toUInt8(number) AS u8, toInt16(toInt16(number) - 5) AS i16, toUInt64(number) * 1000000007 AS u64,
 toInt64(number) - 2 AS i64, toFloat32(number / 4) AS f32, toFloat64(number) / 3 AS f64,
 concat('s"', toString(number), ',x') AS s, toDate('2024-01-01') + number AS d,
 toDateTime(toDateTime('2023-12-31 17:00:00', 'UTC') + number * 3600, 'Asia/Ho_Chi_Minh') AS t, toDecimal64(number, 2) AS dec,
 if(number % 2 = 0, NULL, toString(number)) AS n, [toString(number), 'b'] AS arr,
 CAST(number % 2 AS Enum8('a' = 0, 'b' = 1)) AS e
FROM system.numbers LIMIT 5`

type env struct {
	db  *query.DB
	svc *sqlapi.Service
	srv *httptest.Server
}

func newEnv(t *testing.T, cfg sqlapi.Config) *env {
	t.Helper()
	db, _ := testenv.ClickHouse(t)
	return newEnvOn(t, db, cfg, nil)
}

// newEnvOn serves the SQL API on db, with its metrics in reg (may be nil).
func newEnvOn(t *testing.T, db *query.DB, cfg sqlapi.Config, reg prometheus.Registerer) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := sqlapi.New(ctx, cfg, db, reg, nil)
	if err != nil {
		t.Fatalf("sqlapi.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; svc.Close() })
	e := &env{db: db, svc: svc}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := sqlapi.Caller{Key: r.Header.Get("X-Test-Key"), Who: "analyst:test", Addr: r.RemoteAddr}
		if u := r.Header.Get("X-Test-Units"); u != "" {
			c.Scope = sqlapi.LeaderScope(db.Database(), strings.Split(u, ","))
		}
		if r.URL.Path == "/schema" {
			v, err := svc.Schema(r.Context(), c)
			if err != nil {
				api.WriteError(w, r, err)
				return
			}
			api.WriteJSON(w, 200, v)
			return
		}
		svc.ServeSQL(w, r, c)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) post(t *testing.T, body any, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.srv.URL, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, out.Bytes()
}

func clickhouseClient(t *testing.T, db *query.DB, sql, format string) []byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(db.Config().Addr)
	cmd := exec.Command("clickhouse-client", "--host", host, "--port", port, "--database", db.Database(),
		"--user", "ioc_reader", "--password", "ioc_reader", "--query", sql+" FORMAT "+format)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("clickhouse-client: %v", err)
	}
	return out
}

func TestCSVEqualsClickHouseClient(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	resp, body := e.post(t, map[string]any{"sql": typed, "format": "csv"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8; header=present" {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Trailer.Get("X-Ioc-Rows") != "5" || resp.Trailer.Get("X-Ioc-Truncated") != "false" {
		t.Errorf("trailers %v", resp.Trailer)
	}
	ours, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("our CSV does not parse: %v\n%s", err, body)
	}
	theirs, err := csv.NewReader(bytes.NewReader(clickhouseClient(t, e.db, typed, "CSVWithNames"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != 6 || !slices.EqualFunc(ours, theirs, slices.Equal[[]string]) {
		t.Fatalf("ioc CSV differs from clickhouse-client's:\n ioc: %q\n  ch: %q", ours, theirs)
	}
	if !bytes.Contains(body, []byte("\r\n")) {
		t.Error("lines do not end with CRLF (RFC 4180)")
	}
}

func TestJSONAndNDJSON(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	resp, body := e.post(t, map[string]any{"sql": typed, "format": "json"})
	if resp.StatusCode != 200 {
		t.Fatalf("%d: %s", resp.StatusCode, body)
	}
	var out struct {
		Meta []struct{ Name, Type string }
		Data [][]any
		Rows int
		// truncated, query_id, elapsed_ms
		Truncated bool
		QueryID   string `json:"query_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if out.Rows != 5 || len(out.Data) != 5 || out.Truncated || !strings.HasPrefix(out.QueryID, "ioc-sql-") {
		t.Fatalf("rows %d data %d truncated %v id %q", out.Rows, len(out.Data), out.Truncated, out.QueryID)
	}
	wantTypes := map[string]string{"u8": "UInt8", "u64": "UInt64", "t": "DateTime('Asia/Ho_Chi_Minh')", "n": "Nullable(String)", "arr": "Array(String)", "dec": "Decimal(18, 2)"}
	for _, m := range out.Meta {
		if w, ok := wantTypes[m.Name]; ok && w != m.Type {
			t.Errorf("meta %s: %s, want %s", m.Name, m.Type, w)
		}
	}
	row := out.Data[3]
	for i, want := range []any{json.Number("3"), json.Number("-2"), json.Number("3000000021"), json.Number("1"), json.Number("0.75"), json.Number("1"),
		`s"3,x`, "2024-01-04", "2024-01-01T03:00:00+07:00", json.Number("3.00"), "3", []any{"3", "b"}, "b"} {
		if !jsonEqual(row[i], want) {
			t.Errorf("row 3 column %s = %#v, want %#v", out.Meta[i].Name, row[i], want)
		}
	}
	if out.Data[2][10] != nil {
		t.Errorf("NULL came back as %#v", out.Data[2][10])
	}

	resp, body = e.post(t, map[string]any{"sql": typed, "format": "ndjson"})
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if resp.StatusCode != 200 || len(lines) != 5 {
		t.Fatalf("%d: %s", resp.StatusCode, body)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &obj); err != nil || obj["s"] != `s"1,x` || obj["t"] != "2024-01-01T01:00:00+07:00" {
		t.Fatalf("line %q: %v %v", lines[1], obj, err)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestArrowTypesAndValues(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	resp, body := e.post(t, map[string]any{"sql": typed, "format": "arrow"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.apache.arrow.stream" {
		t.Fatalf("%d: %s", resp.StatusCode, body)
	}
	rd, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	want := map[string]string{
		"u8": "uint8", "i16": "int16", "u64": "uint64", "i64": "int64", "f32": "float32", "f64": "float64",
		"s": "utf8", "d": "date32", "t": "timestamp[s, tz=Asia/Ho_Chi_Minh]", "dec": "decimal(18, 2)",
		"n": "utf8", "arr": "list<item: utf8, nullable>", "e": "utf8",
	}
	for _, f := range rd.Schema().Fields() {
		if got := f.Type.String(); got != want[f.Name] {
			t.Errorf("field %s: %s, want %s", f.Name, got, want[f.Name])
		}
		if f.Nullable != (f.Name == "n") {
			t.Errorf("field %s nullable = %v", f.Name, f.Nullable)
		}
	}
	rows := 0
	for rd.Next() {
		rec := rd.Record()
		rows += int(rec.NumRows())
		if rec.Column(2).(*array.Uint64).Value(3) != 3000000021 ||
			rec.Column(8).(*array.Timestamp).Value(3) != arrow.Timestamp(time.Date(2023, 12, 31, 20, 0, 0, 0, time.UTC).Unix()) ||
			rec.Column(9).(*array.Decimal128).Value(3).LowBits() != 300 ||
			!rec.Column(10).IsNull(2) || rec.Column(10).(*array.String).Value(3) != "3" ||
			rec.Column(6).(*array.String).Value(3) != `s"3,x` {
			t.Errorf("values of row 3 wrong: %v", rec)
		}
	}
	if rd.Err() != nil || rows != 5 {
		t.Fatalf("rows %d err %v", rows, rd.Err())
	}
	checkWithNodeArrow(t, body)
}

// checkWithNodeArrow decodes the stream with the apache-arrow npm package,
// an implementation independent of ioc's.
func checkWithNodeArrow(t *testing.T, stream []byte) {
	dir, _ := filepath.Abs("testdata/arrowcheck")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "apache-arrow")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("apache-arrow (npm) is required under CI: run `make test`, which installs it")
		}
		t.Skip("apache-arrow npm package not installed (make test installs it)")
	}
	f := filepath.Join(t.TempDir(), "r.arrow")
	if err := os.WriteFile(f, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", filepath.Join(dir, "check.mjs"), f).CombinedOutput()
	if err != nil {
		t.Fatalf("node apache-arrow: %v\n%s", err, out)
	}
	var got struct {
		Rows   int
		Fields map[string]string
		Row3   map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Rows != 5 || got.Fields["t"] != "Timestamp<SECOND, Asia/Ho_Chi_Minh>" || got.Fields["u64"] != "Uint64" ||
		got.Fields["dec"] != "Decimal[18e+2]" || got.Fields["d"] != "Date32<DAY>" || !strings.HasPrefix(got.Fields["arr"], "List<") {
		t.Errorf("apache-arrow read the schema as %v", got.Fields)
	}
	if got.Row3["u64"] != "3000000021" || got.Row3["s"] != `s"3,x` || got.Row3["t"] != float64(time.Date(2023, 12, 31, 20, 0, 0, 0, time.UTC).UnixMilli()) ||
		got.Row3["n"] != "3" || got.Row3["i16"] != float64(-2) {
		t.Errorf("apache-arrow read row 3 as %v", got.Row3)
	}
}

// processGone waits until ClickHouse no longer runs the query. The wait is
// generous: the claim is that the query stops, not how fast on a loaded
// machine (BENCHMARKS.md has the timing).
func processGone(t *testing.T, db *query.DB, id string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		var n uint64
		err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE query_id = ?", id).Scan(&n)
		if err == nil && n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > time.Minute {
			var elapsed float64
			var read uint64
			_ = db.Conn.QueryRow(context.Background(), "SELECT elapsed, read_rows FROM system.processes WHERE query_id = ?", id).Scan(&elapsed, &read)
			t.Fatalf("query %s still in system.processes after %v (err %v): elapsed %.1fs, read %d rows", id, time.Since(start), err, elapsed, read)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHostileStatementsLeaveServerHealthy(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	for _, sql := range []string{
		"DROP TABLE dossier_events", "SELECT 1; DROP TABLE dossier_events", "INSERT INTO sql_audit (sql) VALUES ('x')",
		"SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')", "SELECT * FROM file('/etc/passwd', TSV, 'a String')",
		"SELECT * FROM system.users", "SELECT 1 SETTINGS readonly = 0", "SELECT * FROM remote('127.0.0.1', system.one)",
	} {
		resp, body := e.post(t, map[string]any{"sql": sql})
		if resp.StatusCode != 400 || !bytes.Contains(body, []byte("refused: ")) {
			t.Errorf("%q: %d %s", sql, resp.StatusCode, body)
		}
	}
	// Accepted by the guard, refused by ClickHouse: a clear 400.
	resp, body := e.post(t, map[string]any{"sql": "SELECT no_such_column FROM dossiers"})
	if resp.StatusCode != 400 || !bytes.Contains(body, []byte("clickhouse: ")) {
		t.Errorf("bad column: %d %s", resp.StatusCode, body)
	}
	// Huge result: cut at max_rows, the query stopped.
	resp, body = e.post(t, map[string]any{"sql": "SELECT number FROM system.numbers", "max_rows": 1000, "format": "ndjson"})
	if resp.StatusCode != 200 || bytes.Count(body, []byte("\n")) != 1000 || resp.Trailer.Get("X-Ioc-Truncated") != "true" {
		t.Errorf("huge: %d, %d lines, trailer %v", resp.StatusCode, bytes.Count(body, []byte("\n")), resp.Trailer)
	}
	processGone(t, e.db, resp.Header.Get("X-Ioc-Query-Id"))
	// Slow query: stopped at its timeout, in ClickHouse too.
	resp, body = e.post(t, map[string]any{"sql": "SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number))", "timeout": 1})
	if resp.StatusCode != 400 || !bytes.Contains(body, []byte("timeout")) {
		t.Errorf("slow: %d %s", resp.StatusCode, body)
	}
	processGone(t, e.db, resp.Header.Get("X-Ioc-Query-Id"))
	waitAudit(t, e.db, "timeout")
	// The server is still fine.
	resp, body = e.post(t, map[string]any{"sql": "SELECT count() FROM dossiers"})
	if resp.StatusCode != 200 {
		t.Fatalf("after hostile inputs: %d %s", resp.StatusCode, body)
	}
	var tables uint64
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = ? AND name = 'dossier_events'", e.db.Database()).Scan(&tables); err != nil || tables != 1 {
		t.Fatalf("dossier_events: %d %v", tables, err)
	}
}

// waitAudit waits for an audit row with the outcome and returns its query id.
func waitAudit(t *testing.T, db *query.DB, outcome string) string {
	t.Helper()
	var id string
	testenv.Eventually(t, 10*time.Second, "audit row "+outcome, func() (bool, error) {
		rows, err := db.Conn.Query(context.Background(), "SELECT query_id FROM "+db.Table("sql_audit")+" WHERE outcome = ? ORDER BY time DESC LIMIT 1", outcome)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		if rows.Next() {
			return true, rows.Scan(&id)
		}
		return false, nil
	})
	return id
}

func TestCancelMidStreamKillsQuery(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	b, _ := json.Marshal(map[string]any{"sql": "SELECT number, sipHash64(number) FROM system.numbers", "max_rows": 50_000_000, "format": "csv"})
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("X-Ioc-Query-Id")
	buf := make([]byte, 1<<20)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	took := processGone(t, e.db, id)
	t.Logf("query gone from system.processes %v after the client left", took)
	waitAudit(t, e.db, "canceled")
}

func TestPerTokenLimit(t *testing.T) {
	e := newEnv(t, sqlapi.Config{PerToken: 1})
	// Slow enough to be running still when the second statement comes on a
	// loaded machine; stopped by KILL QUERY once that one is judged.
	slow := map[string]any{"sql": "SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number))", "timeout": 60}
	done := make(chan struct{})
	go func() { defer close(done); e.post(t, slow, "X-Test-Key", "k1") }()
	testenv.Eventually(t, 10*time.Second, "slow query running", func() (bool, error) {
		var n uint64
		err := e.db.Conn.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '%sipHash64%' AND user = 'ioc_reader'").Scan(&n)
		return n > 0, err
	})
	resp, body := e.post(t, map[string]any{"sql": "SELECT 1"}, "X-Test-Key", "k1")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("second statement of the same token: %d %s", resp.StatusCode, body)
	}
	resp, body = e.post(t, map[string]any{"sql": "SELECT 1"}, "X-Test-Key", "k2")
	if resp.StatusCode != 200 {
		t.Errorf("another token: %d %s", resp.StatusCode, body)
	}
	if err := e.db.Conn.Exec(context.Background(), "KILL QUERY WHERE query LIKE '%sipHash64%' AND user = 'ioc_reader' ASYNC"); err != nil {
		t.Fatal(err)
	}
	<-done
	waitAudit(t, e.db, "limited")
}

func TestReaderUserIsReadOnly(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{db.Config().Addr},
		Auth: clickhouse.Auth{Database: db.Database(), Username: "ioc_reader", Password: "ioc_reader"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	// What the guard would refuse, sent straight to ClickHouse as the
	// reader: the server refuses it too.
	for _, sql := range []string{
		"DROP TABLE " + db.Table("dossier_events"),
		"CREATE TABLE " + db.Table("x") + " (a UInt8) ENGINE = Memory",
		"INSERT INTO " + db.Table("sql_audit") + " (sql) VALUES ('x')",
		"SELECT 1 SETTINGS max_execution_time = 100000",
	} {
		err := conn.Exec(ctx, sql)
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || !strings.Contains(strings.ToLower(ex.Message), "readonly") {
			t.Errorf("%s as ioc_reader: %v, want a readonly refusal", sql, err)
		}
	}
}

func TestLeaderScopeAndSchema(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	ctx := context.Background()
	b, err := e.db.Conn.PrepareBatch(e.db.InsertContext(ctx), "INSERT INTO "+e.db.Table("ref_officers")+" (id, unit, name, title, version, deleted)")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range [][2]string{{"o1", "A"}, {"o2", "B"}, {"o3", "A2"}} {
		if err := b.Append(o[0], o[1], "name", "title", uint64(1), uint8(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	resp, body := e.post(t, map[string]any{"sql": "SELECT id FROM officers ORDER BY id", "format": "csv"}, "X-Test-Units", "A,A2")
	if resp.StatusCode != 200 || string(body) != "\"id\"\r\n\"o1\"\r\n\"o3\"\r\n" {
		t.Errorf("leader of A: %d %q", resp.StatusCode, body)
	}
	resp, body = e.post(t, map[string]any{"sql": "SELECT id FROM officers ORDER BY id", "format": "csv"})
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("o2")) {
		t.Errorf("analyst: %d %q", resp.StatusCode, body)
	}
	resp, body = e.post(t, map[string]any{"sql": "SELECT * FROM ref_officers"}, "X-Test-Units", "A")
	if resp.StatusCode != 400 || !bytes.Contains(body, []byte("outside your scope")) {
		t.Errorf("leader reading a raw table: %d %s", resp.StatusCode, body)
	}

	// The schema lists every curated view, every column typed and described.
	req, _ := http.NewRequest("GET", e.srv.URL+"/schema", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var views []sqlapi.ViewDoc
	if err := json.NewDecoder(r.Body).Decode(&views); err != nil {
		t.Fatal(err)
	}
	if len(views) != len(sqlapi.Views) {
		t.Fatalf("%d views, want %d", len(views), len(sqlapi.Views))
	}
	for _, v := range views {
		if len(v.Columns) == 0 {
			t.Errorf("view %s has no columns", v.Name)
		}
		for _, c := range v.Columns {
			if c.Type == "" || c.EN == "" || c.VI == "" {
				t.Errorf("%s.%s is not documented in docs/schema.md (type %q, en %q, vi %q)", v.Name, c.Name, c.Type, c.EN, c.VI)
			}
		}
	}
}

// A statement over MaxSQLBytes is refused with 413, whether raw or in a
// JSON body, however much JSON escaping swells it; a JSON body too large
// even for that is refused whole, not decoded cut short.
func TestStatementTooLarge(t *testing.T) {
	e := newEnv(t, sqlapi.Config{MaxSQLBytes: 1 << 10})
	long := "SELECT '" + strings.Repeat("x", 2<<10) + "'"
	if resp, body := e.post(t, map[string]any{"sql": long}); resp.StatusCode != 413 || !strings.Contains(string(body), "longer than 1024 bytes") {
		t.Errorf("long statement in JSON: %d %s", resp.StatusCode, body)
	}
	// Every byte a control character: six bytes each once escaped.
	escaped := "SELECT '" + strings.Repeat("\x01", 1000) + "'"
	if resp, body := e.post(t, map[string]any{"sql": escaped}); resp.StatusCode != 200 {
		t.Errorf("a statement within the limit, swollen by JSON escapes: %d %s", resp.StatusCode, body)
	}
	huge := map[string]any{"sql": "SELECT 1", "pad": strings.Repeat(" ", 200<<10)}
	if resp, body := e.post(t, huge); resp.StatusCode != 413 || !strings.Contains(string(body), "body larger than") {
		t.Errorf("JSON body beyond the limit: %d %s", resp.StatusCode, body)
	}
	resp, err := http.Post(e.srv.URL, "text/plain", strings.NewReader(long))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "longer than 1024 bytes") {
		t.Errorf("long raw statement: %d %s", resp.StatusCode, b)
	}
}

// The audit fails closed: while its rows cannot be written, statements are
// refused (503) and the rows wait; once the table takes writes again every
// row lands, those of the refusals too. A request refused before its
// statement ran (a body that cannot be read) is audited as well.
func TestAuditFailsClosed(t *testing.T) {
	e := newEnv(t, sqlapi.Config{})
	ctx := context.Background()
	audit := e.db.Table("sql_audit")
	resp, body := e.post(t, map[string]any{"sql": "SELECT 5 AS refused_early", "bogus": 1})
	if resp.StatusCode != 400 {
		t.Fatalf("unknown member: %d %s", resp.StatusCode, body)
	}
	early := resp.Header.Get("X-Ioc-Query-Id")
	if err := e.db.Conn.Exec(ctx, "RENAME TABLE "+audit+" TO "+audit+"_away"); err != nil {
		t.Fatal(err)
	}
	resp, body = e.post(t, map[string]any{"sql": "SELECT 1 AS before_the_audit_knew"})
	if resp.StatusCode != 200 {
		t.Fatalf("first statement: %d %s", resp.StatusCode, body)
	}
	first := resp.Header.Get("X-Ioc-Query-Id")
	var refused string
	testenv.Eventually(t, 20*time.Second, "statements refused while the audit fails", func() (bool, error) {
		resp, body := e.post(t, map[string]any{"sql": "SELECT 2 AS while_failing"})
		if resp.StatusCode == 503 && bytes.Contains(body, []byte("audit")) {
			refused = resp.Header.Get("X-Ioc-Query-Id")
			return true, nil
		}
		if resp.StatusCode != 200 {
			return false, fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return false, nil
	})
	if err := e.db.Conn.Exec(ctx, "RENAME TABLE "+audit+"_away TO "+audit); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "statements accepted once the audit is written", func() (bool, error) {
		resp, _ := e.post(t, map[string]any{"sql": "SELECT 3"})
		return resp.StatusCode == 200, nil
	})
	for id, want := range map[string]string{early: "invalid", first: "ok", refused: "unavailable"} {
		var outcomes []string
		rows, err := e.db.Conn.Query(ctx, "SELECT outcome FROM "+audit+" WHERE query_id = ?", id)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				t.Fatal(err)
			}
			outcomes = append(outcomes, o)
		}
		rows.Close()
		if len(outcomes) != 1 || outcomes[0] != want {
			t.Errorf("audit of %s: %v, want one %s", id, outcomes, want)
		}
	}
}

// A result whose blocks would take more memory in the node than allowed
// fails with a clear error, and the query is stopped in ClickHouse; a
// result of the same rows, narrower, passes.
func TestBlockTooLargeForTheNode(t *testing.T) {
	e := newEnv(t, sqlapi.Config{MaxBlockBytes: 1 << 20})
	for _, format := range []string{"csv", "arrow", "json"} {
		resp, body := e.post(t, map[string]any{"sql": "SELECT number, arrayStringConcat(arrayMap(i -> 'x', range(100))) AS s FROM system.numbers LIMIT 20000", "format": format})
		if resp.StatusCode != 400 || !bytes.Contains(body, []byte("takes more than 1 MiB in the node")) {
			t.Errorf("%s: %d %.300s", format, resp.StatusCode, body)
		}
		processGone(t, e.db, resp.Header.Get("X-Ioc-Query-Id"))
		resp, body = e.post(t, map[string]any{"sql": "SELECT number, arrayStringConcat(arrayMap(i -> 'x', range(2))) AS s FROM system.numbers LIMIT 20000", "format": format})
		if resp.StatusCode != 200 || resp.Trailer.Get("X-Ioc-Rows") != "20000" {
			t.Errorf("%s narrower: %d %v %.300s", format, resp.StatusCode, resp.Trailer, body)
		}
	}
	waitAudit(t, e.db, "invalid")
}
