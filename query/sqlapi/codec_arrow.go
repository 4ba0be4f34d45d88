package sqlapi

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/shopspring/decimal"
)

// arrowBatchRows is the number of rows per record batch: large enough for
// fast readers, small enough to keep memory flat.
const arrowBatchRows = 64 << 10

// arrowEncoder writes an Arrow IPC stream. Types are kept: integers by
// width and sign, Float32/64, Bool, String/Enum/UUID as utf8, Date as
// date32, DateTime as timestamp[s] with the column's time zone, Decimal as
// decimal128(P, S), Nullable as nullable fields, Array(T) as list<T>.
// Types without an Arrow counterpart (Map, Tuple …) travel as their
// ClickHouse text in utf8, and the field's metadata keeps the ClickHouse type.
type arrowEncoder struct {
	w    io.Writer
	cols []*column
	rb   *array.RecordBuilder
	iw   *ipc.Writer
	n    int
}

func (e *arrowEncoder) begin(cols []*column) error {
	e.cols = cols
	schema := arrowSchema(cols)
	mem := memory.NewGoAllocator()
	e.rb = array.NewRecordBuilder(mem, schema)
	e.iw = ipc.NewWriter(e.w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	return nil
}

// arrowSchema is the Arrow schema of a result; each field's metadata keeps
// its ClickHouse type.
func arrowSchema(cols []*column) *arrow.Schema {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{
			Name:     c.Name,
			Type:     arrowType(c.base, c.tz),
			Nullable: c.null,
			Metadata: arrow.NewMetadata([]string{"clickhouse_type"}, []string{c.Type}),
		}
	}
	return arrow.NewSchema(fields, nil)
}

// arrowType maps a ClickHouse type (without Nullable) to Arrow.
func arrowType(t string, tz *time.Location) arrow.DataType {
	switch t {
	case "Int8":
		return arrow.PrimitiveTypes.Int8
	case "Int16":
		return arrow.PrimitiveTypes.Int16
	case "Int32":
		return arrow.PrimitiveTypes.Int32
	case "Int64":
		return arrow.PrimitiveTypes.Int64
	case "UInt8":
		return arrow.PrimitiveTypes.Uint8
	case "UInt16":
		return arrow.PrimitiveTypes.Uint16
	case "UInt32":
		return arrow.PrimitiveTypes.Uint32
	case "UInt64":
		return arrow.PrimitiveTypes.Uint64
	case "Float32":
		return arrow.PrimitiveTypes.Float32
	case "Float64":
		return arrow.PrimitiveTypes.Float64
	case "Bool":
		return arrow.FixedWidthTypes.Boolean
	case "Date", "Date32":
		return arrow.FixedWidthTypes.Date32
	}
	switch {
	case t == "DateTime" || strings.HasPrefix(t, "DateTime("):
		name := tz.String()
		if z := typeTZ(t); z != "" {
			name = z
		}
		return &arrow.TimestampType{Unit: arrow.Second, TimeZone: name}
	case strings.HasPrefix(t, "Decimal"):
		return &arrow.Decimal128Type{Precision: decimalPrecision(t), Scale: decimalScale(t)}
	case strings.HasPrefix(t, "Array("):
		return arrow.ListOf(arrowType(elemType(t), tz))
	}
	return arrow.BinaryTypes.String
}

func (e *arrowEncoder) row() error {
	for i, c := range e.cols {
		b := e.rb.Field(i)
		switch d := c.dest.(type) {
		case *string:
			b.(*array.StringBuilder).Append(*d)
			continue
		case *uint64:
			b.(*array.Uint64Builder).Append(*d)
			continue
		case *uint32:
			b.(*array.Uint32Builder).Append(*d)
			continue
		case *uint8:
			b.(*array.Uint8Builder).Append(*d)
			continue
		case *int64:
			b.(*array.Int64Builder).Append(*d)
			continue
		case *int32:
			b.(*array.Int32Builder).Append(*d)
			continue
		case *float64:
			b.(*array.Float64Builder).Append(*d)
			continue
		case *time.Time:
			if tb, ok := b.(*array.TimestampBuilder); ok {
				tb.Append(arrow.Timestamp(d.Unix()))
				continue
			}
		}
		if err := appendArrow(b, c, c.value()); err != nil {
			return fmt.Errorf("column %s: %w", c.Name, err)
		}
	}
	e.n++
	if e.n >= arrowBatchRows {
		return e.flush()
	}
	return nil
}

func (e *arrowEncoder) flush() error {
	if e.n == 0 {
		return nil
	}
	rec := e.rb.NewRecord()
	defer rec.Release()
	e.n = 0
	return e.iw.Write(rec)
}

func (e *arrowEncoder) end(s summary) error {
	if s.Err != nil {
		// No end-of-stream marker: a reader sees the stream cut short
		// rather than a complete result.
		e.rb.Release()
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.rb.Release()
	return e.iw.Close()
}

// appendArrow appends any scanned value (nil = NULL) to its builder.
func appendArrow(b array.Builder, c *column, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.StringBuilder:
		if s, ok := v.(string); ok {
			bb.Append(s)
		} else {
			bb.Append(string(c.appendText(nil, v, false)))
		}
		return nil
	case *array.TimestampBuilder:
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("want a time, got %T", v)
		}
		bb.Append(arrow.Timestamp(t.Unix()))
		return nil
	case *array.Date32Builder:
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("want a date, got %T", v)
		}
		y, m, d := t.Date()
		bb.Append(arrow.Date32FromTime(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)))
		return nil
	case *array.BooleanBuilder:
		switch x := v.(type) {
		case bool:
			bb.Append(x)
		case uint8:
			bb.Append(x != 0)
		default:
			return fmt.Errorf("want a bool, got %T", v)
		}
		return nil
	case *array.Decimal128Builder:
		d, ok := v.(decimal.Decimal)
		if !ok {
			return fmt.Errorf("want a decimal, got %T", v)
		}
		scale := bb.Type().(*arrow.Decimal128Type).Scale
		bb.Append(decimal128.FromBigInt(d.Shift(scale).BigInt()))
		return nil
	case *array.ListBuilder:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return fmt.Errorf("want an array, got %T", v)
		}
		bb.Append(true)
		elem := &column{base: elemType(c.base), tz: c.tz}
		for i := 0; i < rv.Len(); i++ {
			if err := appendArrow(bb.ValueBuilder(), elem, deref(rv.Index(i))); err != nil {
				return err
			}
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	switch bb := b.(type) {
	case *array.Int8Builder:
		bb.Append(int8(rv.Int()))
	case *array.Int16Builder:
		bb.Append(int16(rv.Int()))
	case *array.Int32Builder:
		bb.Append(int32(rv.Int()))
	case *array.Int64Builder:
		bb.Append(rv.Int())
	case *array.Uint8Builder:
		bb.Append(uint8(rv.Uint()))
	case *array.Uint16Builder:
		bb.Append(uint16(rv.Uint()))
	case *array.Uint32Builder:
		bb.Append(uint32(rv.Uint()))
	case *array.Uint64Builder:
		bb.Append(rv.Uint())
	case *array.Float32Builder:
		bb.Append(float32(rv.Float()))
	case *array.Float64Builder:
		bb.Append(rv.Float())
	default:
		return fmt.Errorf("no Arrow builder for %T", v)
	}
	return nil
}
