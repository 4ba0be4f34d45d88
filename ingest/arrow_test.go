package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

var testClock = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func arrowTestValidator(t testing.TB) (*Validator, *Pseudonymizer) {
	t.Helper()
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPseudonymizer([]byte("test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	v := NewValidator(c, nil, p)
	v.now = func() time.Time { return testClock }
	return v, p
}

// tcol is a test column: its name, type and values (nil is null).
type tcol struct {
	name string
	typ  arrow.DataType
	vals []any
}

var (
	tsMsHCM  = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Asia/Ho_Chi_Minh"}
	tsSecUTC = &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}
	dictUTF8 = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
)

// arrowStream writes the columns as an IPC stream, in record batches of the
// given sizes (one batch of all rows when none are given).
func arrowStream(t testing.TB, cols []tcol, batches ...int) []byte {
	t.Helper()
	return arrowStreamWith(t, nil, cols, batches...)
}

// arrowStreamWith is arrowStream with options of the IPC writer
// (compression).
func arrowStreamWith(t testing.TB, opts []ipc.Option, cols []tcol, batches ...int) []byte {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	rows := 0
	if len(cols) > 0 {
		rows = len(cols[0].vals)
	}
	if len(batches) == 0 {
		batches = []int{rows}
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	start := 0
	for _, n := range batches {
		for i, c := range cols {
			for _, v := range c.vals[start : start+n] {
				appendValue(t, b.Field(i), v)
			}
		}
		rec := b.NewRecord()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		start += n
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func appendValue(t testing.TB, b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.Int64Builder:
		b.Append(int64(v.(int)))
	case *array.Int32Builder:
		b.Append(int32(v.(int)))
	case *array.Uint16Builder:
		b.Append(uint16(v.(int)))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.Float32Builder:
		b.Append(v.(float32))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.TimestampBuilder:
		unit := b.Type().(*arrow.TimestampType).Unit
		tm := v.(time.Time)
		switch unit {
		case arrow.Second:
			b.Append(arrow.Timestamp(tm.Unix()))
		case arrow.Millisecond:
			b.Append(arrow.Timestamp(tm.UnixMilli()))
		default:
			b.Append(arrow.Timestamp(tm.UnixNano()))
		}
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(v.(string)); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no test builder for %T", b)
	}
}

type decoded struct {
	recs     []*Record
	idx      []int
	rejected []Rejection
	chunks   []int // rows per emit
}

func decode(t testing.TB, v *Validator, body []byte, family, bound string, maxRows int) (decoded, error) {
	t.Helper()
	var d decoded
	err := DecodeArrow(bytes.NewReader(body), family, v, bound, maxRows, func(recs []*Record, idx []int, rej []Rejection) error {
		if len(recs) != len(idx) {
			t.Fatalf("emit: %d records, %d indexes", len(recs), len(idx))
		}
		d.recs = append(d.recs, recs...)
		d.idx = append(d.idx, idx...)
		d.rejected = append(d.rejected, rej...)
		d.chunks = append(d.chunks, len(recs)+len(rej))
		return nil
	})
	return d, err
}

func dataOf(t *testing.T, r *Record) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeArrowFlatDossierReceived(t *testing.T) {
	v, p := arrowTestValidator(t)
	at := time.Date(2024, 3, 4, 8, 30, 15, 123e6, time.FixedZone("ICT", 7*3600))
	due := time.Date(2024, 3, 11, 17, 0, 0, 0, time.UTC)
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, []any{"e1", "e2", "e3", "e4"}},
		{"source", arrow.BinaryTypes.String, []any{"dvc-hcm", "dvc-hcm", "dvc-hcm", "dvc-hcm"}},
		{"type", dictUTF8, []any{"received", "vn.ioc.dossier.received", "received", "assigned"}},
		{"subject", arrow.BinaryTypes.String, []any{"HS-1", "HS-2", "HS-3", "HS-1"}},
		{"time", tsMsHCM, []any{at, at.Add(time.Minute), at.Add(2 * time.Minute), at.Add(time.Hour)}},
		{"procedure_code", arrow.BinaryTypes.String, []any{"1.0001", "1.0002", "1.0003", nil}},
		{"procedure_name", arrow.BinaryTypes.String, []any{"Đăng ký khai sinh", nil, "Cấp phép xây dựng", nil}},
		{"channel", arrow.BinaryTypes.String, []any{"online", "counter", "kiosk", nil}},
		{"unit", arrow.BinaryTypes.String, []any{"P.BN", "P.BN", "Q1", "Q1"}},
		{"due_at", tsSecUTC, []any{due, due, due, nil}},
		{"applicant_kind", arrow.BinaryTypes.String, []any{"citizen", "business", nil, nil}},
		{"applicant_id", arrow.BinaryTypes.String, []any{"079123456789", "0312345678", nil, nil}},
		{"applicant_name", arrow.BinaryTypes.String, []any{"Nguyễn Văn A", nil, nil, nil}},
		{"fee_paid_online", arrow.FixedWidthTypes.Boolean, []any{true, false, nil, nil}},
		{"officer", arrow.BinaryTypes.String, []any{nil, nil, nil, "cb-7"}},
	}
	d, err := decode(t, v, arrowStream(t, cols, 3, 1), "dossier", "dvc-hcm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.rejected) != 0 || len(d.recs) != 4 {
		t.Fatalf("recs %d, rejected %+v", len(d.recs), d.rejected)
	}
	if !reflect.DeepEqual(d.idx, []int{0, 1, 2, 3}) {
		t.Fatalf("idx %v", d.idx)
	}
	r := d.recs[0]
	if r.ID != "e1" || r.Source != "dvc-hcm" || r.Family != "dossier" || r.Transition != "received" || r.Subject != "HS-1" {
		t.Fatalf("envelope %+v", r)
	}
	if want := at.Truncate(time.Millisecond).UTC(); !r.Time.Equal(want) || r.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v", r.Time, want)
	}
	got := dataOf(t, r)
	want := map[string]any{
		"procedure_code": "1.0001", "procedure_name": "Đăng ký khai sinh", "channel": "online",
		"unit": "P.BN", "due_at": "2024-03-11T17:00:00Z", "fee_paid_online": true,
		"applicant": map[string]any{"kind": "citizen", "id": p.Pseudonym("079123456789"), "name": p.Pseudonym("Nguyễn Văn A")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("data\n got %v\nwant %v", got, want)
	}
	if strings.Contains(string(r.Data), "079123456789") || strings.Contains(string(r.Data), "Nguyễn") {
		t.Fatalf("personal data in clear: %s", r.Data)
	}
	// Nulls are omitted, and so is an applicant whose fields are all null.
	got = dataOf(t, d.recs[2])
	if _, ok := got["applicant"]; ok {
		t.Errorf("all-null applicant kept: %v", got)
	}
	if _, ok := got["fee_paid_online"]; ok {
		t.Errorf("null fee_paid_online kept: %v", got)
	}
	if got := dataOf(t, d.recs[1])["applicant"]; !reflect.DeepEqual(got, map[string]any{"kind": "business", "id": p.Pseudonym("0312345678")}) {
		t.Errorf("applicant of row 1: %v", got)
	}
	if r := d.recs[3]; r.Transition != "assigned" || !reflect.DeepEqual(dataOf(t, r), map[string]any{"unit": "Q1", "officer": "cb-7"}) {
		t.Errorf("assigned row: %+v %s", r, r.Data)
	}
}

func TestDecodeArrowDataColumn(t *testing.T) {
	v, p := arrowTestValidator(t)
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, []any{"f1", "f2", "f3"}},
		{"source", arrow.BinaryTypes.String, []any{"1022", "1022", "1022"}},
		{"type", arrow.BinaryTypes.String, []any{"vn.ioc.feedback.received", "rated", "rated"}},
		{"subject", arrow.BinaryTypes.String, []any{"PA-1", "PA-1", "PA-2"}},
		{"time", arrow.BinaryTypes.String, []any{"2024-05-01T09:00:00+07:00", "2024-05-03T10:00:00.5Z", "2024-05-03 10:00"}},
		{"data", arrow.BinaryTypes.String, []any{
			`{"channel":"app","category":"environment","unit":"P.BN","due_at":"2024-05-06T17:00:00+07:00",
			  "location":{"lat":10.77,"lon":106.7},"citizen":{"phone":"0909000111"}}`,
			` {"rating": 4} `, `{"rating": 4}`}},
	}
	d, err := decode(t, v, arrowStream(t, cols), "feedback", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 2 || len(d.rejected) != 1 {
		t.Fatalf("recs %d rejected %+v", len(d.recs), d.rejected)
	}
	if rj := d.rejected[0]; rj.Index != 2 || rj.Field != "time" || rj.ID != "f3" {
		t.Errorf("rejection %+v", rj)
	}
	if want := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC); !d.recs[0].Time.Equal(want) {
		t.Errorf("time %v", d.recs[0].Time)
	}
	cit := dataOf(t, d.recs[0])["citizen"].(map[string]any)
	if cit["phone"] != p.Pseudonym("0909000111") {
		t.Errorf("phone not pseudonymized: %v", cit)
	}
	if d.recs[1].Transition != "rated" || string(d.recs[1].Data) != `{"rating":4}` {
		t.Errorf("rated: %+v %s", d.recs[1], d.recs[1].Data)
	}
}

func TestDecodeArrowNestedAndNumbers(t *testing.T) {
	v, _ := arrowTestValidator(t)
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, []any{"s1", "s2"}},
		{"source", arrow.BinaryTypes.String, []any{"survey", "survey"}},
		{"type", arrow.BinaryTypes.String, []any{"submitted", "submitted"}},
		{"subject", arrow.BinaryTypes.String, []any{"HS-1", "HS-2"}},
		{"time", arrow.BinaryTypes.String, []any{"2024-05-01T09:00:00Z", "2024-05-01T09:00:00Z"}},
		{"unit", arrow.BinaryTypes.String, []any{"P.BN", "P.BN"}},
		{"rating", arrow.BinaryTypes.String, []any{"satisfied", "satisfied"}},
		{"criteria_attitude", arrow.PrimitiveTypes.Int32, []any{5, nil}},
		{"criteria_timeliness", arrow.PrimitiveTypes.Uint16, []any{4, nil}},
		{"criteria_guidance", arrow.PrimitiveTypes.Float32, []any{float32(3), nil}},
	}
	d, err := decode(t, v, arrowStream(t, cols), "survey", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 2 {
		t.Fatalf("rejected %+v", d.rejected)
	}
	if got := string(d.recs[0].Data); !strings.Contains(got, `"criteria":{"attitude":5,"guidance":3,"timeliness":4}`) {
		t.Errorf("data %s", got)
	}
	if strings.Contains(string(d.recs[1].Data), "criteria") {
		t.Errorf("all-null criteria kept: %s", d.recs[1].Data)
	}

	// NaN is a value, not a null: the schema refuses it.
	cols = []tcol{
		{"id", arrow.BinaryTypes.String, []any{"p1"}},
		{"source", arrow.BinaryTypes.String, []any{"dvc"}},
		{"type", arrow.BinaryTypes.String, []any{"paid"}},
		{"subject", arrow.BinaryTypes.String, []any{"HS-1"}},
		{"time", arrow.BinaryTypes.String, []any{"2024-05-01T09:00:00Z"}},
		{"amount", arrow.PrimitiveTypes.Float64, []any{math.NaN()}},
	}
	d, err = decode(t, v, arrowStream(t, cols), "dossier", "", 0)
	if err != nil || len(d.rejected) != 1 || d.rejected[0].Field != "data.amount" || !strings.Contains(d.rejected[0].Error, "finite") {
		t.Errorf("NaN amount: %v %+v", err, d.rejected)
	}

	// indicator's data field "source" is given as data.source; float32 reads as JSON would.
	cols = []tcol{
		{"id", arrow.BinaryTypes.String, []any{"i1"}},
		{"source", arrow.BinaryTypes.String, []any{"stats"}},
		{"type", arrow.BinaryTypes.String, []any{"reported"}},
		{"subject", arrow.BinaryTypes.String, []any{"GDP"}},
		{"time", arrow.BinaryTypes.String, []any{"2024-05-01T09:00:00Z"}},
		{"unit", arrow.BinaryTypes.String, []any{"Q1"}},
		{"period", arrow.BinaryTypes.String, []any{"2024-Q1"}},
		{"measure", arrow.BinaryTypes.String, []any{"grdp_growth"}},
		{"data.value", arrow.PrimitiveTypes.Float32, []any{float32(0.1)}},
		{"data.source", arrow.BinaryTypes.String, []any{"Cục Thống kê"}},
	}
	d, err = decode(t, v, arrowStream(t, cols), "indicator", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 1 {
		t.Fatalf("rejected %+v", d.rejected)
	}
	if got := dataOf(t, d.recs[0]); got["value"] != 0.1 || got["source"] != "Cục Thống kê" {
		t.Errorf("data %v", got)
	}
}

func TestDecodeArrowBadRowsKeepIndexes(t *testing.T) {
	v, _ := arrowTestValidator(t)
	n := 7
	cols := receivedCols(n)
	cols[7].vals[2] = "fax"                  // channel
	cols[8].vals[5] = nil                    // unit (required)
	cols[0].vals[6] = ""                     // id
	cols[4].vals[4] = "2024-13-01T00:00:00Z" // time
	d, err := decode(t, v, arrowStream(t, cols, 3, 4), "dossier", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.idx, []int{0, 1, 3}) {
		t.Errorf("idx %v", d.idx)
	}
	for i, r := range d.recs {
		if want := fmt.Sprintf("ev-%d", d.idx[i]); r.ID != want {
			t.Errorf("record %d has id %s, want %s", i, r.ID, want)
		}
	}
	want := []struct {
		index     int
		id, field string
	}{{2, "ev-2", "data.channel"}, {4, "ev-4", "time"}, {5, "ev-5", "data.unit"}, {6, "", "id"}}
	if len(d.rejected) != len(want) {
		t.Fatalf("rejected %+v", d.rejected)
	}
	for i, w := range want {
		r := d.rejected[i]
		if r.Index != w.index || r.ID != w.id || r.Field != w.field || r.Type != "vn.ioc.dossier.received" || !strings.HasPrefix(r.Error, w.field+": ") {
			t.Errorf("rejection %d: %+v, want %+v", i, r, w)
		}
	}
}

// receivedCols is n valid dossier.received rows in flat columns; column 7
// is channel, 8 unit.
func receivedCols(n int) []tcol {
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, nil},
		{"source", arrow.BinaryTypes.String, nil},
		{"type", arrow.BinaryTypes.String, nil},
		{"subject", arrow.BinaryTypes.String, nil},
		{"time", arrow.BinaryTypes.String, nil},
		{"procedure_code", arrow.BinaryTypes.String, nil},
		{"procedure_name", arrow.BinaryTypes.String, nil},
		{"channel", arrow.BinaryTypes.String, nil},
		{"unit", arrow.BinaryTypes.String, nil},
		{"due_at", arrow.BinaryTypes.String, nil},
		{"applicant_kind", arrow.BinaryTypes.String, nil},
		{"applicant_id", arrow.BinaryTypes.String, nil},
		{"fee_paid_online", arrow.FixedWidthTypes.Boolean, nil},
	}
	for i := 0; i < n; i++ {
		row := []any{fmt.Sprintf("ev-%d", i), "dvc", "received", fmt.Sprintf("HS-%d", i), "2024-01-02T03:04:05+07:00",
			"1.000" + fmt.Sprint(i%10), "Thủ tục", "online", "P.BN", "2024-01-09T17:00:00+07:00", "citizen", fmt.Sprintf("0791%08d", i), i%2 == 0}
		for c := range cols {
			cols[c].vals = append(cols[c].vals, row[c])
		}
	}
	return cols
}

func TestDecodeArrowWrongFamily(t *testing.T) {
	v, _ := arrowTestValidator(t)
	cols := receivedCols(3)
	cols[2].vals[1] = "vn.ioc.feedback.received"
	cols[2].vals[2] = "vn.ioc.dossier.nonexistent"
	d, err := decode(t, v, arrowStream(t, cols), "dossier", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 1 || len(d.rejected) != 2 {
		t.Fatalf("recs %d rejected %+v", len(d.recs), d.rejected)
	}
	if r := d.rejected[0]; r.Index != 1 || r.Field != "type" || !strings.Contains(r.Error, `family "dossier"`) {
		t.Errorf("wrong family: %+v", r)
	}
	if r := d.rejected[1]; r.Index != 2 || r.Field != "type" || !strings.Contains(r.Error, "unknown event type") {
		t.Errorf("unknown type: %+v", r)
	}
	// The family parameter itself must be known.
	if _, err := decode(t, v, arrowStream(t, cols), "dossiers", "", 0); !isArrowError(err) {
		t.Errorf("unknown family: %v", err)
	}
	// A token bound to another source.
	d, err = decode(t, v, arrowStream(t, receivedCols(2)), "dossier", "other", 0)
	if err != nil || len(d.rejected) != 2 || d.rejected[0].Field != "source" {
		t.Errorf("bound source: %v %+v", err, d.rejected)
	}
}

func isArrowError(err error) bool {
	var ae *ArrowError
	return errors.As(err, &ae)
}

func TestDecodeArrowUnreadable(t *testing.T) {
	v, _ := arrowTestValidator(t)
	good := arrowStream(t, receivedCols(50), 20, 30)
	rnd := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(rnd)
	huge := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, good[8:]...)
	cases := map[string][]byte{
		"empty":        nil,
		"json":         []byte(`[{"specversion":"1.0","id":"x"}]`),
		"random":       rnd,
		"truncated":    good[:len(good)/2],
		"schema only":  good[:len(good)/5],
		"huge length":  huge,
		"flipped body": flip(good, len(good)*3/4),
	}
	for name, body := range cases {
		d, err := decode(t, v, body, "dossier", "", 0)
		if name == "flipped body" && err == nil {
			// A flipped byte inside a string value decodes; what matters is
			// that it neither panics nor accepts more rows than sent.
			if len(d.recs)+len(d.rejected) > 50 {
				t.Errorf("%s: %d rows", name, len(d.recs)+len(d.rejected))
			}
			continue
		}
		if !isArrowError(err) {
			t.Errorf("%s: error %v (%T), want *ArrowError", name, err, err)
		}
	}
	// Random corruption anywhere never panics.
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 300; i++ {
		b := flip(good, r.Intn(len(good)))
		_, _ = decode(t, v, b, "dossier", "", 0)
	}
}

func flip(b []byte, at int) []byte {
	c := append([]byte(nil), b...)
	c[at] ^= 0x5a
	return c
}

func TestDecodeArrowMaxRows(t *testing.T) {
	v, _ := arrowTestValidator(t)
	body := arrowStream(t, receivedCols(5), 3, 2)
	d, err := decode(t, v, body, "dossier", "", 4)
	var tm *TooManyEventsError
	if !errors.As(err, &tm) || tm.Max != 4 {
		t.Fatalf("error %v", err)
	}
	// The first batch (3 rows) was emitted, nothing of the one crossing the limit.
	if len(d.recs) != 3 {
		t.Errorf("emitted %d rows before the limit, want 3", len(d.recs))
	}
	if _, err := decode(t, v, body, "dossier", "", 5); err != nil {
		t.Errorf("exactly maxRows: %v", err)
	}
	if _, err := decode(t, v, body, "dossier", "", 2); !errors.As(err, &tm) {
		t.Errorf("first batch beyond max: %v", err)
	}
}

func TestDecodeArrowChunks(t *testing.T) {
	v, _ := arrowTestValidator(t)
	n := 25_000
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, nil},
		{"source", arrow.BinaryTypes.String, nil},
		{"type", arrow.BinaryTypes.String, nil},
		{"subject", arrow.BinaryTypes.String, nil},
		{"time", tsSecUTC, nil},
	}
	at := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		typ := "apology_issued"
		if i == 12_345 {
			typ = "received" // no data columns: procedure_code etc. are missing
		}
		for c, x := range []any{fmt.Sprint(i), "dvc", typ, "HS", at} {
			cols[c].vals = append(cols[c].vals, x)
		}
	}
	d, err := decode(t, v, arrowStream(t, cols, 22_000, 3_000), "dossier", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.chunks, []int{10_000, 10_000, 2_000, 3_000}) {
		t.Errorf("chunks %v", d.chunks)
	}
	if len(d.recs) != n-1 || len(d.rejected) != 1 || d.rejected[0].Index != 12_345 || d.rejected[0].Field != "data.procedure_code" {
		t.Fatalf("recs %d rejected %+v", len(d.recs), d.rejected)
	}
	for i, x := range d.idx {
		if want := fmt.Sprint(x); d.recs[i].ID != want {
			t.Fatalf("record %d (row %d) has id %s", i, x, d.recs[i].ID)
		}
	}
	if string(d.recs[0].Data) != "{}" {
		t.Errorf("data %s", d.recs[0].Data)
	}
	// emit's error stops the stream and comes back as is.
	stop := errors.New("jetstream down")
	calls := 0
	err = DecodeArrow(bytes.NewReader(arrowStream(t, cols, 22_000, 3_000)), "dossier", v, "", 0,
		func([]*Record, []int, []Rejection) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("emit error: %v after %d calls", err, calls)
	}
}

func TestDecodeArrowColumnContract(t *testing.T) {
	v, _ := arrowTestValidator(t)
	base := receivedCols(1)
	with := func(extra ...tcol) []tcol { return append(append([]tcol(nil), base...), extra...) }
	without := func(name string) []tcol {
		var out []tcol
		for _, c := range base {
			if c.name != name {
				out = append(out, c)
			}
		}
		return out
	}
	naive := &arrow.TimestampType{Unit: arrow.Millisecond}
	cases := map[string]struct {
		cols []tcol
		want string
	}{
		"missing subject":    {without("subject"), `"subject" is missing`},
		"missing time":       {without("time"), `"time" is missing`},
		"unknown column":     {with(tcol{"applicant_ID", arrow.BinaryTypes.String, []any{"x"}}), `"applicant_ID" is not a field of dossier`},
		"naive timestamp":    {with(tcol{"data.due_at", naive, []any{time.Now()}}), "without time zone"},
		"int for string":     {with(tcol{"officer", arrow.PrimitiveTypes.Int64, []any{1}}), `data.officer is a string`},
		"utf8 for bool":      {with(tcol{"e_result", arrow.BinaryTypes.String, []any{"true"}}), `data.e_result is a boolean`},
		"data beside flat":   {with(tcol{"data", arrow.BinaryTypes.String, []any{"{}"}}), "beside a data column"},
		"int id":             {append(without("id"), tcol{"id", arrow.PrimitiveTypes.Int64, []any{1}}), `"id" is integer, must be utf8`},
		"unsupported type":   {with(tcol{"reason", arrow.ListOf(arrow.BinaryTypes.String), []any{nil}}), "is not one of"},
		"duplicate envelope": {with(tcol{"id", arrow.BinaryTypes.String, []any{"x"}}), "appears twice"},
		"same field twice":   {with(tcol{"data.unit", arrow.BinaryTypes.String, []any{"x"}}), `columns "unit" and "data.unit" both give data.unit`},
		"struct column":      {with(tcol{"location", arrow.StructOf(arrow.Field{Name: "lat", Type: arrow.PrimitiveTypes.Float64}), []any{nil}}), "is not one of"},
		"null-typed id":      {append(without("id"), tcol{"id", arrow.Null, []any{nil}}), `"id" is of the null type`},
		"null-typed time":    {append(without("time"), tcol{"time", arrow.Null, []any{nil}}), `"time" is of the null type`},
	}
	for name, c := range cases {
		_, err := decode(t, v, arrowStream(t, c.cols), "dossier", "", 0)
		if !isArrowError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an ArrowError with %q", name, err, c.want)
		}
	}
	// The column names come from the compiled schemas.
	f := v.contract.arrowFields("feedback")
	for _, name := range []string{"location_lat", "location_lon", "citizen_id", "citizen_phone", "rating", "due_at"} {
		if f[name] == nil {
			t.Errorf("feedback has no column %s", name)
		}
	}
	if f := v.contract.arrowFields("camera"); f["counts_car"] == nil || f["counts_car"].path[1] != "car" {
		t.Errorf("camera counts_car: %+v", f["counts_car"])
	}
}

// TestArrowMatchesPrepare: for the same event, Prepare and the Arrow path
// (flat columns and data column) give the same Record, or the same error.
func TestArrowMatchesPrepare(t *testing.T) {
	v, _ := arrowTestValidator(t)
	received := func(mod func(ev, data map[string]any)) map[string]any {
		data := map[string]any{
			"procedure_code": "1.0001", "procedure_name": "Đăng ký <khai> & sinh\u2028", "field": "Hộ tịch",
			"service_level": "full_online", "channel": "online", "unit": "P.BN",
			"due_at":          "2024-01-09T17:00:00+07:00",
			"applicant":       map[string]any{"kind": "citizen", "id": "079123456789", "name": "Trần Thị B"},
			"fee_paid_online": true,
		}
		ev := map[string]any{"specversion": "1.0", "id": "ev-1", "source": "dvc", "type": "vn.ioc.dossier.received",
			"subject": "HS-1", "time": "2024-01-02T03:04:05.25+07:00", "data": data}
		if mod != nil {
			mod(ev, data)
		}
		return ev
	}
	cases := map[string]map[string]any{
		"valid":        received(nil),
		"bad enum":     received(func(_, d map[string]any) { d["channel"] = "fax" }),
		"missing":      received(func(_, d map[string]any) { delete(d, "unit") }),
		"bad due_at":   received(func(_, d map[string]any) { d["due_at"] = "tomorrow" }),
		"long name":    received(func(_, d map[string]any) { d["procedure_name"] = strings.Repeat("x", 513) }),
		"bad kind":     received(func(_, d map[string]any) { d["applicant"].(map[string]any)["kind"] = "robot" }),
		"extra field":  received(func(_, d map[string]any) { d["officer"] = "cb-1" }),
		"no id":        received(func(e, _ map[string]any) { e["id"] = "" }),
		"cr subject":   received(func(e, _ map[string]any) { e["subject"] = "HS\r1" }),
		"long source":  received(func(e, _ map[string]any) { e["source"] = strings.Repeat("s", 257) }),
		"future":       received(func(e, _ map[string]any) { e["time"] = "2026-01-01T00:00:00Z" }),
		"old":          received(func(e, _ map[string]any) { e["time"] = "1999-12-31T23:59:59Z" }),
		"no offset":    received(func(e, _ map[string]any) { e["time"] = "2024-01-02T03:04:05" }),
		"bad type":     received(func(e, _ map[string]any) { e["type"] = "vn.ioc.dossier" }),
		"specversion":  received(func(e, _ map[string]any) { e["specversion"] = "0.3" }),
		"huge data":    received(func(_, d map[string]any) { d["procedure_code"] = strings.Repeat("y", maxDataBytes) }),
		"escaped huge": received(func(_, d map[string]any) { d["procedure_name"] = strings.Repeat("<", maxDataBytes/6+1) }),
		"escaped near": received(func(_, d map[string]any) { d["procedure_name"] = strings.Repeat("<", (maxDataBytes-400)/6) }),
		"paid": {"specversion": "1.0", "id": "p-1", "source": "dvc", "type": "vn.ioc.dossier.paid",
			"subject": "HS-1", "time": "2024-01-02T03:04:05Z", "data": map[string]any{"amount": 150000.5, "method": "vnpay"}},
		"digitized": {"specversion": "1.0", "id": "d-1", "source": "dvc", "type": "vn.ioc.dossier.digitized",
			"subject": "HS-1", "time": "2024-01-02T03:04:05Z", "data": map[string]any{"components": 3.0, "reused": 1.5}},
		"tiny amount": {"specversion": "1.0", "id": "p-2", "source": "dvc", "type": "vn.ioc.dossier.paid",
			"subject": "HS-1", "time": "2024-01-02T03:04:05Z", "data": map[string]any{"amount": 1e-7}},
		"huge amount": {"specversion": "1.0", "id": "p-3", "source": "dvc", "type": "vn.ioc.dossier.paid",
			"subject": "HS-1", "time": "2024-01-02T03:04:05Z", "data": map[string]any{"amount": 1.5e21}},
	}
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev := cases[name]
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := v.Prepare(raw, "")
		for _, flat := range []bool{true, false} {
			body := eventAsArrow(t, ev, flat)
			d, err := decode(t, v, body, "dossier", "", 0)
			if err != nil {
				t.Fatalf("%s (flat %v): %v", name, flat, err)
			}
			if wantErr != nil {
				if len(d.rejected) != 1 || d.rejected[0].Error != wantErr.Error() {
					t.Errorf("%s (flat %v): rejected %+v, Prepare: %v", name, flat, d.rejected, wantErr)
				}
				continue
			}
			if len(d.recs) != 1 {
				t.Errorf("%s (flat %v): rejected %+v, Prepare accepted", name, flat, d.rejected)
				continue
			}
			got := *d.recs[0]
			got.AcceptedAt = want.AcceptedAt
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("%s (flat %v):\n arrow   %+v %s\n Prepare %+v %s", name, flat, got, got.Data, *want, want.Data)
			}
		}
	}
}

// eventAsArrow writes one CloudEvent as a one-row stream: data as flat
// columns (numbers as float64, integral ones as int64) or as a data column.
func eventAsArrow(t *testing.T, ev map[string]any, flat bool) []byte {
	var cols []tcol
	for _, name := range []string{"specversion", "id", "source", "type", "subject", "time"} {
		cols = append(cols, tcol{name, arrow.BinaryTypes.String, []any{ev[name]}})
	}
	if !flat {
		b, _ := json.Marshal(ev["data"])
		return arrowStream(t, append(cols, tcol{"data", arrow.BinaryTypes.String, []any{string(b)}}))
	}
	var add func(prefix string, m map[string]any)
	add = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch x := m[k].(type) {
			case map[string]any:
				add(prefix+k+"_", x)
			case string:
				cols = append(cols, tcol{prefix + k, arrow.BinaryTypes.String, []any{x}})
			case bool:
				cols = append(cols, tcol{prefix + k, arrow.FixedWidthTypes.Boolean, []any{x}})
			case float64:
				if x == float64(int(x)) {
					cols = append(cols, tcol{prefix + k, arrow.PrimitiveTypes.Int64, []any{int(x)}})
				} else {
					cols = append(cols, tcol{prefix + k, arrow.PrimitiveTypes.Float64, []any{x}})
				}
			default:
				t.Fatalf("no column for %T", x)
			}
		}
	}
	add("", ev["data"].(map[string]any))
	return arrowStream(t, cols)
}

func TestArrowJSONText(t *testing.T) {
	for _, s := range []string{"ok", "a\xffb", "\xe2\x82", "x\xc3\x28y", "\uFFFD"} {
		b, _ := json.Marshal(s)
		var back string
		_ = json.Unmarshal(b, &back)
		if got := jsonText(s); got != back {
			t.Errorf("jsonText(%q) = %q, JSON round trip %q", s, got, back)
		}
	}
	for _, f := range []float32{0.1, 1.0 / 3, 16777217, 3.4e38, 1e-45} {
		b, _ := json.Marshal(f)
		var back float64
		_ = json.Unmarshal(b, &back)
		if got := float32JSON(f); got != back {
			t.Errorf("float32JSON(%v) = %v, JSON %v", f, got, back)
		}
	}
}

// TestAppendJSONMatchesMarshal: the reflection-free encoder writes what
// json.Marshal writes, for every kind of decoded JSON value.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	pieces := []string{"a", "Đ", "<", ">", "&", `"`, `\`, "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"\u2028", "\u2029", "\xff", "\xe2\x82", "\uFFFD", "😀", " ", "/"}
	str := func() string {
		var b strings.Builder
		for n := r.Intn(8); n > 0; n-- {
			b.WriteString(pieces[r.Intn(len(pieces))])
		}
		return b.String()
	}
	floats := []float64{0, -0.0, 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 1e20, 1e21, -1e21, 123456789.125, 5e-324, math.MaxFloat64, 1 << 53}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.Intn(7); {
		case k == 0 && depth < 3:
			m := map[string]any{}
			for n := r.Intn(30); n > 0; n-- {
				m[str()] = value(depth + 1)
			}
			return m
		case k == 1 && depth < 3:
			var a []any
			for n := r.Intn(4); n > 0; n-- {
				a = append(a, value(depth+1))
			}
			return a
		case k == 2:
			f := floats[r.Intn(len(floats))] * float64(r.Intn(3)-1)
			if f == 0 {
				f = 0 // appendJSON writes -0 as 0; checked below
			}
			return f
		case k == 3:
			return r.NormFloat64() * math.Pow(10, float64(r.Intn(60)-30))
		case k == 4:
			return r.Intn(2) == 0
		case k == 5:
			return nil
		}
		return str()
	}
	for i := 0; i < 3000; i++ {
		v := value(0)
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendJSON(nil, v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("appendJSON(%#v)\n got %s (%v)\nwant %s", v, got, err, want)
		}
		if m, ok := v.(map[string]any); ok && jsonSize(m) != len(want) {
			t.Fatalf("jsonSize %d, want %d", jsonSize(m), len(want))
		}
	}
	if got, err := appendJSON(nil, []any{math.Copysign(0, -1), 0.0}); string(got) != "[0,0]" || err != nil {
		t.Fatalf("appendJSON(-0, 0) = %s, %v; want [0,0]", got, err)
	}
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		_, want := json.Marshal(map[string]any{"x": f})
		if _, err := marshalData(map[string]any{"x": f}); err == nil || err.Error() != want.Error() {
			t.Errorf("marshalData(%v): %v, json.Marshal: %v", f, err, want)
		}
	}
}

// failingReader gives n bytes, then fails.
type failingReader struct {
	r   *bytes.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestDecodeArrowReaderError(t *testing.T) {
	v, _ := arrowTestValidator(t)
	body := arrowStream(t, receivedCols(10), 5, 5)
	tooBig := &http.MaxBytesError{Limit: 100}
	for _, at := range []int{0, 3, 100, len(body) - 20} {
		err := DecodeArrow(&failingReader{bytes.NewReader(body), at, tooBig}, "dossier", v, "", 0,
			func([]*Record, []int, []Rejection) error { return nil })
		var mb *http.MaxBytesError
		if !errors.As(err, &mb) || isArrowError(err) {
			t.Errorf("failing after %d bytes: %v (%T), want the reader's error", at, err, err)
		}
	}
}

// The memory a stream makes the node hold is bounded whatever its bytes
// claim: what compressed buffers decompress to (at once, not over the
// stream), the dictionaries; a cell longer than data may be is refused
// without being copied or encoded.
func TestDecodeArrowMemoryBounds(t *testing.T) {
	v, _ := arrowTestValidator(t)
	long := func(rows, size int, typ arrow.DataType) []tcol {
		cols := receivedCols(rows)
		cols[6].typ = typ // procedure_name
		for i := range cols[6].vals {
			cols[6].vals[i] = strings.Repeat(string(rune('a'+i)), size)
		}
		return cols
	}
	zstd := []ipc.Option{ipc.WithZstd()}
	lower := func(p *int64, to int64) {
		old := *p
		*p = to
		t.Cleanup(func() { *p = old })
	}
	lower(&maxDecodedBytes, 4<<20)
	lower(&maxDictionaryBytes, 1<<20)
	t.Run("a compressed batch past the bound", func(t *testing.T) {
		body := arrowStreamWith(t, zstd, long(3, 2<<20, arrow.BinaryTypes.String))
		if len(body) > 64<<10 {
			t.Fatalf("the stream takes %d bytes: not the few kilobytes meant", len(body))
		}
		_, err := decode(t, v, body, "dossier", "", 0)
		if !isArrowError(err) || !strings.Contains(err.Error(), "decoded buffers would take more than 4194304 bytes") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("compressed batches each within it", func(t *testing.T) {
		d, err := decode(t, v, arrowStreamWith(t, zstd, long(3, 2<<20, arrow.BinaryTypes.String), 1, 1, 1), "dossier", "", 0)
		if err != nil || len(d.rejected) != 3 || d.rejected[0].Field != "data" {
			t.Fatalf("%v, %+v", err, d.rejected)
		}
	})
	t.Run("dictionaries past the bound", func(t *testing.T) {
		_, err := decode(t, v, arrowStream(t, long(3, 512<<10, dictUTF8)), "dossier", "", 0)
		if !isArrowError(err) || !strings.Contains(err.Error(), "dictionaries take more than 1048576 bytes") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a long cell refused as it is", func(t *testing.T) {
		cols := receivedCols(1)
		cols[6].vals[0] = strings.Repeat("<", 8<<20) // its JSON is 6 times longer
		body := arrowStream(t, cols)
		lower(&maxDecodedBytes, 64<<20)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, err := decode(t, v, body, "dossier", "", 0)
		runtime.ReadMemStats(&after)
		if err != nil || len(d.rejected) != 1 || d.rejected[0].Error != "data: is larger than 65536 bytes" {
			t.Fatalf("%v, %+v", err, d.rejected)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
			t.Errorf("decoding a stream of %d bytes allocated %d MiB", len(body), alloc>>20)
		}
	})
}

// A timestamp column is read in its zone, as a sender of JSON in that zone
// writes the time: at the edges of the years allowed, Arrow and JSON
// accept and refuse the same events (the year was judged in UTC).
func TestArrowTimestampsInTheirZone(t *testing.T) {
	v, _ := arrowTestValidator(t)
	for _, tc := range []struct{ at, due string }{
		{"2024-01-02T03:04:05+07:00", "2000-01-01T00:30:00+07:00"}, // 1999 in UTC
		{"2024-01-02T03:04:05+07:00", "2100-01-01T05:00:00+07:00"}, // 2099 in UTC
		{"2000-01-01T05:00:00+07:00", "2024-01-09T17:00:00+07:00"}, // the event's time, 1999 in UTC
	} {
		ev := map[string]any{"specversion": "1.0", "id": "ev-0", "source": "dvc", "type": "vn.ioc.dossier.received", "subject": "HS-0", "time": tc.at,
			"data": map[string]any{"procedure_code": "1.0000", "procedure_name": "Thủ tục", "channel": "online", "unit": "P.BN",
				"due_at": tc.due, "applicant": map[string]any{"kind": "citizen", "id": "079100000000"}, "fee_paid_online": true}}
		raw, _ := json.Marshal(ev)
		want, wantErr := v.Prepare(raw, "")
		at, _ := time.Parse(time.RFC3339, tc.at)
		due, _ := time.Parse(time.RFC3339, tc.due)
		cols := receivedCols(1)
		cols[4] = tcol{"time", tsMsHCM, []any{at}}
		cols[9] = tcol{"due_at", tsMsHCM, []any{due}}
		cols[11].vals[0] = "079100000000"
		d, err := decode(t, v, arrowStream(t, cols), "dossier", "", 0)
		switch {
		case err != nil:
			t.Fatalf("%v: %v", tc, err)
		case wantErr != nil:
			if len(d.rejected) != 1 || d.rejected[0].Error != wantErr.Error() {
				t.Errorf("%v: arrow %+v, JSON %v", tc, d.rejected, wantErr)
			}
		case len(d.recs) != 1:
			t.Errorf("%v: arrow rejected %+v, JSON accepted", tc, d.rejected)
		case !bytes.Equal(d.recs[0].Data, want.Data) || !d.recs[0].Time.Equal(want.Time):
			t.Errorf("%v: arrow %s at %v, JSON %s at %v", tc, d.recs[0].Data, d.recs[0].Time, want.Data, want.Time)
		}
	}
}

// Strings that are not UTF-8 refuse their row, naming the field, as on the
// JSON intake: an id, a flat column or a field inside the data column.
func TestDecodeArrowRefusesTextNotUTF8(t *testing.T) {
	v, _ := arrowTestValidator(t)
	at := time.Date(2024, 3, 4, 8, 30, 0, 0, time.UTC)
	flat := []tcol{
		{"id", arrow.BinaryTypes.String, []any{"e1", "e2\xff", "e3"}},
		{"source", arrow.BinaryTypes.String, []any{"dvc-hcm", "dvc-hcm", "dvc-hcm"}},
		{"type", dictUTF8, []any{"assigned", "assigned", "assigned"}},
		{"subject", arrow.BinaryTypes.String, []any{"HS-1", "HS-2", "HS-3"}},
		{"time", tsSecUTC, []any{at, at, at}},
		{"unit", arrow.BinaryTypes.String, []any{"P.BN", "P.BN", "P.BN"}},
		{"officer", arrow.BinaryTypes.String, []any{"cb-1", "cb-2", "cb-\xe3"}},
	}
	d, err := decode(t, v, arrowStream(t, flat), "dossier", "dvc-hcm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 1 || len(d.rejected) != 2 || d.rejected[0].Field != "id" || d.rejected[1].Field != "data.officer" ||
		!strings.Contains(d.rejected[1].Error, "not valid UTF-8") {
		t.Fatalf("recs %d, rejected %+v", len(d.recs), d.rejected)
	}
	withData := []tcol{
		{"id", arrow.BinaryTypes.String, []any{"f1", "f2"}},
		{"source", arrow.BinaryTypes.String, []any{"1022", "1022"}},
		{"type", arrow.BinaryTypes.String, []any{"resolved", "resolved"}},
		{"subject", arrow.BinaryTypes.String, []any{"PA-1", "PA-2"}},
		{"time", arrow.BinaryTypes.String, []any{"2024-05-01T09:00:00+07:00", "2024-05-01T09:00:00+07:00"}},
		{"data", arrow.BinaryTypes.String, []any{`{"outcome":"Đã xử lý"}`, "{\"outcome\":\"\xd0\xe3 x\xf6 l\xfd\"}"}},
	}
	d, err = decode(t, v, arrowStream(t, withData), "feedback", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.recs) != 1 || len(d.rejected) != 1 || d.rejected[0].Field != "data.outcome" {
		t.Fatalf("recs %d, rejected %+v", len(d.recs), d.rejected)
	}
}

// allText: a batch's strings are valid only if each is, not merely their
// bytes together (a character split across two values).
func TestAllText(t *testing.T) {
	build := func(vals ...string) arrow.Array {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		for _, v := range vals {
			b.Append(v)
		}
		return b.NewArray()
	}
	for _, c := range []struct {
		vals []string
		json bool
		want bool
	}{
		{[]string{"Nguyễn", "Văn", ""}, false, true},
		{[]string{"a\xc3", "\xa9b"}, false, false}, // "aé b" together
		{[]string{"ok", "\xff"}, false, false},
		{[]string{`{"a":"\ud83d\ude00"}`}, true, false}, // read row by row
		{[]string{`{"a":"\ud83d\ude00"}`}, false, true},
	} {
		arr := build(c.vals...)
		if got := allText(arr, c.json); got != c.want {
			t.Errorf("allText(%q, json %v) = %v", c.vals, c.json, got)
		}
		arr.Release()
	}
}
