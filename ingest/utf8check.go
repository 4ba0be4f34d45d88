package ingest

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// textProblem finds the first string of an event's JSON that is not valid
// UTF-8, or that escapes half of a UTF-16 surrogate pair (`\ud800` alone),
// and names it by its path (`id`, `data.applicant.name`, `data.components[2]`).
// A JSON reader would turn either into U+FFFD, so two ids, subjects or
// names that differ only there would become one (one event answered as a
// duplicate of the other, two citizens given one pseudonym): the event is
// refused instead. at is the byte of the event where the string goes wrong.
// Malformed JSON is left to the decoder (bad is false).
func textProblem(raw []byte) (path string, at int, bad bool) {
	if utf8.Valid(raw) && !surrogateEscape(raw) {
		return "", 0, false
	}
	type level struct {
		object  bool
		key     string
		index   int
		wantKey bool
	}
	var st []level
	where := func(key bool) string {
		var b strings.Builder
		for i, l := range st {
			switch {
			case l.object && (i < len(st)-1 || !key):
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(l.key)
			case !l.object:
				b.WriteString("[" + strconv.Itoa(l.index) + "]")
			}
		}
		if key {
			if b.Len() == 0 {
				return "a field name"
			}
			return b.String() + ": a field name"
		}
		return b.String()
	}
	for i := 0; i < len(raw); {
		switch raw[i] {
		case '{', '[':
			st = append(st, level{object: raw[i] == '{', wantKey: raw[i] == '{'})
			i++
		case '}', ']':
			if len(st) == 0 {
				return "", 0, false
			}
			st = st[:len(st)-1]
			i++
		case ',':
			if len(st) > 0 {
				if st[len(st)-1].object {
					st[len(st)-1].wantKey = true
				} else {
					st[len(st)-1].index++
				}
			}
			i++
		case ':':
			if len(st) > 0 {
				st[len(st)-1].wantKey = false
			}
			i++
		case '"':
			end, badAt := scanText(raw, i)
			isKey := len(st) > 0 && st[len(st)-1].object && st[len(st)-1].wantKey
			if badAt >= 0 {
				return where(isKey), badAt, true
			}
			if end < 0 {
				return "", 0, false // cut short: the decoder says so
			}
			if isKey {
				st[len(st)-1].key = string(raw[i+1 : end-1])
			}
			i = end
		default:
			i++
		}
	}
	return "", 0, false
}

// scanText reads the string literal at raw[i] (its opening quote): end is
// the byte after its closing quote (-1 when cut short), badAt the first
// byte of an invalid UTF-8 sequence or of a lone surrogate escape (-1 when
// none).
func scanText(raw []byte, i int) (end, badAt int) {
	for j := i + 1; j < len(raw); {
		c := raw[j]
		switch {
		case c == '"':
			return j + 1, -1
		case c == '\\':
			if j+1 < len(raw) && raw[j+1] == 'u' {
				r := hex4(raw, j+2)
				switch {
				case r < 0:
					return -1, -1
				case utf16.IsSurrogate(r):
					lo := -1
					if j+11 < len(raw) && raw[j+6] == '\\' && raw[j+7] == 'u' {
						lo = int(hex4(raw, j+8))
					}
					if r >= 0xDC00 || lo < 0xDC00 || lo > 0xDFFF {
						return -1, j
					}
					j += 12
				default:
					j += 6
				}
				continue
			}
			j += 2
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(raw[j:])
			if r == utf8.RuneError && size == 1 {
				return -1, j
			}
			j += size
		}
	}
	return -1, -1
}

// hex4 is the value of the 4 hex digits at raw[i:], or -1.
func hex4(raw []byte, i int) rune {
	if i+4 > len(raw) {
		return -1
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// surrogateEscape: raw holds `\uD8`…`\uDF`, a surrogate escape (valid in
// a pair) somewhere, so it must be read closely.
func surrogateEscape(raw []byte) bool {
	for i := bytes.Index(raw, []byte(`\u`)); i >= 0; {
		if i+2 < len(raw) && (raw[i+2] == 'd' || raw[i+2] == 'D') && i+3 < len(raw) && strings.IndexByte("89abcdefABCDEF", raw[i+3]) >= 0 {
			return true
		}
		n := bytes.Index(raw[i+2:], []byte(`\u`))
		if n < 0 {
			return false
		}
		i += 2 + n
	}
	return false
}
