package sqlapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/jsonx"
)

// jsonEncoder writes JSON ({"meta", "data": [[…]…], "rows", …}) or NDJSON
// (one object per row). Numbers are JSON numbers (64-bit integers may lose
// precision in JavaScript), DateTime is RFC 3339 with the column's offset,
// Date is YYYY-MM-DD, NULL is null, arrays are arrays.
type jsonEncoder struct {
	w      io.Writer
	ndjson bool
	cols   []*column
	keys   [][]byte // NDJSON: `"name":` per column
	buf    []byte
	n      int64
}

func (e *jsonEncoder) begin(cols []*column) error {
	e.cols = cols
	e.buf = make([]byte, 0, flushAt+4096)
	if e.ndjson {
		e.keys = make([][]byte, len(cols))
		for i, c := range cols {
			e.keys[i] = append(jsonx.AppendString(nil, c.Name), ':')
		}
		return nil
	}
	meta, err := json.Marshal(cols)
	if err != nil {
		return err
	}
	e.buf = append(e.buf, `{"meta":`...)
	e.buf = append(e.buf, meta...)
	e.buf = append(e.buf, `,"data":[`...)
	return nil
}

func (e *jsonEncoder) row() error {
	b := e.buf
	if e.ndjson {
		b = append(b, '{')
	} else {
		if e.n > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n["...)
	}
	for i, c := range e.cols {
		if i > 0 {
			b = append(b, ',')
		}
		if e.ndjson {
			b = append(b, e.keys[i]...)
		}
		b = appendJSONCell(b, c)
	}
	if e.ndjson {
		b = append(b, "}\n"...)
	} else {
		b = append(b, ']')
	}
	e.n++
	e.buf = b
	if len(b) >= flushAt {
		return e.flush()
	}
	return nil
}

func (e *jsonEncoder) flush() error {
	if len(e.buf) == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

func (e *jsonEncoder) end(s summary) error {
	if e.ndjson {
		return e.flush()
	}
	b := append(e.buf, "\n],\"rows\":"...)
	b = strconv.AppendInt(b, s.Rows, 10)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, s.Truncated)
	b = append(b, `,"query_id":`...)
	b = jsonx.AppendString(b, s.QueryID)
	b = append(b, `,"elapsed_ms":`...)
	b = strconv.AppendInt(b, s.ElapsedMS, 10)
	if s.Err != nil {
		var ae *api.Error
		if !errors.As(s.Err, &ae) {
			ae = api.Errorf(api.EINTERNAL, "query failed")
		}
		b = append(b, `,"error":{"code":`...)
		b = jsonx.AppendString(b, ae.Code)
		b = append(b, `,"message":`...)
		b = jsonx.AppendString(b, ae.Message)
		b = append(b, '}')
	}
	b = append(b, "}\n"...)
	e.buf = b
	return e.flush()
}

// appendJSONCell writes the current value of c.
func appendJSONCell(b []byte, c *column) []byte {
	switch d := c.dest.(type) {
	case *string:
		return jsonx.AppendString(b, *d)
	case *uint64:
		return strconv.AppendUint(b, *d, 10)
	case *uint32:
		return strconv.AppendUint(b, uint64(*d), 10)
	case *uint16:
		return strconv.AppendUint(b, uint64(*d), 10)
	case *uint8:
		return strconv.AppendUint(b, uint64(*d), 10)
	case *int64:
		return strconv.AppendInt(b, *d, 10)
	case *int32:
		return strconv.AppendInt(b, int64(*d), 10)
	case *int16:
		return strconv.AppendInt(b, int64(*d), 10)
	case *int8:
		return strconv.AppendInt(b, int64(*d), 10)
	case *float64:
		return appendJSONFloat(b, *d)
	case *float32:
		return appendJSONFloat(b, float64(*d))
	case *bool:
		return strconv.AppendBool(b, *d)
	case *time.Time:
		return c.appendJSONTime(b, *d)
	}
	return c.appendJSONAny(b, c.value())
}

func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return jsonx.AppendFloat(b, f)
}

func (c *column) appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	if c.date {
		b = t.In(c.tz).AppendFormat(b, time.DateOnly)
	} else {
		b = t.In(c.tz).AppendFormat(b, time.RFC3339)
	}
	return append(b, '"')
}

func (c *column) appendJSONAny(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return jsonx.AppendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case int8, int16, int32, int64, int:
		return strconv.AppendInt(b, reflect.ValueOf(x).Int(), 10)
	case uint8, uint16, uint32, uint64, uint:
		return strconv.AppendUint(b, reflect.ValueOf(x).Uint(), 10)
	case float32:
		return appendJSONFloat(b, float64(x))
	case float64:
		return appendJSONFloat(b, x)
	case time.Time:
		return c.appendJSONTime(b, x)
	case decimal.Decimal:
		return append(b, x.StringFixed(decimalScale(c.base))...)
	case fmt.Stringer: // UUID, IPv4 …: their text, not their bytes
		return jsonx.AppendString(b, x.String())
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		elem := &column{base: elemType(c.base), tz: c.tz}
		elem.date = elem.base == "Date" || elem.base == "Date32"
		b = append(b, '[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = elem.appendJSONAny(b, deref(rv.Index(i)))
		}
		return append(b, ']')
	case reflect.Map:
		b = append(b, '{')
		it := rv.MapRange()
		first := true
		for it.Next() {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = jsonx.AppendString(b, string(c.appendText(nil, deref(it.Key()), false)))
			b = append(b, ':')
			b = (&column{tz: c.tz}).appendJSONAny(b, deref(it.Value()))
		}
		return append(b, '}')
	}
	return jsonx.AppendString(b, string(c.appendText(nil, v, false)))
}
