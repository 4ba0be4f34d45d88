package ingest

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

// JSON encoding of decoded JSON values (map[string]any and friends), byte
// for byte as encoding/json writes them, without reflection.

// marshalData encodes validated data byte for byte as json.Marshal does
// (Prepare's encoding), without reflection.
func marshalData(data any) ([]byte, error) {
	var buf [1024]byte
	b, err := appendJSON(buf[:0], data)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// appendJSON appends the JSON encoding of a decoded JSON value exactly as
// json.Marshal writes it: map keys sorted, strings with HTML-safe escapes,
// numbers as ES6 does — except -0, written 0: a sender's -0 means 0, and
// the readers of unsigned columns refuse "-0". Other types go through
// json.Marshal.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return jsonx.AppendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			_, err := json.Marshal(x)
			return dst, err
		}
		if x == 0 {
			x = 0 // -0 too
		}
		return jsonx.AppendFloat(dst, x), nil
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		// Sort the members by key (insertion sort: objects are small).
		var arr [24]jsonMember
		ms := arr[:0]
		for k, e := range x {
			ms = append(ms, jsonMember{k, e})
		}
		sortMembers(ms)
		dst = append(dst, '{')
		for i, m := range ms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonx.AppendString(dst, m.k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, m.v); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

type jsonMember struct {
	k string
	v any
}

func sortMembers(ms []jsonMember) {
	if len(ms) > 24 {
		slices.SortFunc(ms, func(a, b jsonMember) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].k < ms[j-1].k; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}
