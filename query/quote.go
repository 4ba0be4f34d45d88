package query

import (
	"fmt"
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

// MaxKeys bounds the keys one statement lists in an IN (…) of literals:
// ClickHouse's max_query_size is 256 KiB by default.
const MaxKeys = 5000

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
