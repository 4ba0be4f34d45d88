package testenv

import (
	"testing"
	"time"
)

func TestPastMidnight(t *testing.T) {
	for _, tc := range []struct {
		utc  string
		want time.Duration
	}{
		{"2026-11-24T16:58:00Z", 0},                // 23:58 ICT, 2 min left: more than 1 min
		{"2026-11-24T16:59:30Z", 32 * time.Second}, // 23:59:30 ICT
		{"2026-11-24T17:00:00Z", 0},                // midnight itself: a whole day ahead
		{"2026-12-31T16:59:59Z", 3 * time.Second},  // across a year
		{"2026-11-24T05:00:00Z", 0},                // noon
	} {
		now, _ := time.Parse(time.RFC3339, tc.utc)
		if got := pastMidnight(now, time.Minute); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.utc, got, tc.want)
		}
	}
}
