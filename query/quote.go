package query

import (
	"fmt"
	"iter"
	"strings"
)

// Quote renders s as a ClickHouse string literal that reads back as exactly
// s: backslash, quote and the control characters a literal may not hold raw
// are escaped.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\x%02X`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// MaxKeys bounds the keys one statement lists in an IN (…) of literals.
const MaxKeys = 5000

// MaxKeyBytes bounds the bytes the quoted keys of one statement take.
// ClickHouse refuses a statement longer than its max_query_size, 256 KiB by
// default; 128 KiB of keys leave room for the rest of the statement (the
// working-time calendar alone takes ~15 KiB). Ids may be 256 bytes long
// (and longer once quoted), so MaxKeys of them would not fit.
const MaxKeyBytes = 128 << 10

// QuotedLen is len(Quote(s)), without building it.
func QuotedLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '\'' || c == '\n' || c == '\r' || c == '\t' || c == 0:
			n++
		case c < 0x20 || c == 0x7f:
			n += 3
		}
	}
	return n
}

// Chunks cuts keys, in order, into runs one statement can list: at most
// MaxKeys keys and MaxKeyBytes bytes of literals each (a single key longer
// than that makes a run of its own). quoted says whether the keys are
// literals already (Quote) or values to be quoted.
func Chunks(keys []string, quoted bool) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		for len(keys) > 0 {
			n, size := 0, 0
			for n < len(keys) && n < MaxKeys {
				k := len(keys[n])
				if !quoted {
					k = QuotedLen(keys[n])
				}
				if n > 0 && size+k+2 > MaxKeyBytes {
					break
				}
				size += k + 2 // ", "
				n++
			}
			if !yield(keys[:n:n]) {
				return
			}
			keys = keys[n:]
		}
	}
}

// In is the condition `col IN ('a', 'b', …)` over the values, quoted; with
// no values, the condition 0 (ClickHouse takes no empty IN list).
func In(col string, values []string) string {
	if len(values) == 0 {
		return "0"
	}
	var b strings.Builder
	b.WriteString(col)
	b.WriteString(" IN (")
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Quote(v))
	}
	b.WriteByte(')')
	return b.String()
}
