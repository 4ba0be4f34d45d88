package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

// ContentArrowStream is the media type of an Arrow IPC stream.
const ContentArrowStream = "application/vnd.apache.arrow.stream"

// ArrowChunkRows is the most rows DecodeArrow hands to emit at once.
const ArrowChunkRows = 10_000

// ArrowMaxMessageBytes bounds one IPC message (a record batch, a dictionary):
// DecodeArrow refuses a larger one before reading it, so memory stays
// bounded whatever the sender claims. Senders split larger tables into
// batches (pyarrow: write_table(..., max_chunksize=100_000)).
const ArrowMaxMessageBytes = 256 << 20

// ArrowMaxDecodedBytes bounds the buffers a stream's reader holds at once
// beyond the messages themselves: what compressed (zstd, LZ4) buffers
// decompress to, a record batch's and the dictionaries' together.
const ArrowMaxDecodedBytes = 512 << 20

// ArrowMaxDictionaryBytes bounds the dictionary messages of one stream, in
// all: dictionaries stay in memory for the whole stream.
const ArrowMaxDictionaryBytes = 64 << 20

// The bounds in force (tests lower them).
var (
	maxDecodedBytes    int64 = ArrowMaxDecodedBytes
	maxDictionaryBytes int64 = ArrowMaxDictionaryBytes
)

// ArrowError is an Arrow body that cannot be read, or whose columns do not
// follow the backfill contract. The HTTP handler answers 400 with it.
type ArrowError struct{ Msg string }

func (e *ArrowError) Error() string { return "arrow: " + e.Msg }

func arrowErrorf(format string, args ...any) *ArrowError {
	return &ArrowError{fmt.Sprintf(format, args...)}
}

// DecodeArrow reads an Arrow IPC stream of one family's events (the
// backfill of POST /api/v1/events/arrow?family=...), validates each row with
// exactly the rules of Validator.Prepare, and calls emit for each chunk of at
// most ArrowChunkRows rows, in order, with the accepted records, their row
// numbers and the rejected rows; it reads no further until emit returns, so
// the caller can publish a chunk and wait for JetStream first. emit owns the
// slices it receives. An error from emit stops the decoding and is returned
// as is, and so is an error of r itself (a *http.MaxBytesError, a broken
// connection). A stream that cannot be read, or whose columns break the
// contract below, yields an *ArrowError (HTTP 400); more than maxRows rows
// (maxRows > 0) a *TooManyEventsError, raised when the record batch that
// crosses the limit is read, before any of its rows is emitted (the earlier
// chunks were emitted; source+id keeps a retry idempotent). Memory is bounded
// by one record batch (≤ ArrowMaxMessageBytes), what compressed buffers
// decompress to (≤ ArrowMaxDecodedBytes at once), the stream's
// dictionaries (≤ ArrowMaxDictionaryBytes) and one chunk of records; a
// cell longer than an event's data may be is never copied.
//
// Column contract — one row per event, columns found by exact name, in any
// order:
//
//   - id, source, subject: utf8, required columns (a null or empty value
//     rejects the row: "is required").
//   - type: utf8, required column; the full type "vn.ioc.dossier.received" or
//     just the transition "received". A row of another family than the
//     family parameter is rejected, field "type".
//   - time: required column; a timestamp of any unit with a time zone (a
//     timestamp without zone is refused: wall-clock time of an unknown
//     place), or utf8 RFC 3339 with offset.
//   - specversion: optional utf8; a null means "1.0".
//   - data: utf8 JSON of the event's data, exactly as in a CloudEvent. When
//     this column exists, no other data column may.
//   - otherwise one column per data field of the family's schemas, named as
//     the JSON field; fields of nested objects are named parent_child
//     (applicant_id, location_lat, counts_car, criteria_attitude), the
//     nested objects being those of the family's compiled schemas. Any data
//     column may be written data.<name>; that prefix is required for a data
//     field named like an envelope column (indicator's "source" is
//     data.source). Value types: utf8 → string, int*/uint* → integer,
//     float* → number, bool → boolean, timestamp (with zone) → RFC 3339
//     string in the column's zone, null type → always null. Null values are omitted, and a
//     nested object all of whose fields are null is omitted. A column whose
//     type can never fit its field, or that names no field of the family, is
//     refused (ArrowError), so a typo never silently drops data.
//
// Any utf8 column may be dictionary-encoded, large_utf8 works like utf8;
// struct and list columns are not read (flatten them, or send data).
// Bytes that are not UTF-8 are read as a JSON round trip would read them:
// each becomes U+FFFD. Rows are numbered from 0 across the whole stream.
func DecodeArrow(r io.Reader, family string, v *Validator, boundSource string, maxRows int,
	emit func(recs []*Record, idx []int, rejected []Rejection) error) error {
	if !contains(Families, family) {
		return arrowErrorf("unknown family %q (one of %s)", family, strings.Join(Families, ", "))
	}
	fields := v.contract.arrowFields(family)
	msgs := &boundedMessages{r: r, refs: 1}
	rdr, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(&cappedAllocator{Allocator: memory.NewGoAllocator()}))
	if err != nil {
		if msgs.ioErr != nil {
			return msgs.ioErr
		}
		return arrowErrorf("not an Arrow IPC stream: %v", err)
	}
	defer rdr.Release()
	d, err := bindArrow(rdr.Schema(), family, fields)
	if err != nil {
		return err
	}
	d.v, d.bound = v, boundSource
	total := 0
	for rdr.Next() {
		rec := rdr.Record()
		n := int(rec.NumRows())
		if maxRows > 0 && total+n > maxRows {
			return &TooManyEventsError{maxRows}
		}
		if err := d.setBatch(rec); err != nil {
			return err
		}
		for start := 0; start < n; start += ArrowChunkRows {
			end := min(start+ArrowChunkRows, n)
			recs, idx, rejected, err := d.chunk(start, end, total)
			if err != nil {
				return err
			}
			if err := emit(recs, idx, rejected); err != nil {
				return err
			}
		}
		total += n
	}
	if err := rdr.Err(); err != nil {
		if msgs.ioErr != nil {
			return msgs.ioErr
		}
		return arrowErrorf("unreadable stream after row %d: %v", total, err)
	}
	return nil
}

// arrowField is a data field of a family as a flat column: its JSON path and
// the schema types it has across the family's event types.
type arrowField struct {
	path      []string
	types     []string
	ambiguous bool // two different fields flatten to the same column name
}

// arrowFields maps the flat column names of a family to its data fields, from
// the compiled schemas (nested objects are flattened with "_").
func (c *Contract) arrowFields(family string) map[string]*arrowField {
	out := make(map[string]*arrowField)
	prefix := typePrefix + family + "."
	for _, typ := range c.Types() {
		if strings.HasPrefix(typ, prefix) {
			addArrowFields(out, c.types[typ], nil)
		}
	}
	// A field that is a leaf in one type and the parent of another cannot be
	// given as flat columns: both would want the same JSON key.
	leaves := make(map[string]bool, len(out))
	for _, f := range out {
		leaves[strings.Join(f.path, "\x00")] = true
	}
	for _, f := range out {
		for k := 1; k < len(f.path); k++ {
			if leaves[strings.Join(f.path[:k], "\x00")] {
				f.ambiguous = true
				out[strings.Join(f.path[:k], "_")].ambiguous = true
			}
		}
	}
	return out
}

func addArrowFields(out map[string]*arrowField, n *schemaNode, path []string) {
	for _, name := range n.order {
		p := n.Properties[name]
		fp := append(append([]string(nil), path...), name)
		if p.Type == "object" {
			// Only objects with declared fields can be flattened; a
			// free-form object needs the data column.
			addArrowFields(out, p, fp)
			continue
		}
		col := strings.Join(fp, "_")
		f := out[col]
		if f == nil {
			out[col] = &arrowField{path: fp, types: []string{p.Type}}
			continue
		}
		if strings.Join(f.path, "\x00") != strings.Join(fp, "\x00") {
			f.ambiguous = true
		}
		if !contains(f.types, p.Type) {
			f.types = append(f.types, p.Type)
		}
	}
}

// colKind is how the values of a column are read.
type colKind uint8

const (
	kindNull colKind = iota
	kindString
	kindInt
	kindUint
	kindFloat
	kindBool
	kindTimestamp
)

func (k colKind) fits(schemaType string) bool {
	switch k {
	case kindNull:
		return true
	case kindString, kindTimestamp:
		return schemaType == "string" || schemaType == ""
	case kindInt, kindUint, kindFloat:
		return schemaType == "number" || schemaType == "integer" || schemaType == ""
	case kindBool:
		return schemaType == "boolean" || schemaType == ""
	}
	return false
}

// kindOf says how a column of an Arrow type is read, or why it cannot be.
func kindOf(dt arrow.DataType) (colKind, arrow.TimeUnit, error) {
	switch dt.ID() {
	case arrow.NULL:
		return kindNull, 0, nil
	case arrow.STRING, arrow.LARGE_STRING:
		return kindString, 0, nil
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		return kindInt, 0, nil
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return kindUint, 0, nil
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return kindFloat, 0, nil
	case arrow.BOOL:
		return kindBool, 0, nil
	case arrow.TIMESTAMP:
		ts := dt.(*arrow.TimestampType)
		if ts.TimeZone == "" {
			return 0, 0, errors.New("is a timestamp without time zone (wall-clock time of an unknown place); give it one, e.g. UTC or Asia/Ho_Chi_Minh")
		}
		return kindTimestamp, ts.Unit, nil
	case arrow.DICTIONARY:
		k, u, err := kindOf(dt.(*arrow.DictionaryType).ValueType)
		if err == nil && k == kindNull {
			err = errors.New("is a dictionary of nulls")
		}
		return k, u, err
	}
	return 0, 0, fmt.Errorf("has type %s, which is not one of utf8, large_utf8, int*, uint*, float*, bool, timestamp with zone, null or a dictionary of these", dt)
}

var kindNames = [...]string{"null", "utf8", "integer", "unsigned integer", "float", "bool", "timestamp"}

// arrowCol is one column of the stream: how to read it and, for a flat data
// column, where its values go.
type arrowCol struct {
	name    string
	pos     int
	kind    colKind
	unit    arrow.TimeUnit
	loc     *time.Location // a timestamp column's zone: its values are read there
	path    []string       // JSON path of a flat data column
	parents []int          // its enclosing objects, as indexes of arrowDecoder.nested
	bound   int            // JSON length bound of its keys (and of a non-string value)

	// of the current record batch
	arr     arrow.Array       // the values (a dictionary column's dictionary)
	dict    *array.Dictionary // the dictionary column, or nil
	boxed   []any             // a dictionary column's values, read once
	lastStr string            // the last string value read, and
	lastBox any               // the same boxed (repeated values are common)
	// textValid: every string of the batch's column is valid UTF-8 (and,
	// for the data column, holds no surrogate escape): no row needs a look.
	textValid bool
}

// allText reports whether every value of a string array is valid UTF-8
// (with no surrogate escape when json): the values' bytes as a whole are,
// and no value starts inside a character of the one before it.
func allText(arr arrow.Array, json bool) bool {
	var data []byte
	var starts func(i int) int
	switch a := arr.(type) {
	case *array.String:
		data, starts = a.ValueBytes(), func(i int) int { return a.ValueOffset(i) - a.ValueOffset(0) }
	case *array.LargeString:
		data, starts = a.ValueBytes(), func(i int) int { return int(a.ValueOffset(i) - a.ValueOffset(0)) }
	default:
		return false
	}
	if !utf8.Valid(data) || (json && surrogateEscape(data)) {
		return false
	}
	for i := range arr.Len() {
		if s := starts(i); s < len(data) && !utf8.RuneStart(data[s]) {
			return false
		}
	}
	return true
}

// at returns the position of row i in arr, or false when the value is null.
func (c *arrowCol) at(i int) (int, bool) {
	if c.kind == kindNull {
		return 0, false
	}
	if c.dict != nil {
		if c.dict.IsNull(i) {
			return 0, false
		}
		i = c.dict.GetValueIndex(i)
	}
	if c.arr.IsNull(i) {
		return 0, false
	}
	return i, true
}

// str is the string at position j of a utf8 column.
func (c *arrowCol) str(j int) string {
	switch a := c.arr.(type) {
	case *array.String:
		return a.Value(j)
	case *array.LargeString:
		return a.Value(j)
	}
	panic("arrow column " + c.name + " is not utf8")
}

// text is the string of row i ("" when null), as JSON would read it.
func (c *arrowCol) text(i int) string {
	if c == nil {
		return ""
	}
	j, ok := c.at(i)
	if !ok {
		return ""
	}
	return c.asJSON(c.str(j))
}

// instant is the timestamp at j in the column's zone, as a sender of JSON
// in that zone writes it: the year a range check looks at is the year
// there.
func (c *arrowCol) instant(j int) time.Time {
	v := int64(c.arr.(*array.Timestamp).Value(j))
	var t time.Time
	switch c.unit {
	case arrow.Second:
		t = time.Unix(v, 0)
	case arrow.Millisecond:
		t = time.UnixMilli(v)
	case arrow.Microsecond:
		t = time.UnixMicro(v)
	default:
		t = time.Unix(0, v)
	}
	return t.In(c.loc)
}

// cell is value(j), read once per dictionary entry, and boxed once for a
// run of equal strings.
func (c *arrowCol) cell(j int) any {
	if c.boxed == nil {
		if c.kind == kindString {
			if s := c.str(j); c.lastBox != nil && s == c.lastStr {
				return c.lastBox
			}
			c.lastBox = c.value(j)
			c.lastStr = c.str(j)
			return c.lastBox
		}
		return c.value(j)
	}
	x := c.boxed[j]
	if x == nil {
		x = c.value(j)
		c.boxed[j] = x
	}
	return x
}

// value is the JSON value at position j: what json.Unmarshal would give for
// the value a JSON encoder writes for it.
func (c *arrowCol) value(j int) any {
	switch c.kind {
	case kindString:
		return c.asJSON(c.str(j))
	case kindBool:
		return c.arr.(*array.Boolean).Value(j)
	case kindTimestamp:
		return c.instant(j).Format(time.RFC3339Nano)
	}
	switch a := c.arr.(type) {
	case *array.Int8:
		return float64(a.Value(j))
	case *array.Int16:
		return float64(a.Value(j))
	case *array.Int32:
		return float64(a.Value(j))
	case *array.Int64:
		return float64(a.Value(j))
	case *array.Uint8:
		return float64(a.Value(j))
	case *array.Uint16:
		return float64(a.Value(j))
	case *array.Uint32:
		return float64(a.Value(j))
	case *array.Uint64:
		return float64(a.Value(j))
	case *array.Float64:
		return a.Value(j)
	case *array.Float32:
		return float32JSON(a.Value(j))
	case *array.Float16:
		return float32JSON(a.Value(j).Float32())
	}
	panic("arrow column " + c.name + " has an unexpected array")
}

// float32JSON is a float32 as JSON carries it: its shortest decimal text,
// read back as a float64 (0.1, not 0.10000000149011612).
func float32JSON(f float32) float64 {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return float64(f)
	}
	var buf [32]byte
	x, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)), 64)
	if err != nil {
		return float64(f)
	}
	return x
}

// jsonText is s as a JSON round trip reads it: each byte that is not part of
// valid UTF-8 becomes U+FFFD.
// asJSON is jsonText of a string of the column, skipped when the batch's
// strings were all found valid (allText): a row with one that is not is
// refused before it is read (textOf); rejections still read its strings.
func (c *arrowCol) asJSON(s string) string {
	if c.textValid {
		return s
	}
	return jsonText(s)
}

func jsonText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Envelope columns.
const (
	envID = iota
	envSource
	envType
	envSubject
	envTime
	envSpecVersion
	envCount
)

var envNames = [envCount]string{"id", "source", "type", "subject", "time", "specversion"}

// arrowDecoder turns the rows of record batches into Records.
type arrowDecoder struct {
	v      *Validator
	family string
	bound  string

	env    [envCount]*arrowCol
	data   *arrowCol   // the data JSON column, or nil
	fields []*arrowCol // flat data columns
	cols   []*arrowCol // every column

	shape      *jsonShape        // the keys of flat-column data
	types      map[string]string // type column value → full type
	lastSource string            // the last source value seen, cloned
	row        map[string]any    // the data map, reused row after row
	nested     []map[string]any  // nested objects, reused row after row
	nestedIn   []bool            // whether nested[k] is in this row's data
	nestedIDs  map[string]int    // index in nested by JSON path
}

// bindArrow checks the schema of a stream against the column contract.
func bindArrow(s *arrow.Schema, family string, fields map[string]*arrowField) (*arrowDecoder, error) {
	if s == nil {
		return nil, arrowErrorf("stream has no schema")
	}
	d := &arrowDecoder{family: family, types: make(map[string]string),
		row: make(map[string]any), nestedIDs: make(map[string]int)}
	seen := make(map[string]bool)
	paths := make(map[string]string) // data path → column
	var unknown []string
	for pos, f := range s.Fields() {
		if seen[f.Name] {
			return nil, arrowErrorf("column %q appears twice", f.Name)
		}
		seen[f.Name] = true
		kind, unit, err := kindOf(f.Type)
		if err != nil {
			return nil, arrowErrorf("column %q %v", f.Name, err)
		}
		c := &arrowCol{name: f.Name, pos: pos, kind: kind, unit: unit}
		if kind == kindTimestamp {
			dt := f.Type
			if d, ok := dt.(*arrow.DictionaryType); ok {
				dt = d.ValueType
			}
			if c.loc, err = dt.(*arrow.TimestampType).GetZone(); err != nil || c.loc == nil {
				return nil, arrowErrorf("column %q has time zone %q, which is not a zone name nor an offset such as +07:00", f.Name, dt.(*arrow.TimestampType).TimeZone)
			}
		}
		d.cols = append(d.cols, c)
		if e := indexOf(envNames[:], f.Name); e >= 0 {
			if kind != kindString && kind != kindNull && !(e == envTime && kind == kindTimestamp) {
				want := "utf8"
				if e == envTime {
					want = "a timestamp with time zone or utf8 RFC 3339"
				}
				return nil, arrowErrorf("column %q is %s, must be %s", f.Name, kindNames[kind], want)
			}
			// A column of the null type holds no bytes, yet as many rows
			// as it claims: a required one would make every row a
			// rejection, millions of them from a few hundred bytes.
			if kind == kindNull && e != envSpecVersion {
				return nil, arrowErrorf("column %q is of the null type: every row needs its %s", f.Name, f.Name)
			}
			d.env[e] = c
			continue
		}
		if f.Name == "data" {
			if kind != kindString {
				return nil, arrowErrorf("column \"data\" is %s, must be utf8 JSON", kindNames[kind])
			}
			d.data = c
			continue
		}
		af := fields[strings.TrimPrefix(f.Name, "data.")]
		if af == nil {
			unknown = append(unknown, f.Name)
			continue
		}
		if af.ambiguous {
			return nil, arrowErrorf("column %q names two different fields of %s events; send a data column instead", f.Name, family)
		}
		key := strings.Join(af.path, "\x00")
		if other, dup := paths[key]; dup {
			return nil, arrowErrorf("columns %q and %q both give data.%s", other, f.Name, strings.Join(af.path, "."))
		}
		paths[key] = f.Name
		if !fitsAny(kind, af.types) {
			return nil, arrowErrorf("column %q is %s, but data.%s is a %s", f.Name, kindNames[kind], strings.Join(af.path, "."), strings.Join(af.types, " or "))
		}
		c.path = af.path
		for k, name := range af.path {
			c.bound += 6*len(name) + 4
			if k > 0 {
				key := strings.Join(af.path[:k], "\x00")
				id, ok := d.nestedIDs[key]
				if !ok {
					id = len(d.nested)
					d.nestedIDs[key] = id
					d.nested = append(d.nested, make(map[string]any))
					d.nestedIn = append(d.nestedIn, false)
				}
				c.parents = append(c.parents, id)
				c.bound += 2
			}
		}
		if kind != kindString {
			c.bound += 32 // a float64, true, false, or a timestamp's text
		}
		if d.shape == nil {
			d.shape = &jsonShape{}
		}
		d.shape.add(af.path)
		d.fields = append(d.fields, c)
	}
	for e := envID; e <= envTime; e++ {
		if d.env[e] == nil {
			return nil, arrowErrorf("column %q is missing (required: id, source, type, subject, time)", envNames[e])
		}
	}
	if len(unknown) > 0 {
		return nil, arrowErrorf("column %q is not a field of %s events (columns: %s)", unknown[0], family, strings.Join(columnNames(fields), ", "))
	}
	if d.data != nil && len(d.fields) > 0 {
		return nil, arrowErrorf("column %q beside a data column: send the data either as JSON in data or as flat columns", d.fields[0].name)
	}
	return d, nil
}

func fitsAny(k colKind, types []string) bool {
	for _, t := range types {
		if k.fits(t) {
			return true
		}
	}
	return false
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func columnNames(fields map[string]*arrowField) []string {
	names := append([]string(nil), envNames[:]...)
	names = append(names, "data")
	var data []string
	for name := range fields {
		if indexOf(envNames[:], name) >= 0 || name == "data" {
			name = "data." + name
		}
		data = append(data, name)
	}
	sort.Strings(data)
	return append(names, data...)
}

// setBatch points the columns at a record batch.
func (d *arrowDecoder) setBatch(rec arrow.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = arrowErrorf("malformed record batch: %v", p)
		}
	}()
	if int(rec.NumCols()) != len(d.cols) {
		return arrowErrorf("record batch has %d columns, the schema %d", rec.NumCols(), len(d.cols))
	}
	for _, c := range d.cols {
		c.arr, c.dict, c.boxed, c.lastStr, c.lastBox = rec.Column(c.pos), nil, nil, "", nil
		if dict, ok := c.arr.(*array.Dictionary); ok {
			c.dict, c.arr = dict, dict.Dictionary()
			// Entries boxed once each — unless the dictionary is much
			// larger than the batch, whose rows then box what they use.
			if c.path != nil && c.arr.Len() <= 4*int(rec.NumRows())+1024 {
				c.boxed = make([]any, c.arr.Len())
			}
		}
		// Strings checked once a batch (a dictionary's once an entry).
		c.textValid = c.kind == kindString && allText(c.arr, c == d.data)
	}
	return nil
}

// chunk validates rows [start, end) of the current batch; base is the
// stream row number of the batch's first row. A panic of the Arrow library
// on inconsistent buffers becomes an ArrowError.
func (d *arrowDecoder) chunk(start, end, base int) (recs []*Record, idx []int, rejected []Rejection, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = arrowErrorf("malformed record batch near row %d: %v", base+start, p)
		}
	}()
	recs = make([]*Record, 0, end-start)
	idx = make([]int, 0, end-start)
	now := d.v.now()
	var p eventParts
	for i := start; i < end; i++ {
		d.parts(i, &p)
		if err := d.textOf(i); err != nil {
			rejected = append(rejected, d.rejection(base+i, &p, err))
			continue
		}
		rec, err := d.v.prepareParts(&p, d.bound, d.family, now)
		if err != nil {
			rejected = append(rejected, d.rejection(base+i, &p, err))
			continue
		}
		recs = append(recs, rec)
		idx = append(idx, base+i)
	}
	return recs, idx, rejected, nil
}

// parts reads row i into p.
func (d *arrowDecoder) parts(i int, p *eventParts) {
	*p = eventParts{SpecVersion: "1.0"}
	if c := d.env[envSpecVersion]; c != nil {
		if j, ok := c.at(i); ok {
			p.SpecVersion = c.asJSON(c.str(j))
		}
	}
	// The record keeps id and subject: copy them out of the Arrow buffers,
	// in one allocation.
	id, subject := d.env[envID].text(i), d.env[envSubject].text(i)
	both := id + subject
	p.ID, p.Subject = both[:len(id)], both[len(id):]
	if s := d.env[envSource].text(i); s == d.lastSource {
		p.Source = d.lastSource
	} else {
		p.Source = strings.Clone(s)
		d.lastSource = p.Source
	}
	p.Type = d.fullType(d.env[envType].text(i))
	if c := d.env[envTime]; c.kind == kindTimestamp {
		if j, ok := c.at(i); ok {
			p.At, p.HasAt = c.instant(j), true
		}
	} else {
		p.Time = c.text(i)
	}
	if d.data != nil {
		if j, ok := d.data.at(i); ok {
			// Longer than data may be once trimmed: refused without a copy
			// (what is not UTF-8 only grows as JSON reads it).
			if raw := strings.TrimSpace(d.data.str(j)); len(raw) > maxDataBytes {
				p.dataTooLarge = true
			} else {
				p.RawData = []byte(d.data.asJSON(raw))
			}
		}
		return
	}
	p.Data, p.DataBound = d.flatData(i)
	p.dataTooLarge = p.DataBound < 0
	p.shape = d.shape
}

// fullType expands a transition to the full type of the family; results are
// remembered (the values are few), their strings owned by the decoder.
func (d *arrowDecoder) fullType(s string) string {
	if s == "" {
		return ""
	}
	if t, ok := d.types[s]; ok {
		return t
	}
	t := s
	if !strings.HasPrefix(s, typePrefix) {
		t = typePrefix + d.family + "." + s
	} else {
		t = strings.Clone(s)
	}
	if len(d.types) < 256 {
		d.types[strings.Clone(s)] = t
	}
	return t
}

// flatData builds the data object of row i from the flat columns, in maps
// reused from row to row (prepareParts keeps none of them), and an upper
// bound of its JSON length; -1 when one string alone is longer than data
// may be (its JSON is not shorter): nothing is built then.
func (d *arrowDecoder) flatData(i int) (map[string]any, int) {
	clear(d.row)
	clear(d.nestedIn)
	bound := 2
	for _, c := range d.fields {
		j, ok := c.at(i)
		if !ok {
			continue
		}
		if c.kind == kindString && len(c.str(j)) > maxDataBytes {
			return nil, -1
		}
		m := d.row
		for k, id := range c.parents {
			child := d.nested[id]
			if !d.nestedIn[id] {
				clear(child)
				m[c.path[k]] = child
				d.nestedIn[id] = true
			}
			m = child
		}
		x := c.cell(j)
		bound += c.bound
		if s, isString := x.(string); isString {
			bound += 6*len(s) + 2
		}
		m[c.path[len(c.path)-1]] = x
	}
	return d.row, bound
}

func (d *arrowDecoder) rejection(row int, p *eventParts, err error) Rejection {
	r := Rejection{Index: row, Error: err.Error()}
	var fe *fieldError
	if errors.As(err, &fe) {
		r.Field = fe.Field
	}
	if len(p.ID) <= maxIDLen {
		r.ID = p.ID
	}
	if len(p.Type) <= 128 {
		r.Type = p.Type
	}
	return r
}

// jsonSize is the length of the compact JSON encoding of data, 0 when it
// cannot be encoded (marshalData then reports why).
func jsonSize(data map[string]any) int {
	var buf [1024]byte
	b, err := appendJSON(buf[:0], data)
	if err != nil {
		return 0
	}
	return len(b)
}

// jsonShape is the set of keys a flat-column data object can hold, each
// level sorted as encoding/json sorts them, with their encoded names.
type jsonShape struct {
	members []shapeMember
}

type shapeMember struct {
	name   string
	quoted []byte // "name":
	child  *jsonShape
}

func (s *jsonShape) add(path []string) {
	i := slices.IndexFunc(s.members, func(m shapeMember) bool { return m.name == path[0] })
	if i < 0 {
		s.members = append(s.members, shapeMember{name: path[0], quoted: append(jsonx.AppendString(nil, path[0]), ':')})
		slices.SortFunc(s.members, func(a, b shapeMember) int { return strings.Compare(a.name, b.name) })
		i = slices.IndexFunc(s.members, func(m shapeMember) bool { return m.name == path[0] })
	}
	if len(path) > 1 {
		if s.members[i].child == nil {
			s.members[i].child = &jsonShape{}
		}
		s.members[i].child.add(path[1:])
	}
}

// appendShaped encodes m as appendJSON does, visiting the shape's keys in
// order instead of sorting the map's; ok is false when m holds a key the
// shape does not know.
func (s *jsonShape) appendShaped(dst []byte, m map[string]any) (out []byte, ok bool, err error) {
	dst = append(dst, '{')
	n := 0
	for i := range s.members {
		mb := &s.members[i]
		x, found := m[mb.name]
		if !found {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, mb.quoted...)
		if sub, isMap := x.(map[string]any); isMap && mb.child != nil {
			if dst, ok, err = mb.child.appendShaped(dst, sub); !ok || err != nil {
				return dst, ok, err
			}
			continue
		}
		if dst, err = appendJSON(dst, x); err != nil {
			return dst, true, err
		}
	}
	if n != len(m) {
		return dst, false, nil
	}
	return append(dst, '}'), true, nil
}

// marshal encodes validated data as marshalData does, through the shape
// when there is one.
func (p *eventParts) marshal(data any) ([]byte, error) {
	if m, isMap := data.(map[string]any); isMap && p.shape != nil {
		var buf [1024]byte
		b, ok, err := p.shape.appendShaped(buf[:0], m)
		if err != nil {
			return nil, err
		}
		if ok {
			return append([]byte(nil), b...), nil
		}
	}
	return marshalData(data)
}

// boundedMessages reads IPC messages like the Arrow library's reader, but
// refuses a message larger than ArrowMaxMessageBytes before allocating it.
type boundedMessages struct {
	r     io.Reader
	msg   *ipc.Message
	refs  int
	head  [4]byte
	ioErr error // the first error of r other than an end of input
	// dictBytes counts the bodies of the dictionary messages read.
	dictBytes int64
}

func (m *boundedMessages) Retain() { m.refs++ }

func (m *boundedMessages) Release() {
	if m.refs--; m.refs == 0 && m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

const ipcContinuation = 0xFFFFFFFF

// readError is an error of the reader under the stream (a body over its
// size limit, a broken connection): DecodeArrow returns it as is, not as an
// ArrowError, for the caller to tell it from a malformed stream.
func (m *boundedMessages) readError(err error) error {
	if err != io.EOF && err != io.ErrUnexpectedEOF && m.ioErr == nil {
		m.ioErr = err
	}
	return err
}

func (m *boundedMessages) Message() (*ipc.Message, error) {
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
	if _, err := io.ReadFull(m.r, m.head[:]); err != nil {
		return nil, fmt.Errorf("could not read continuation indicator: %w", m.readError(err))
	}
	n := binary.LittleEndian.Uint32(m.head[:])
	if n == ipcContinuation {
		if _, err := io.ReadFull(m.r, m.head[:]); err != nil {
			return nil, fmt.Errorf("could not read message length: %w", noEOF(m.readError(err)))
		}
		n = binary.LittleEndian.Uint32(m.head[:])
	}
	if n == 0 {
		return nil, io.EOF // end-of-stream marker
	}
	if n > 16<<20 {
		return nil, fmt.Errorf("message metadata of %d bytes is too large", n)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(m.r, meta); err != nil {
		return nil, fmt.Errorf("could not read message metadata: %w", noEOF(m.readError(err)))
	}
	size, kind, err := bodyLength(meta)
	if err != nil {
		return nil, err
	}
	if size < 0 || size > ArrowMaxMessageBytes {
		return nil, fmt.Errorf("message body of %d bytes is larger than %d", size, ArrowMaxMessageBytes)
	}
	if kind == ipc.MessageDictionaryBatch {
		if m.dictBytes += size; m.dictBytes > maxDictionaryBytes {
			return nil, fmt.Errorf("the stream's dictionaries take more than %d bytes", maxDictionaryBytes)
		}
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(m.r, body); err != nil {
		return nil, fmt.Errorf("could not read message body: %w", noEOF(m.readError(err)))
	}
	m.msg = ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(body))
	return m.msg, nil
}

// noEOF turns an end of input inside a message into ErrUnexpectedEOF: only
// an end between messages ends the stream.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bodyLength reads the body length and the type of a message from its
// metadata.
func bodyLength(meta []byte) (n int64, kind ipc.MessageType, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("message metadata is not a valid flatbuffer: %v", p)
		}
	}()
	probe := ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(nil))
	return probe.BodyLen(), probe.Type(), nil
}

// cappedAllocator refuses (panics, which the IPC reader turns into an error)
// any single allocation beyond ArrowMaxMessageBytes, e.g. a claimed
// decompressed size, and any that would take the buffers it handed out and
// that are not freed yet beyond ArrowMaxDecodedBytes: a few kilobytes of
// zstd can claim gigabytes, in many buffers of a legal size each.
type cappedAllocator struct {
	memory.Allocator
	live atomic.Int64
}

func (a *cappedAllocator) take(size int) {
	if size < 0 || size > ArrowMaxMessageBytes {
		panic(fmt.Sprintf("buffer of %d bytes is larger than %d", size, ArrowMaxMessageBytes))
	}
	if n := a.live.Add(int64(size)); n > maxDecodedBytes {
		a.live.Add(-int64(size))
		panic(fmt.Sprintf("the decoded buffers would take more than %d bytes at once", maxDecodedBytes))
	}
}

func (a *cappedAllocator) Allocate(size int) []byte {
	a.take(size)
	return a.Allocator.Allocate(size)
}

func (a *cappedAllocator) Reallocate(size int, b []byte) []byte {
	a.take(size)
	a.live.Add(-int64(len(b)))
	return a.Allocator.Reallocate(size, b)
}

func (a *cappedAllocator) Free(b []byte) {
	a.live.Add(-int64(len(b)))
	a.Allocator.Free(b)
}

// textOf refuses row i when one of its strings is not valid UTF-8, as the
// JSON intake does (textProblem): read as JSON reads it, it would become
// U+FFFD, and two ids or names differing only there would become one.
func (d *arrowDecoder) textOf(i int) error {
	for _, c := range d.cols {
		if c.kind != kindString || c.textValid {
			continue
		}
		j, ok := c.at(i)
		if !ok {
			continue
		}
		s := c.str(j)
		if c == d.data {
			if path, at, bad := textProblem([]byte(s)); bad {
				if path == "" {
					path = "data"
				} else {
					path = "data." + path
				}
				return &fieldError{path, fmt.Sprintf("is not valid UTF-8 (byte %d of column %q): send text as UTF-8", at, c.name)}
			}
			continue
		}
		if !utf8.ValidString(s) {
			field := c.name
			if c.path != nil {
				field = "data." + strings.Join(c.path, ".")
			}
			return &fieldError{field, fmt.Sprintf("is not valid UTF-8 (column %q): send text as UTF-8", c.name)}
		}
	}
	return nil
}
