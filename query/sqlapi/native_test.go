package sqlapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/sqlapi"
)

// allTypes has a column of every type the Native decoder reads, over more
// than two ClickHouse blocks (65,536 rows each).
const allTypes = `SELECT number AS n, toInt8(number % 100 - 50) AS i8, toInt16(number) AS i16, toInt32(number) - 7 AS i32,
 toInt64(number) * -3 AS i64, toUInt8(number % 256) AS u8, toUInt16(number % 65536) AS u16, toUInt32(number) AS u32,
 toFloat32(number) / 7 AS f32, toFloat64(number) / 3 AS f64,
 concat('ward ', toString(number % 168), if(number % 5 = 0, ' Phường Bến Thành', '')) AS s, '' AS empty,
 if(number % 7 = 0, arrayStringConcat(arrayMap(x -> 'x', range(300))), 'y') AS long, toFixedString(toString(number % 1000), 3) AS fs,
 toDate('2020-01-01') + number % 3000 AS d, toDateTime(1700000000 + number) AS t,
 toDateTime(1700000000 + number, 'Asia/Ho_Chi_Minh') AS tz,
 if(number % 3 = 0, NULL, toString(number)) AS ns, if(number % 4 = 0, NULL, toInt32(number)) AS ni,
 arrayMap(x -> toString(x), range(number % 4)) AS arr, arrayMap(x -> if(x = 1, NULL, toUInt8(x)), range(number % 3)) AS arrn,
 [range(number % 2)] AS arr2,
 CAST(number % 2 AS Enum8('a' = 0, 'b\'c' = 1)) AS e8, CAST(number % 2 * 1000 AS Enum16('x' = 0, 'y' = 1000)) AS e16,
 toDecimal32(toInt32(number % 1000) - 500, 2) AS d32, toDecimal64(toInt64(number) - 75000, 3) AS d64, toDecimal128(number, 5) AS d128,
 toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS uuid
FROM system.numbers LIMIT 150000`

// twoPaths serves the SQL API twice on one database: reading ClickHouse's
// Native format over HTTP, and row by row through the driver (native
// protocol).
func twoPaths(t *testing.T) (native, driver *env, reg *prometheus.Registry) {
	t.Helper()
	db, cfg := testenv.ClickHouse(t)
	reg = prometheus.NewRegistry()
	native = newEnvOn(t, db, sqlapi.Config{}, reg)
	cfg.HTTPAddr = "off"
	ctx := context.Background()
	db2, err := query.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	driver = newEnvOn(t, db2, sqlapi.Config{}, nil)
	return native, driver, reg
}

// readArrow decodes a stream into its schema and one array per column.
func readArrow(t *testing.T, body []byte) (*arrow.Schema, []arrow.Array, int) {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("arrow: %v", err)
	}
	defer rd.Release()
	var parts [][]arrow.Array
	rows := 0
	for rd.Next() {
		rec := rd.Record()
		rows += int(rec.NumRows())
		for i, c := range rec.Columns() {
			if len(parts) <= i {
				parts = append(parts, nil)
			}
			c.Retain()
			parts[i] = append(parts[i], c)
		}
	}
	if rd.Err() != nil {
		t.Fatalf("arrow: %v", rd.Err())
	}
	cols := make([]arrow.Array, len(parts))
	for i, p := range parts {
		if cols[i], err = array.Concatenate(p, memory.DefaultAllocator); err != nil {
			t.Fatal(err)
		}
	}
	return rd.Schema(), cols, rows
}

func pathCount(t *testing.T, reg *prometheus.Registry, path string) float64 {
	t.Helper()
	return testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", path)
}

func TestArrowNativeEqualsDriver(t *testing.T) {
	native, driver, reg := twoPaths(t)
	for _, q := range []struct {
		name, sql string
		rows      int
	}{
		{"all types", allTypes, 150000},
		{"typed", typed, 5},
		{"empty", "SELECT number, toString(number) AS s FROM system.numbers WHERE number > 10 LIMIT 0", 0},
		{"table", "SELECT * FROM dossier_events", 0},
		{"with, and a comment at the end", "WITH 3 AS k SELECT number * k AS n, toString(n) AS s FROM system.numbers LIMIT 10 -- the end", 10},
	} {
		before := pathCount(t, reg, "http")
		resp, nb := native.post(t, map[string]any{"sql": q.sql, "format": "arrow", "max_rows": 1_000_000})
		if resp.StatusCode != 200 {
			t.Fatalf("%s native: %d %s", q.name, resp.StatusCode, nb)
		}
		if pathCount(t, reg, "http") != before+1 {
			t.Errorf("%s: not read through the Native path", q.name)
		}
		resp, db := driver.post(t, map[string]any{"sql": q.sql, "format": "arrow", "max_rows": 1_000_000})
		if resp.StatusCode != 200 {
			t.Fatalf("%s driver: %d %s", q.name, resp.StatusCode, db)
		}
		ns, ncols, nrows := readArrow(t, nb)
		ds, dcols, drows := readArrow(t, db)
		if !ns.Equal(ds) {
			t.Fatalf("%s: schemas differ:\nnative %v\ndriver %v", q.name, ns, ds)
		}
		if nrows != q.rows || drows != q.rows {
			t.Fatalf("%s: %d rows native, %d driver, want %d", q.name, nrows, drows, q.rows)
		}
		for i := range ncols {
			if !array.Equal(ncols[i], dcols[i]) {
				f := ns.Field(i).Name
				t.Errorf("%s: column %s differs: native %v… driver %v…", q.name, f, array.NewSlice(ncols[i], 0, min(3, int64(nrows))), array.NewSlice(dcols[i], 0, min(3, int64(drows))))
			}
		}
	}
	if testutil.CollectAndCount(reg, "ioc_sql_read_path_total") == 0 {
		t.Error("no ioc_sql_read_path_total")
	}
}

func TestArrowNativeLimitsAndErrors(t *testing.T) {
	native, _, reg := twoPaths(t)
	// Cut at max_rows inside a block; the query stopped.
	resp, body := native.post(t, map[string]any{"sql": "SELECT number FROM system.numbers", "format": "arrow", "max_rows": 70000})
	if resp.StatusCode != 200 || resp.Trailer.Get("X-Ioc-Truncated") != "true" || resp.Trailer.Get("X-Ioc-Rows") != "70000" {
		t.Fatalf("max_rows: %d %v", resp.StatusCode, resp.Trailer)
	}
	if _, cols, rows := readArrow(t, body); rows != 70000 || cols[0].(*array.Uint64).Value(69999) != 69999 {
		t.Fatalf("max_rows: %d rows", rows)
	}
	processGone(t, native.db, resp.Header.Get("X-Ioc-Query-Id"))
	// ClickHouse refuses before the first block: a clear 400.
	resp, body = native.post(t, map[string]any{"sql": "SELECT throwIf(number = 0) FROM system.numbers LIMIT 1", "format": "arrow"})
	if resp.StatusCode != 400 || !bytes.Contains(body, []byte("throwIf")) {
		t.Errorf("error before the first block: %d %s", resp.StatusCode, body)
	}
	// ClickHouse fails after blocks were sent: the stream is cut, never
	// complete, and the audit says why.
	b, _ := json.Marshal(map[string]any{"sql": "SELECT number, throwIf(number = 150000) AS x FROM system.numbers LIMIT 200000", "format": "arrow", "max_rows": 1_000_000})
	r, err := http.Post(native.srv.URL, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || err == nil {
		t.Errorf("failed stream: status %d, read error %v (want 200 and a cut body)", r.StatusCode, err)
	}
	if rd, err := ipc.NewReader(bytes.NewReader(body)); err == nil {
		n := 0
		for rd.Next() {
			n += int(rd.Record().NumRows())
		}
		if rd.Err() == nil && n == 200000 {
			t.Errorf("failed stream read as complete (%d rows)", n)
		}
	}
	id := r.Header.Get("X-Ioc-Query-Id")
	testenv.Eventually(t, 10*time.Second, "audit of the failed stream", func() (bool, error) {
		var outcome, msg string
		err := native.db.Conn.QueryRow(context.Background(), "SELECT outcome, error FROM "+native.db.Table("sql_audit")+" WHERE query_id = ?", id).Scan(&outcome, &msg)
		if err != nil {
			return false, nil
		}
		if outcome != "invalid" || !strings.Contains(msg, "throwIf") {
			t.Errorf("audit of the failed stream: %s %q", outcome, msg)
		}
		return true, nil
	})
	// A type without a Native decoder keeps the driver's path, whatever the format.
	before := pathCount(t, reg, "driver")
	resp, body = native.post(t, map[string]any{"sql": "SELECT toLowCardinality(toString(number)) AS l, (number, 'x') AS tup FROM system.numbers LIMIT 3", "format": "arrow"})
	if resp.StatusCode != 200 || pathCount(t, reg, "driver") != before+1 {
		t.Fatalf("LowCardinality: %d %s", resp.StatusCode, body)
	}
	if _, cols, rows := readArrow(t, body); rows != 3 || cols[0].(*array.String).Value(2) != "2" {
		t.Fatalf("LowCardinality: %d rows", rows)
	}
}

// volatile matches the parts of a JSON answer that differ between any two runs.
var volatile = regexp.MustCompile(`"(query_id|elapsed_ms)":("[^"]*"|[0-9]+)`)

// TestTextHTTPEqualsDriver: the text formats read over HTTP write the same
// bytes as the driver's path, for every type the Native decoder reads.
func TestTextHTTPEqualsDriver(t *testing.T) {
	native, driver, reg := twoPaths(t)
	for _, q := range []struct {
		name, sql string
		rows      int
	}{
		// Past the first block of 65,536 rows; 150,000 rows of JSON
		// read row by row through the driver take long.
		{"all types", strings.Replace(allTypes, "LIMIT 150000", "LIMIT 70000", 1), 70000},
		{"typed", typed, 5},
		{"empty", "SELECT number, toString(number) AS s, toDate('2024-01-01') AS d FROM system.numbers WHERE number > 10 LIMIT 0", 0},
		{"table", "SELECT * FROM dossier_events", 0},
		{"odd names", "SELECT 1 AS `a\tb`, 'x' AS `c\\d'e`, toDateTime(0, 'Asia/Ho_Chi_Minh') AS `tz time`", 1},
	} {
		for _, format := range []string{"json", "ndjson", "csv"} {
			before := testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", "http", "format", format)
			resp, nb := native.post(t, map[string]any{"sql": q.sql, "format": format, "max_rows": 1_000_000})
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s over HTTP: %d %s", q.name, format, resp.StatusCode, nb)
			}
			// An empty body has them as headers, for want of a body to trail.
			if got := resp.Trailer.Get("X-Ioc-Rows") + resp.Header.Get("X-Ioc-Rows"); got != strconv.Itoa(q.rows) {
				t.Errorf("%s %s over HTTP: %s rows, want %d", q.name, format, got, q.rows)
			}
			if testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", "http", "format", format) != before+1 {
				t.Errorf("%s %s: not read over HTTP", q.name, format)
			}
			ct := resp.Header.Get("Content-Type")
			resp, db := driver.post(t, map[string]any{"sql": q.sql, "format": format, "max_rows": 1_000_000})
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s driver: %d %s", q.name, format, resp.StatusCode, db)
			}
			if ct != resp.Header.Get("Content-Type") {
				t.Errorf("%s %s: content type %q over HTTP, %q through the driver", q.name, format, ct, resp.Header.Get("Content-Type"))
			}
			nb, db = volatile.ReplaceAll(nb, []byte(`"$1":0`)), volatile.ReplaceAll(db, []byte(`"$1":0`))
			if !bytes.Equal(nb, db) {
				i := 0
				for i < min(len(nb), len(db)) && nb[i] == db[i] {
					i++
				}
				t.Errorf("%s %s: bodies differ at byte %d of %d/%d:\nhttp   …%q…\ndriver …%q…", q.name, format, i, len(nb), len(db),
					nb[max(0, i-80):min(len(nb), i+80)], db[max(0, i-80):min(len(db), i+80)])
			}
		}
	}
}

// TestSameNamesReadThroughDriver: columns of the same name, which the
// LIMIT 0 that learns the columns merges into one, are read through the
// driver, in every format, as they would have been before.
func TestSameNamesReadThroughDriver(t *testing.T) {
	native, driver, reg := twoPaths(t)
	for _, sql := range []string{"SELECT count(), count() FROM system.one", "SELECT number AS x, number AS x FROM system.numbers LIMIT 3"} {
		for _, format := range []string{"json", "ndjson", "csv", "arrow"} {
			before := testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", "driver", "format", format)
			resp, nb := native.post(t, map[string]any{"sql": sql, "format": format})
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d %s", sql, format, resp.StatusCode, nb)
			}
			if testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", "driver", "format", format) != before+1 {
				t.Errorf("%s %s: not counted as read through the driver", sql, format)
			}
			_, db := driver.post(t, map[string]any{"sql": sql, "format": format})
			if format == "arrow" {
				_, ncols, nrows := readArrow(t, nb)
				_, dcols, drows := readArrow(t, db)
				if nrows != drows || len(ncols) != 2 || len(dcols) != 2 {
					t.Errorf("%s arrow: %d rows × %d columns, driver %d × %d", sql, nrows, len(ncols), drows, len(dcols))
				}
				continue
			}
			nb, db = volatile.ReplaceAll(nb, []byte(`"$1":0`)), volatile.ReplaceAll(db, []byte(`"$1":0`))
			if !bytes.Equal(nb, db) {
				t.Errorf("%s %s:\n%s\ndriver:\n%s", sql, format, nb, db)
			}
		}
	}
}

// TestTextHTTPLimits: max_rows and max_bytes cut a text result read over
// HTTP between rows, say so, and stop the query.
func TestTextHTTPLimits(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	reg := prometheus.NewRegistry()
	e := newEnvOn(t, db, sqlapi.Config{MaxBytes: 1 << 20}, reg)
	// Inside the second block of 65,536 rows.
	resp, body := e.post(t, map[string]any{"sql": "SELECT number FROM system.numbers", "format": "csv", "max_rows": 70001})
	if resp.StatusCode != 200 || resp.Trailer.Get("X-Ioc-Truncated") != "true" || resp.Trailer.Get("X-Ioc-Rows") != "70001" {
		t.Fatalf("max_rows: %d %v", resp.StatusCode, resp.Trailer)
	}
	if lines := bytes.Split(bytes.TrimSpace(body), []byte("\r\n")); len(lines) != 70002 || string(lines[70001]) != "70000" {
		t.Fatalf("max_rows: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	processGone(t, db, resp.Header.Get("X-Ioc-Query-Id"))
	// Exactly max_rows rows exist: not truncated.
	resp, _ = e.post(t, map[string]any{"sql": "SELECT number FROM system.numbers LIMIT 70001", "format": "csv", "max_rows": 70001})
	if resp.Trailer.Get("X-Ioc-Truncated") != "false" || resp.Trailer.Get("X-Ioc-Rows") != "70001" {
		t.Errorf("exactly max_rows: %v", resp.Trailer)
	}
	// max_bytes, inside the first block.
	resp, body = e.post(t, map[string]any{"sql": "SELECT number, arrayStringConcat(arrayMap(x -> 'x', range(100))) AS s FROM system.numbers", "format": "ndjson", "max_rows": 1_000_000})
	rows, _ := strconv.Atoi(resp.Trailer.Get("X-Ioc-Rows"))
	if resp.StatusCode != 200 || resp.Trailer.Get("X-Ioc-Truncated") != "true" || rows >= 65536 || len(body) < 1<<20 || len(body) > 1<<20+(64<<10)+200 {
		t.Fatalf("max_bytes: %d, %d rows, %d bytes, %v %.300s", resp.StatusCode, rows, len(body), resp.Trailer, body)
	}
	if n := bytes.Count(body, []byte("\n")); n != rows {
		t.Errorf("max_bytes: %d lines for %d rows", n, rows)
	}
	processGone(t, db, resp.Header.Get("X-Ioc-Query-Id"))
	if testenv.Metric(t, reg, "ioc_sql_read_path_total", "path", "driver") != 0 {
		t.Error("a statement went through the driver")
	}
	// An error after rows were sent ends the JSON answer with it.
	e = newEnvOn(t, db, sqlapi.Config{}, nil)
	resp, body = e.post(t, map[string]any{"sql": "SELECT number, throwIf(number = 150000) AS x FROM system.numbers LIMIT 200000", "format": "json", "max_rows": 1_000_000})
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"error":{"code":`)) || !bytes.Contains(body, []byte("throwIf")) {
		t.Errorf("error mid-stream: %d …%s", resp.StatusCode, body[max(0, len(body)-300):])
	}
}
