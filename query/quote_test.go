package query

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

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
		if n := QuotedLen(tc.in); n != len(tc.want) {
			t.Errorf("QuotedLen(%q) = %d, want %d", tc.in, n, len(tc.want))
		}
	}
}

// Chunks keeps every key once, in order, and no run past either bound,
// whether the keys are short (the count binds), long (the bytes bind) or
// expand when quoted.
func TestChunks(t *testing.T) {
	long := func(i int) string {
		p := fmt.Sprintf("%05d'\\\x01", i)
		return p + strings.Repeat("\x02", 256-len(p))
	}
	for _, tc := range []struct {
		name   string
		n      int
		key    func(int) string
		quoted bool
		runs   int
	}{
		{"short", 12_001, func(i int) string { return fmt.Sprintf("HS-%06d", i) }, false, 3},
		{"short, quoted", 12_001, func(i int) string { return Quote(fmt.Sprintf("HS-%06d", i)) }, true, 3},
		{"256 bytes", 5_000, func(i int) string { return fmt.Sprintf("%05d", i) + strings.Repeat("x", 251) }, false, 10},
		{"256 bytes, escaped", 5_000, long, false, 39},
		{"256 bytes, escaped, quoted", 5_000, func(i int) string { return Quote(long(i)) }, true, 39},
		{"none", 0, nil, false, 0},
	} {
		keys := make([]string, tc.n)
		for i := range keys {
			keys[i] = tc.key(i)
		}
		var all []string
		runs := 0
		for run := range Chunks(keys, tc.quoted) {
			runs++
			lits := run
			if !tc.quoted {
				lits = make([]string, len(run))
				for i, k := range run {
					lits[i] = Quote(k)
				}
			}
			if b := len(strings.Join(lits, ", ")); len(run) > MaxKeys || b > MaxKeyBytes {
				t.Errorf("%s: a run of %d keys, %d bytes", tc.name, len(run), b)
			}
			all = append(all, run...)
		}
		if !slices.Equal(all, keys) {
			t.Errorf("%s: the runs do not give the keys back in order (%d of %d)", tc.name, len(all), len(keys))
		}
		if runs != tc.runs {
			t.Errorf("%s: %d runs, want %d", tc.name, runs, tc.runs)
		}
	}
	huge := []string{strings.Repeat("y", MaxKeyBytes+10), "z"}
	var got [][]string
	for run := range Chunks(huge, true) {
		got = append(got, run)
	}
	if len(got) != 2 || len(got[0]) != 1 {
		t.Errorf("a key longer than MaxKeyBytes: runs %d, want it alone", len(got))
	}
}
