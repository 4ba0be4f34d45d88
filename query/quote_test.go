package query

import "testing"

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"26740", `'26740'`},
		{"", `''`},
		{"a'b", `'a\'b'`},
		{`a\'b`, `'a\\\'b'`},
		{`x\`, `'x\\'`},
		{"' OR 1=1 --", `'\' OR 1=1 --'`},
		{"l1\nl2\r\t\x00", `'l1\nl2\r\t\0'`},
		{"bell\x07del\x7f", `'bell\x07del\x7F'`},
		{"Phường Sài Gòn", `'Phường Sài Gòn'`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
