package sqlapi

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// csvEncoder writes RFC 4180 CSV with a header row and CRLF line ends.
// Values are in ClickHouse's text form, so a file matches what
// clickhouse-client prints with --format CSVWithNames value for value:
// strings, dates and arrays in double quotes, numbers bare, NULL as \N.
type csvEncoder struct {
	w    io.Writer
	cols []*column
	// quoted[i]: values of column i are always quoted.
	quoted []bool
	buf    []byte
	tmp    []byte
}

func (e *csvEncoder) begin(cols []*column) error {
	e.cols = cols
	e.buf = make([]byte, 0, flushAt+4096)
	e.quoted = make([]bool, len(cols))
	for i, c := range cols {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendCSVQuoted(e.buf, c.Name)
		e.quoted[i] = !isNumeric(c.base)
	}
	e.buf = append(e.buf, '\r', '\n')
	return nil
}

func isNumeric(t string) bool {
	return strings.HasPrefix(t, "Int") || strings.HasPrefix(t, "UInt") || strings.HasPrefix(t, "Float") ||
		strings.HasPrefix(t, "Decimal") || t == "Bool"
}

func (e *csvEncoder) row() error {
	b := e.buf
	for i, c := range e.cols {
		if i > 0 {
			b = append(b, ',')
		}
		switch d := c.dest.(type) {
		case *string:
			b = appendCSVQuoted(b, *d)
			continue
		case *uint64:
			b = strconv.AppendUint(b, *d, 10)
			continue
		case *uint32:
			b = strconv.AppendUint(b, uint64(*d), 10)
			continue
		case *uint8:
			b = strconv.AppendUint(b, uint64(*d), 10)
			continue
		case *int64:
			b = strconv.AppendInt(b, *d, 10)
			continue
		case *int32:
			b = strconv.AppendInt(b, int64(*d), 10)
			continue
		case *float64:
			b = appendCHFloat(b, *d, 64)
			continue
		case *time.Time:
			b = append(b, '"')
			b = c.appendTime(b, *d)
			b = append(b, '"')
			continue
		}
		v := c.value()
		if v == nil {
			b = append(b, `\N`...)
			continue
		}
		e.tmp = c.appendText(e.tmp[:0], v, false)
		if e.quoted[i] {
			b = appendCSVQuoted(b, e.tmp)
		} else {
			b = append(b, e.tmp...)
		}
	}
	b = append(b, '\r', '\n')
	e.buf = b
	if len(b) >= flushAt {
		_, err := e.w.Write(b)
		e.buf = b[:0]
		return err
	}
	return nil
}

func (e *csvEncoder) end(s summary) error {
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

func appendCSVQuoted[T ~string | ~[]byte](b []byte, v T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] == '"' {
			b = append(b, v[start:i+1]...)
			b = append(b, '"')
			start = i + 1
		}
	}
	b = append(b, v[start:]...)
	return append(b, '"')
}
