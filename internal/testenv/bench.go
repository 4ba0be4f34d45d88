package testenv

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MedianLoop runs f as the benchmark's loop, with prep run untimed before
// each run, and reports, besides the mean, the median of its runs
// (med-ms): a run on a shared machine may be slowed by others. prep may be
// nil.
func MedianLoop(b *testing.B, prep, f func()) {
	var laps []time.Duration
	for b.Loop() {
		if prep != nil {
			prep()
		}
		start := time.Now()
		f()
		laps = append(laps, time.Since(start))
	}
	slices.Sort(laps)
	b.ReportMetric(float64(laps[len(laps)/2])/float64(time.Millisecond), "med-ms")
}

// Sizes reads the comma-separated sizes of a benchmark from the environment
// variable env, def when it is unset.
func Sizes(b *testing.B, env, def string) []int {
	s := def
	if v := os.Getenv(env); v != "" {
		s = v
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s: %q is not a size", env, f)
		}
		out = append(out, n)
	}
	return out
}
