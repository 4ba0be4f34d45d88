package sqlapi

import (
	"reflect"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/shopspring/decimal"
)

// The text formats read from a Native block go through the same scan
// targets, of the same Go types, as the driver's row-by-row path, so the
// encoders write the same bytes whichever path read the rows.

var (
	timeType    = reflect.TypeFor[time.Time]()
	decimalType = reflect.TypeFor[decimal.Decimal]()
	stringType  = reflect.TypeFor[string]()
)

// fixedTypes are the Go types of the fixed-width numbers, by Arrow type.
var fixedTypes = map[arrow.Type]reflect.Type{
	arrow.INT8: reflect.TypeFor[int8](), arrow.INT16: reflect.TypeFor[int16](),
	arrow.INT32: reflect.TypeFor[int32](), arrow.INT64: reflect.TypeFor[int64](),
	arrow.UINT8: reflect.TypeFor[uint8](), arrow.UINT16: reflect.TypeFor[uint16](),
	arrow.UINT32: reflect.TypeFor[uint32](), arrow.UINT64: reflect.TypeFor[uint64](),
	arrow.FLOAT32: reflect.TypeFor[float32](), arrow.FLOAT64: reflect.TypeFor[float64](),
}

// goType is the Go type the driver scans a value of nt into.
func goType(nt *ntype) reflect.Type {
	switch nt.kind {
	case nFixed:
		return fixedTypes[nt.arrow.ID()]
	case nDate, nDateTime:
		return timeType
	case nDecimal:
		return decimalType
	case nNullable:
		return reflect.PointerTo(goType(nt.elem))
	case nArray:
		return reflect.SliceOf(goType(nt.elem))
	}
	return stringType // String, FixedString, Enum, UUID
}

// setCell stores row i of a (a column of type nt) in dest, a pointer to
// goType(nt).
func setCell(dest any, a arrow.Array, i int, nt *ntype, tz *time.Location) {
	switch d := dest.(type) {
	case *string:
		*d = a.(*array.String).Value(i)
	case *uint64:
		*d = a.(*array.Uint64).Value(i)
	case *uint32:
		*d = a.(*array.Uint32).Value(i)
	case *uint16:
		*d = a.(*array.Uint16).Value(i)
	case *uint8:
		*d = a.(*array.Uint8).Value(i)
	case *int64:
		*d = a.(*array.Int64).Value(i)
	case *int32:
		*d = a.(*array.Int32).Value(i)
	case *int16:
		*d = a.(*array.Int16).Value(i)
	case *int8:
		*d = a.(*array.Int8).Value(i)
	case *float64:
		*d = a.(*array.Float64).Value(i)
	case *float32:
		*d = a.(*array.Float32).Value(i)
	default:
		reflect.ValueOf(dest).Elem().Set(cellValue(a, i, nt, tz))
	}
}

// cellValue is row i of a as a value of goType(nt).
func cellValue(a arrow.Array, i int, nt *ntype, tz *time.Location) reflect.Value {
	switch nt.kind {
	case nDate:
		// As the driver gives a Date: midnight in the server's time zone.
		y, m, d := time.Unix(int64(a.(*array.Date32).Value(i))*86400, 0).UTC().Date()
		return reflect.ValueOf(time.Date(y, m, d, 0, 0, 0, 0, tz))
	case nDateTime:
		return reflect.ValueOf(time.Unix(int64(a.(*array.Timestamp).Value(i)), 0).In(tz))
	case nDecimal:
		v := a.(*array.Decimal128).Value(i)
		return reflect.ValueOf(decimal.NewFromBigInt(v.BigInt(), -a.DataType().(*arrow.Decimal128Type).Scale))
	case nNullable:
		t := goType(nt)
		if a.IsNull(i) {
			return reflect.Zero(t)
		}
		p := reflect.New(t.Elem())
		setCell(p.Interface(), a, i, nt.elem, tz)
		return p
	case nArray:
		l := a.(*array.List)
		from, to := l.ValueOffsets(i)
		s := reflect.MakeSlice(goType(nt), int(to-from), int(to-from))
		for k := range s.Len() {
			setCell(s.Index(k).Addr().Interface(), l.ListValues(), int(from)+k, nt.elem, tz)
		}
		return s
	}
	v := reflect.New(goType(nt))
	setCell(v.Interface(), a, i, nt, tz)
	return v.Elem()
}
