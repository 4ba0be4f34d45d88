package sqlapi

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// column is one result column: its ClickHouse type and the variable the
// driver scans each row's value into.
type column struct {
	Name string `json:"name"`
	Type string `json:"type"` // ClickHouse type, as the server reports it
	base string // Type without LowCardinality(…) and Nullable(…)
	null bool   // Nullable
	tz   *time.Location
	date bool // Date or Date32: no time of day
	dest any  // pointer handed to rows.Scan
}

// newColumns describes the result columns and allocates scan targets.
func newColumns(types []driver.ColumnType, serverTZ *time.Location) []*column {
	cols := make([]*column, len(types))
	for i, ct := range types {
		c := newColumn(ct.Name(), ct.DatabaseTypeName(), serverTZ)
		c.dest = reflect.New(ct.ScanType()).Interface()
		cols[i] = c
	}
	return cols
}

// newColumn describes a column of type typ, with no scan target yet.
func newColumn(name, typ string, serverTZ *time.Location) *column {
	c := &column{Name: name, Type: typ}
	c.base, c.null = unwrapType(c.Type)
	c.date = c.base == "Date" || c.base == "Date32"
	c.tz = serverTZ
	if strings.HasPrefix(c.base, "DateTime") {
		if tz := typeTZ(c.base); tz != "" {
			if loc, err := time.LoadLocation(tz); err == nil {
				c.tz = loc
			}
		}
	}
	return c
}

// unwrapType strips LowCardinality(…) and Nullable(…).
func unwrapType(t string) (base string, nullable bool) {
	for {
		switch {
		case strings.HasPrefix(t, "LowCardinality(") && strings.HasSuffix(t, ")"):
			t = t[len("LowCardinality(") : len(t)-1]
		case strings.HasPrefix(t, "Nullable(") && strings.HasSuffix(t, ")"):
			t, nullable = t[len("Nullable("):len(t)-1], true
		default:
			return t, nullable
		}
	}
}

// typeTZ is the time zone named in DateTime('tz') or DateTime64(3, 'tz').
func typeTZ(t string) string {
	i := strings.IndexByte(t, '\'')
	j := strings.LastIndexByte(t, '\'')
	if i < 0 || j <= i {
		return ""
	}
	return t[i+1 : j]
}

// value is the scanned value of a column for the current row, with
// pointers (Nullable) dereferenced; nil is NULL. Scalar columns are handled
// without it by the codecs' fast paths.
func (c *column) value() any {
	return deref(reflect.ValueOf(c.dest).Elem())
}

func deref(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	return v.Interface()
}

// appendText writes v in ClickHouse's text form (as clickhouse-client
// prints it in TSV and CSV): dates and times in the column's time zone,
// Decimals with their scale, arrays as ['a','b']. quoteStrings is set inside
// arrays and tuples, where strings are quoted.
func (c *column) appendText(dst []byte, v any, quoteStrings bool) []byte {
	switch x := v.(type) {
	case nil:
		if quoteStrings {
			return append(dst, "NULL"...)
		}
		return append(dst, `\N`...)
	case string:
		if quoteStrings {
			return append(dst, quoteString(x)...)
		}
		return append(dst, x...)
	case bool:
		return strconv.AppendBool(dst, x)
	case int8, int16, int32, int64, int:
		return strconv.AppendInt(dst, reflect.ValueOf(x).Int(), 10)
	case uint8, uint16, uint32, uint64, uint:
		return strconv.AppendUint(dst, reflect.ValueOf(x).Uint(), 10)
	case float32:
		return appendCHFloat(dst, float64(x), 32)
	case float64:
		return appendCHFloat(dst, x, 64)
	case time.Time:
		if quoteStrings {
			dst = append(dst, '\'')
		}
		dst = c.appendTime(dst, x)
		if quoteStrings {
			dst = append(dst, '\'')
		}
		return dst
	case decimal.Decimal:
		return append(dst, x.StringFixed(decimalScale(c.base))...)
	case *big.Int:
		return x.Append(dst, 10)
	case fmt.Stringer:
		if quoteStrings {
			return append(dst, quoteString(x.String())...)
		}
		return append(dst, x.String()...)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		elem := &column{base: elemType(c.base), tz: c.tz}
		elem.date = elem.base == "Date" || elem.base == "Date32"
		dst = append(dst, '[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = elem.appendText(dst, deref(rv.Index(i)), true)
		}
		return append(dst, ']')
	}
	return fmt.Append(dst, v)
}

func (c *column) appendTime(dst []byte, t time.Time) []byte {
	t = t.In(c.tz)
	if c.date {
		return t.AppendFormat(dst, time.DateOnly)
	}
	return t.AppendFormat(dst, time.DateTime)
}

// elemType is T of Array(T), unwrapped.
func elemType(t string) string {
	if strings.HasPrefix(t, "Array(") && strings.HasSuffix(t, ")") {
		b, _ := unwrapType(t[len("Array(") : len(t)-1])
		return b
	}
	return ""
}

// decimalScale is S of Decimal(P, S) or DecimalN(S).
func decimalScale(t string) int32 {
	i := strings.LastIndexAny(t, "(,")
	if i < 0 || !strings.HasSuffix(t, ")") {
		return 0
	}
	s, err := strconv.Atoi(strings.TrimSpace(t[i+1 : len(t)-1]))
	if err != nil {
		return 0
	}
	return int32(s)
}

// decimalPrecision is P of Decimal(P, S), or the width of DecimalN(S).
func decimalPrecision(t string) int32 {
	switch {
	case strings.HasPrefix(t, "Decimal32"):
		return 9
	case strings.HasPrefix(t, "Decimal64"):
		return 18
	case strings.HasPrefix(t, "Decimal128"):
		return 38
	case strings.HasPrefix(t, "Decimal("):
		if p, err := strconv.Atoi(strings.TrimSpace(t[len("Decimal("):strings.IndexByte(t, ',')])); err == nil {
			return int32(p)
		}
	}
	return 38
}

// appendCHFloat writes a float the way ClickHouse prints it: the shortest
// decimal that reads back, inf/-inf/nan spelled out.
func appendCHFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		dst = strconv.AppendFloat(dst, f, 'e', -1, bits)
		// 1e+21 → 1e21, as ClickHouse writes it.
		for i := len(dst) - 1; i > 0; i-- {
			if dst[i] == '+' && dst[i-1] == 'e' {
				return append(dst[:i], dst[i+1:]...)
			}
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, bits)
}
