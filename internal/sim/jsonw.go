package sim

import (
	"math"
	"strconv"
	"time"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

// obj appends one JSON object field by field. The generator writes its own
// JSON because it emits hundreds of thousands of small events per second and
// encoding/json's reflection would dominate the cost; the output is plain,
// compact JSON that encoding/json reads back unchanged.
type obj struct {
	b     []byte
	first bool
}

func beginObj(b []byte) obj { return obj{b: append(b, '{'), first: true} }

func (o *obj) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = jsonx.AppendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *obj) str(k, v string) {
	o.key(k)
	o.b = jsonx.AppendString(o.b, v)
}

func (o *obj) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *obj) num(k string, v float64, prec int) {
	o.key(k)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	o.b = strconv.AppendFloat(o.b, v, 'f', prec, 64)
}

func (o *obj) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *obj) time(k string, t time.Time) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = appendTime(o.b, t)
	o.b = append(o.b, '"')
}

// raw appends an already encoded JSON value.
func (o *obj) raw(k string, v []byte) {
	o.key(k)
	o.b = append(o.b, v...)
}

// sub starts a nested object under k; close it with end.
func (o *obj) sub(k string) obj {
	o.key(k)
	return obj{b: append(o.b, '{'), first: true}
}

// endSub closes a nested object and hands the bytes back to its parent.
func (o *obj) endSub(child obj) { o.b = append(child.b, '}') }

func (o *obj) end() []byte { return append(o.b, '}') }

// appendTime writes RFC 3339 with the +07:00 offset, to the second.
func appendTime(b []byte, t time.Time) []byte {
	return t.In(ict).AppendFormat(b, time.RFC3339)
}
