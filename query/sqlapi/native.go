package sqlapi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// The Arrow export reads ClickHouse's Native format (its own columnar
// layout, as sent over HTTP) and turns each block into an Arrow record
// batch column by column, with no per-row work for fixed-width columns and
// one copy for strings. Types outside nativeType's list (LowCardinality,
// Tuple, Map, Nothing …) keep the driver's row-by-row path.

// nkind is how a column is laid out in a Native block.
type nkind uint8

const (
	nFixed    nkind = iota // little-endian numbers of width bytes, as Arrow lays them out
	nDate                  // UInt16 days → date32
	nDateTime              // UInt32 seconds → timestamp[s]
	nString                // varint length + bytes
	nFixedStr              // width bytes each → utf8
	nEnum                  // Int8/Int16 codes → utf8 names
	nDecimal               // Int32/Int64/Int128 → decimal128
	nUUID                  // two little-endian UInt64 (high half first) → utf8 text
	nNullable              // UInt8 null map, then the nested column
	nArray                 // UInt64 end offsets, then the nested column
)

// ntype is a parsed ClickHouse type the Native decoder handles.
type ntype struct {
	kind  nkind
	width int // bytes per value (nFixed, nFixedStr, nEnum, nDecimal)
	elem  *ntype
	enum  map[int16]string
	hint  int            // bytes of the last block's strings, to size the next
	arrow arrow.DataType // of the non-null values
}

// nativeType parses a ClickHouse type; ok is false for types left to the
// driver's path.
func nativeType(t string, tz *time.Location) (nt *ntype, ok bool) {
	t = strings.TrimSpace(t)
	fixed := map[string]int{"Int8": 1, "UInt8": 1, "Int16": 2, "UInt16": 2, "Int32": 4, "UInt32": 4,
		"Int64": 8, "UInt64": 8, "Float32": 4, "Float64": 8}
	if w, ok := fixed[t]; ok {
		return &ntype{kind: nFixed, width: w, arrow: arrowType(t, tz)}, true
	}
	inner := func(prefix string) (string, bool) {
		if strings.HasPrefix(t, prefix+"(") && strings.HasSuffix(t, ")") {
			return t[len(prefix)+1 : len(t)-1], true
		}
		return "", false
	}
	switch {
	case t == "String":
		return &ntype{kind: nString, arrow: arrow.BinaryTypes.String}, true
	case t == "Date":
		return &ntype{kind: nDate, arrow: arrow.FixedWidthTypes.Date32}, true
	case t == "DateTime" || strings.HasPrefix(t, "DateTime("):
		return &ntype{kind: nDateTime, arrow: arrowType(t, tz)}, true
	case t == "UUID":
		return &ntype{kind: nUUID, arrow: arrow.BinaryTypes.String}, true
	case strings.HasPrefix(t, "FixedString("):
		n, err := strconv.Atoi(t[len("FixedString(") : len(t)-1])
		if err != nil || n <= 0 {
			return nil, false
		}
		return &ntype{kind: nFixedStr, width: n, arrow: arrow.BinaryTypes.String}, true
	case strings.HasPrefix(t, "Enum8(") || strings.HasPrefix(t, "Enum16("):
		names, ok := enumNames(t)
		if !ok {
			return nil, false
		}
		w := 1
		if strings.HasPrefix(t, "Enum16(") {
			w = 2
		}
		return &ntype{kind: nEnum, width: w, enum: names, arrow: arrow.BinaryTypes.String}, true
	case strings.HasPrefix(t, "Decimal"):
		p := decimalPrecision(t)
		w := 16
		switch {
		case p <= 9:
			w = 4
		case p <= 18:
			w = 8
		}
		return &ntype{kind: nDecimal, width: w, arrow: arrowType(t, tz)}, true
	}
	if s, ok := inner("Nullable"); ok {
		e, ok := nativeType(s, tz)
		if !ok || e.kind == nNullable || e.kind == nArray {
			return nil, false
		}
		return &ntype{kind: nNullable, elem: e, arrow: e.arrow}, true
	}
	if s, ok := inner("Array"); ok {
		e, ok := nativeType(s, tz)
		if !ok {
			return nil, false
		}
		return &ntype{kind: nArray, elem: e, arrow: arrow.ListOf(e.arrow)}, true
	}
	return nil, false
}

// enumNames parses Enum8('a' = 1, 'b\'c' = -2).
func enumNames(t string) (map[int16]string, bool) {
	s := t[strings.IndexByte(t, '(')+1 : len(t)-1]
	names := map[int16]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			return names, len(names) > 0
		}
		if s[0] != '\'' {
			return nil, false
		}
		var name strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '\''; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			name.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, false
		}
		s = strings.TrimLeft(s[i+1:], " ")
		if !strings.HasPrefix(s, "=") {
			return nil, false
		}
		s = strings.TrimLeft(s[1:], " ")
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(s[:end]), 10, 16)
		if err != nil {
			return nil, false
		}
		names[int16(v)] = name.String()
		s = s[end:]
	}
}

// nativeReader reads Native blocks from a stream.
type nativeReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	err      error    // sticky read error
	free     [][]byte // arena: buffers to reuse
	used     [][]byte // arena: buffers of the current block
	// maxBlock bounds the bytes one decoded block takes (0: no bound);
	// blockBytes counts those of the block being read. A block is decoded
	// whole before it is written out, so this bounds a statement's memory
	// in the node, whatever the rows hold.
	maxBlock, blockBytes int
}

func newNativeReader(r io.Reader) *nativeReader {
	return &nativeReader{r: r, buf: make([]byte, 1<<20)}
}

// BlockTooLargeError: a block of the result would take more memory in the
// node than allowed.
type BlockTooLargeError struct{ Rows, Limit int }

func (e *BlockTooLargeError) Error() string {
	return fmt.Sprintf("a block of the result (%d rows) takes more than %d MiB in the node: select fewer or shorter columns, or aggregate in the statement", e.Rows, e.Limit>>20)
}

// charge counts n bytes more for the block of rows being read, before
// they are allocated.
func (r *nativeReader) charge(n, rows int) error {
	r.blockBytes += n
	if r.maxBlock > 0 && r.blockBytes > r.maxBlock {
		return &BlockTooLargeError{Rows: rows, Limit: r.maxBlock}
	}
	return nil
}

// rowBytes is what one value of a column of kind takes once decoded, its
// wire bytes included; strings' contents and arrays' elements are
// charged as they are read.
func rowBytes(nt *ntype) int {
	switch nt.kind {
	case nFixed:
		return nt.width
	case nDate:
		return 2 + 4
	case nDateTime:
		return 4 + 8
	case nString:
		return 4
	case nFixedStr:
		return nt.width + 4
	case nEnum:
		return nt.width + 4 + 8
	case nDecimal:
		return nt.width + 16
	case nUUID:
		return 16 + 36 + 4
	case nNullable:
		return 2 // the null map and the validity bits
	case nArray:
		return 8 + 4
	}
	return 0
}

// The buffers of a block's arrays come from the reader's arena and go back
// to it once the block is written (release): a stream of blocks of the
// same shape allocates nothing after its first block. Arena memory is not
// zeroed: decoders write every byte they hand out.

// alloc returns n bytes from the arena: the smallest free buffer that
// holds them, so that blocks of the same shape find the same buffers.
func (r *nativeReader) alloc(n int) []byte {
	best := -1
	for i, b := range r.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(r.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := r.free[best][:n]
		last := len(r.free) - 1
		r.free[best] = r.free[last]
		r.free[last] = nil
		r.free = r.free[:last]
		r.used = append(r.used, b)
		return b
	}
	b := make([]byte, n, n+n/8)
	r.used = append(r.used, b)
	return b
}

func (r *nativeReader) int32s(n int) []int32 { return arrow.Int32Traits.CastFromBytes(r.alloc(4 * n)) }
func (r *nativeReader) int64s(n int) []int64 { return arrow.Int64Traits.CastFromBytes(r.alloc(8 * n)) }

// take reads the next n bytes into a buffer of the arena.
func (r *nativeReader) take(n int) ([]byte, error) {
	b := r.alloc(n)
	return b, r.read(b)
}

// keep hands b to the arena if it grew out of the arena's buffer from.
func (r *nativeReader) keep(b, from []byte) {
	if cap(b) != cap(from) || (cap(b) > 0 && &b[:cap(b)][0] != &from[:cap(from)][0]) {
		r.used = append(r.used, b)
	}
}

// release returns the buffers of the last block to the arena: its arrays
// must not be used any more. Buffers that block did not need are dropped,
// so the arena holds one block's worth.
func (r *nativeReader) release() {
	clear(r.free)
	r.free, r.used = r.used, r.free[:0]
}

// fill makes n bytes available at pos (n ≤ len(buf) grows the buffer).
func (r *nativeReader) fill(n int) error {
	if r.end-r.pos >= n {
		return nil
	}
	if n > len(r.buf) {
		nb := make([]byte, max(n, 2*len(r.buf)))
		r.end = copy(nb, r.buf[r.pos:r.end])
		r.buf, r.pos = nb, 0
	} else if r.pos+n > len(r.buf) {
		r.end = copy(r.buf, r.buf[r.pos:r.end])
		r.pos = 0
	}
	for r.end-r.pos < n {
		if r.err != nil {
			return r.err
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.err = err
		}
	}
	return nil
}

// read copies len(dst) bytes out, reading large remainders straight into dst.
func (r *nativeReader) read(dst []byte) error {
	n := copy(dst, r.buf[r.pos:r.end])
	r.pos += n
	if n == len(dst) {
		return nil
	}
	if r.err != nil {
		return r.err
	}
	_, err := io.ReadFull(r.r, dst[n:])
	if err != nil {
		r.err = err
	}
	return err
}

func (r *nativeReader) uvarint() (uint64, error) {
	if r.end-r.pos < binary.MaxVarintLen64 {
		if err := r.fill(binary.MaxVarintLen64); err != nil && r.pos == r.end {
			return 0, err
		}
	}
	v, n := binary.Uvarint(r.buf[r.pos:r.end])
	if n <= 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, errors.New("bad varint")
	}
	r.pos += n
	return v, nil
}

func (r *nativeReader) str() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > 1<<20 {
		return "", fmt.Errorf("name of %d bytes", n)
	}
	if err := r.fill(int(n)); err != nil {
		return "", err
	}
	s := string(r.buf[r.pos : r.pos+int(n)])
	r.pos += int(n)
	return s, nil
}

// exception reads the rest of a response ClickHouse ended with an error
// message instead of a block; nil if the next bytes are not one.
func (r *nativeReader) exception() error {
	_ = r.fill(len("Code: "))
	if !bytes.HasPrefix(r.buf[r.pos:r.end], []byte("Code: ")) {
		return nil
	}
	msg := r.buf[r.pos:r.end]
	if rest, err := io.ReadAll(io.LimitReader(r.r, 64<<10)); err == nil {
		msg = append(msg, rest...)
	}
	return parseHTTPException(msg)
}

// errBlockShape: a block's columns are not those expected.
var errBlockShape = errors.New("the result's columns are not the statement's")

// block reads the next block into arrays of the given types; n = 0 and
// io.EOF at the end of the stream.
func (r *nativeReader) block(names []string, types []string, nts []*ntype) (n int, cols []arrow.ArrayData, err error) {
	if err := r.fill(1); err != nil && r.pos == r.end {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, err
	}
	if err := r.exception(); err != nil {
		return 0, nil, err
	}
	nc, err := r.uvarint()
	if err != nil {
		return 0, nil, err
	}
	rows, err := r.uvarint()
	if err != nil {
		return 0, nil, err
	}
	if int(nc) != len(nts) || rows > math.MaxInt32 {
		return 0, nil, fmt.Errorf("%w: block of %d columns and %d rows, want %d columns", errBlockShape, nc, rows, len(nts))
	}
	n = int(rows)
	r.blockBytes = 0
	cols = make([]arrow.ArrayData, len(nts))
	for i, nt := range nts {
		name, err := r.str()
		if err != nil {
			return 0, nil, err
		}
		typ, err := r.str()
		if err != nil {
			return 0, nil, err
		}
		if name != names[i] || !sameType(typ, types[i]) {
			return 0, nil, fmt.Errorf("%w: column %d is %s %s, want %s %s", errBlockShape, i, name, typ, names[i], types[i])
		}
		if cols[i], err = r.column(nt, n); err != nil {
			return 0, nil, fmt.Errorf("column %s: %w", name, err)
		}
	}
	return n, cols, nil
}

// sameType compares a column's type in a Native block with the type the
// native protocol reported: over HTTP, ClickHouse 18.16 leaves out the
// time zone of DateTime('tz').
func sameType(block, want string) bool {
	return block == want || dateTimeTZ.ReplaceAllString(block, "DateTime") == dateTimeTZ.ReplaceAllString(want, "DateTime")
}

var dateTimeTZ = regexp.MustCompile(`DateTime\('[^']*'\)`)

// column decodes n values of type nt.
func (r *nativeReader) column(nt *ntype, n int) (arrow.ArrayData, error) {
	if err := r.charge(n*rowBytes(nt), n); err != nil {
		return nil, err
	}
	switch nt.kind {
	case nFixed:
		vals, err := r.take(n * nt.width)
		if err != nil {
			return nil, err
		}
		return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(vals)}, nil, 0, 0), nil
	case nDate:
		raw, err := r.take(2 * n)
		if err != nil {
			return nil, err
		}
		vals := r.int32s(n)
		for i := range vals {
			vals[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(vals))}, nil, 0, 0), nil
	case nDateTime:
		raw, err := r.take(4 * n)
		if err != nil {
			return nil, err
		}
		vals := r.int64s(n)
		for i := range vals {
			vals[i] = int64(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, 0, 0), nil
	case nString:
		return r.strings(nt, n)
	case nFixedStr:
		data, err := r.take(n * nt.width)
		if err != nil {
			return nil, err
		}
		offs := r.int32s(n + 1)
		for i := range offs {
			offs[i] = int32(i * nt.width)
		}
		return stringData(offs, data), nil
	case nEnum:
		raw, err := r.take(n * nt.width)
		if err != nil {
			return nil, err
		}
		offs := r.int32s(n + 1)
		offs[0] = 0
		from := r.alloc(8 * n)
		data := from[:0]
		for i := 0; i < n; i++ {
			code := int16(int8(raw[i]))
			if nt.width == 2 {
				code = int16(binary.LittleEndian.Uint16(raw[2*i:]))
			}
			name, ok := nt.enum[code]
			if !ok {
				return nil, fmt.Errorf("enum value %d has no name", code)
			}
			data = append(data, name...)
			offs[i+1] = int32(len(data))
		}
		r.keep(data, from)
		return stringData(offs, data), nil
	case nDecimal:
		raw, err := r.take(n * nt.width)
		if err != nil {
			return nil, err
		}
		if nt.width == 16 {
			return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(raw)}, nil, 0, 0), nil
		}
		vals := r.alloc(16 * n)
		for i := 0; i < n; i++ {
			var v int64
			if nt.width == 4 {
				v = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			} else {
				v = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			binary.LittleEndian.PutUint64(vals[16*i:], uint64(v))
			binary.LittleEndian.PutUint64(vals[16*i+8:], uint64(v>>63)) // sign extension
		}
		return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(vals)}, nil, 0, 0), nil
	case nUUID:
		raw, err := r.take(16 * n)
		if err != nil {
			return nil, err
		}
		data := r.alloc(36 * n)
		offs := r.int32s(n + 1)
		offs[0] = 0
		var be [16]byte
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint64(be[:8], binary.LittleEndian.Uint64(raw[16*i:]))
			binary.BigEndian.PutUint64(be[8:], binary.LittleEndian.Uint64(raw[16*i+8:]))
			d := data[36*i : 36*i+36]
			hex.Encode(d[0:8], be[0:4])
			d[8] = '-'
			hex.Encode(d[9:13], be[4:6])
			d[13] = '-'
			hex.Encode(d[14:18], be[6:8])
			d[18] = '-'
			hex.Encode(d[19:23], be[8:10])
			d[23] = '-'
			hex.Encode(d[24:36], be[10:16])
			offs[i+1] = int32(36 * (i + 1))
		}
		return stringData(offs, data), nil
	case nNullable:
		nulls, err := r.take(n)
		if err != nil {
			return nil, err
		}
		inner, err := r.column(nt.elem, n)
		if err != nil {
			return nil, err
		}
		valid := r.alloc((n + 7) / 8)
		clear(valid)
		nullCount := 0
		for i, b := range nulls {
			if b == 0 {
				valid[i>>3] |= 1 << (i & 7)
			} else {
				nullCount++
			}
		}
		bufs := append([]*memory.Buffer(nil), inner.Buffers()...)
		bufs[0] = memory.NewBufferBytes(valid)
		return array.NewData(inner.DataType(), n, bufs, inner.Children(), nullCount, 0), nil
	case nArray:
		raw, err := r.take(8 * n)
		if err != nil {
			return nil, err
		}
		offs := r.int32s(n + 1)
		offs[0] = 0
		for i := 0; i < n; i++ {
			end := binary.LittleEndian.Uint64(raw[8*i:])
			if end > math.MaxInt32 || int32(end) < offs[i] {
				return nil, fmt.Errorf("array offset %d out of range", end)
			}
			offs[i+1] = int32(end)
		}
		child, err := r.column(nt.elem, int(offs[n]))
		if err != nil {
			return nil, err
		}
		return array.NewData(nt.arrow, n, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))}, []arrow.ArrayData{child}, 0, 0), nil
	}
	return nil, fmt.Errorf("no decoder for kind %d", nt.kind)
}

// strings decodes n length-prefixed strings into one Arrow utf8 array.
func (r *nativeReader) strings(nt *ntype, n int) (arrow.ArrayData, error) {
	offs := r.int32s(n + 1)
	offs[0] = 0
	from := r.alloc(max(nt.hint, n))
	data := from[:0]
	for i := 0; i < n; i++ {
		var l uint64
		// Fast path: a one-byte length with the value in the buffer.
		if r.pos < r.end && r.buf[r.pos] < 0x80 {
			l = uint64(r.buf[r.pos])
			r.pos++
		} else {
			var err error
			if l, err = r.uvarint(); err != nil {
				return nil, err
			}
		}
		if uint64(len(data))+l > math.MaxInt32 {
			return nil, errors.New("more than 2 GiB of strings in one block")
		}
		if r.maxBlock > 0 && r.blockBytes+len(data)+int(l) > r.maxBlock {
			return nil, &BlockTooLargeError{Rows: n, Limit: r.maxBlock}
		}
		if r.end-r.pos >= int(l) {
			data = append(data, r.buf[r.pos:r.pos+int(l)]...)
			r.pos += int(l)
		} else {
			start := len(data)
			data = append(data, make([]byte, l)...)
			if err := r.read(data[start:]); err != nil {
				return nil, err
			}
		}
		offs[i+1] = int32(len(data))
	}
	r.keep(data, from)
	r.blockBytes += len(data)
	nt.hint = len(data) + len(data)/8
	return stringData(offs, data), nil
}

func stringData(offs []int32, data []byte) arrow.ArrayData {
	return array.NewData(arrow.BinaryTypes.String, len(offs)-1,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs)), memory.NewBufferBytes(data)}, nil, 0, 0)
}

// parseHTTPException turns ClickHouse's error text ("Code: 60,
// e.displayText() = DB::Exception: Table … doesn't exist., e.what() = …")
// into its code and message.
func parseHTTPException(body []byte) error {
	s := strings.TrimSpace(string(body))
	e := &httpException{Message: s}
	if rest, ok := strings.CutPrefix(s, "Code: "); ok {
		end := strings.IndexAny(rest, ",.")
		if end > 0 {
			if c, err := strconv.Atoi(rest[:end]); err == nil {
				e.Code = int32(c)
			}
		}
	}
	if i := strings.Index(s, "DB::Exception: "); i >= 0 {
		e.Message = s[i+len("DB::Exception: "):]
		if j := strings.Index(e.Message, ", e.what() = "); j >= 0 {
			e.Name = strings.TrimSpace(e.Message[j+len(", e.what() = "):])
			e.Message = e.Message[:j]
		}
	}
	return e
}

// httpException is an error ClickHouse reported over HTTP.
type httpException struct {
	Code    int32
	Name    string // the exception's class, as the native protocol names it (DB::Exception)
	Message string
}

func (e *httpException) Error() string { return fmt.Sprintf("code %d: %s", e.Code, e.Message) }
