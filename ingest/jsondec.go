package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A fast JSON reader for the hot paths (splitting bodies, Prepare, the
// writer's decoding), without reflection and without a second validation
// pass. It only ever answers for input it fully understands: it reports
// not ok on anything unusual (invalid JSON, nesting deeper than
// maxFastDepth, a number out of range, a key that matches a field only
// case-insensitively…), and the caller then takes the encoding/json path
// it replaces, so results and error messages stay exactly encoding/json's.
// What it accepts, it decodes exactly as encoding/json (v1) does: strings
// unescaped the same way (invalid UTF-8 and lone surrogates become U+FFFD),
// numbers with strconv, duplicate keys last-wins.

// maxFastDepth bounds the nesting the fast reader follows; deeper input
// goes to encoding/json (whose own limit is 10,000).
const maxFastDepth = 64

type textBytes interface{ ~string | ~[]byte }

// strByte classifies bytes inside a JSON string: 0 plain ASCII, 1 the end
// or an escape (" or \), 2 invalid (control characters), 3 non-ASCII.
var strByte = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = 2
	}
	t['"'], t['\\'] = 1, 1
	for c := 0x80; c < 0x100; c++ {
		t[c] = 3
	}
	return t
}()

func skipSpace[T textBytes](b T, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String flags from scanString.
const (
	strEscaped  = 1 << iota // holds a backslash escape
	strNonASCII             // holds bytes ≥ 0x80
)

// scanString validates the string starting at b[i] == '"' and returns the
// index after its closing quote.
func scanString[T textBytes](b T, i int) (end int, flags int, ok bool) {
	i++ // opening quote
	for i < len(b) {
		switch strByte[b[i]] {
		case 0:
			i++
		case 3:
			flags |= strNonASCII
			i++
		case 2:
			return 0, 0, false
		default:
			if b[i] == '"' {
				return i + 1, flags, true
			}
			flags |= strEscaped
			if i+1 >= len(b) {
				return 0, 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, 0, false
				}
				for k := i + 2; k < i+6; k++ {
					if !isHex(b[k]) {
						return 0, 0, false
					}
				}
				i += 6
			default:
				return 0, 0, false
			}
		}
	}
	return 0, 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber validates the number starting at b[i] and returns the index
// after it.
func scanNumber[T textBytes](b T, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	return i, true
}

func scanLiteral[T textBytes](b T, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanValue validates the value starting at b[i] (no space before it) and
// returns the index after it.
func scanValue[T textBytes](b T, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; c {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			var ok bool
			if i, _, ok = scanString(b, i); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = scanValue(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case '[':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	}
	return scanNumber(b, i)
}

// validJSON is json.Valid.
func validJSON[T textBytes](b T) bool {
	i, ok := scanValue(b, skipSpace(b, 0), 0)
	if ok && skipSpace(b, i) == len(b) {
		return true
	}
	// Invalid, or too deep for the fast reader: encoding/json decides.
	return json.Valid([]byte(b))
}

// unquote returns the value of the string literal s[start:end] (quotes
// included) whose scanString flags are given, as encoding/json decodes it.
// Without escapes and invalid UTF-8, it is a substring of s.
func unquote(s string, start, end, flags int) string {
	body := s[start+1 : end-1]
	if flags&strEscaped == 0 && (flags&strNonASCII == 0 || utf8.ValidString(body)) {
		return body
	}
	return unquoteSlow(body)
}

// unquoteSlow is encoding/json's unquoteBytes on a valid literal's body.
func unquoteSlow(s string) string {
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if rr1 := getu4(s[r:]); rr1 >= 0 {
						if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
							r += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // " \ /
				b = append(b, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b)
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	r, err := strconv.ParseUint(s[2:6], 16, 32)
	if err != nil {
		return -1
	}
	return rune(r)
}

// jdec reads one JSON text held in a string; the strings it returns are
// substrings of it whenever they need no unescaping.
type jdec struct {
	s     string
	i     int
	depth int
}

func (d *jdec) space() { d.i = skipSpace(d.s, d.i) }

// next is the first byte of the next value (0 at the end).
func (d *jdec) next() byte {
	d.space()
	if d.i >= len(d.s) {
		return 0
	}
	return d.s[d.i]
}

// end reports whether only space is left.
func (d *jdec) end() bool {
	d.space()
	return d.i == len(d.s)
}

// skip validates and skips the next value; start and end delimit it.
func (d *jdec) skip() (start, end int, ok bool) {
	d.space()
	start = d.i
	if end, ok = scanValue(d.s, d.i, d.depth); ok {
		d.i = end
	}
	return start, end, ok
}

// null consumes a null literal if it is next.
func (d *jdec) null() bool {
	if d.next() == 'n' {
		if end, ok := scanLiteral(d.s, d.i, "null"); ok {
			d.i = end
			return true
		}
	}
	return false
}

// str reads a string value.
func (d *jdec) str() (string, bool) {
	if d.next() != '"' {
		return "", false
	}
	start := d.i
	end, flags, ok := scanString(d.s, start)
	if !ok {
		return "", false
	}
	d.i = end
	return unquote(d.s, start, end, flags), true
}

// number reads a number value's literal.
func (d *jdec) number() (string, bool) {
	c := d.next()
	if c != '-' && (c < '0' || c > '9') {
		return "", false
	}
	start := d.i
	end, ok := scanNumber(d.s, start)
	if !ok {
		return "", false
	}
	d.i = end
	return d.s[start:end], true
}

// object reads an object, calling member for each key with the decoder
// positioned at the value, which member must consume.
func (d *jdec) object(member func(key string) bool) bool {
	if d.next() != '{' || d.depth >= maxFastDepth {
		return false
	}
	d.i++
	d.depth++
	if d.next() == '}' {
		d.i++
		d.depth--
		return true
	}
	for {
		key, ok := d.str()
		if !ok || d.next() != ':' {
			return false
		}
		d.i++
		if !member(key) {
			return false
		}
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// value reads any value as encoding/json decodes it into an interface:
// map[string]any, []any, string, float64, bool or nil.
func (d *jdec) value() (any, bool) {
	switch c := d.next(); c {
	case '{':
		m := make(map[string]any)
		ok := d.object(func(key string) bool {
			v, ok := d.value()
			m[key] = v
			return ok
		})
		return m, ok
	case '[':
		if d.depth >= maxFastDepth {
			return nil, false
		}
		d.i++
		d.depth++
		a := make([]any, 0)
		if d.next() == ']' {
			d.i++
			d.depth--
			return a, true
		}
		for {
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			a = append(a, v)
			switch d.next() {
			case ',':
				d.i++
			case ']':
				d.i++
				d.depth--
				return a, true
			default:
				return nil, false
			}
		}
	case '"':
		return d.str()
	case 't':
		end, ok := scanLiteral(d.s, d.i, "true")
		if !ok {
			return nil, false
		}
		d.i = end
		return true, true
	case 'f':
		end, ok := scanLiteral(d.s, d.i, "false")
		if !ok {
			return nil, false
		}
		d.i = end
		return false, true
	case 'n':
		end, ok := scanLiteral(d.s, d.i, "null")
		if !ok {
			return nil, false
		}
		d.i = end
		return nil, true
	}
	lit, ok := d.number()
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(lit, 64)
	return f, err == nil
}

// The typed readers below decode into struct fields as encoding/json
// does: null leaves a field as it is (a pointer field becomes nil), any
// other mismatch is not ok.

func (d *jdec) strField(dst *string) bool {
	if d.null() {
		return true
	}
	s, ok := d.str()
	*dst = s
	return ok
}

func (d *jdec) boolField(dst *bool) bool {
	switch d.next() {
	case 't':
		end, ok := scanLiteral(d.s, d.i, "true")
		if ok {
			d.i, *dst = end, true
		}
		return ok
	case 'f':
		end, ok := scanLiteral(d.s, d.i, "false")
		if ok {
			d.i, *dst = end, false
		}
		return ok
	}
	return d.null()
}

func (d *jdec) boolPtrField(dst **bool) bool {
	if d.null() {
		*dst = nil
		return true
	}
	var b bool
	if !d.boolField(&b) {
		return false
	}
	*dst = &b
	return true
}

func (d *jdec) uintField(bits int) (uint64, bool) {
	lit, ok := d.number()
	if !ok {
		return 0, false
	}
	if lit == "-0" {
		return 0, true // stored before -0 was written 0
	}
	n, err := strconv.ParseUint(lit, 10, bits)
	return n, err == nil
}

func (d *jdec) uint32Field(dst *uint32) bool {
	if d.null() {
		return true
	}
	n, ok := d.uintField(32)
	*dst = uint32(n)
	return ok
}

func (d *jdec) uint8Field(dst *uint8) bool {
	if d.null() {
		return true
	}
	n, ok := d.uintField(8)
	*dst = uint8(n)
	return ok
}

func (d *jdec) int8PtrField(dst **int8) bool {
	if d.null() {
		*dst = nil
		return true
	}
	lit, ok := d.number()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(lit, 10, 8)
	if err != nil {
		return false
	}
	v := int8(n)
	*dst = &v
	return true
}

func (d *jdec) float64Field(dst *float64) bool {
	if d.null() {
		return true
	}
	lit, ok := d.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(lit, 64)
	*dst = f
	return err == nil
}

func (d *jdec) float32Field(dst *float32) bool {
	if d.null() {
		return true
	}
	lit, ok := d.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(lit, 32)
	*dst = float32(f)
	return err == nil
}

// fields reads an object into a struct: set handles the keys it knows
// (exact JSON names) and reports known false for others, which are
// skipped unless they match one of names case-insensitively (encoding/json
// would then set that field: not ok, the caller takes the slow path).
// null leaves the struct as it is.
func (d *jdec) fields(names []string, set func(key string) (known, ok bool)) bool {
	if d.null() {
		return true
	}
	return d.object(func(key string) bool {
		known, ok := set(key)
		if known {
			return ok
		}
		for _, n := range names {
			if bytes.EqualFold([]byte(key), []byte(n)) {
				return false
			}
		}
		_, _, ok = d.skip()
		return ok
	})
}
