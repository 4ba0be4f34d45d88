package kpi

import (
	"testing"
	"time"
)

// A family's loop waits its debounce while the writers keep up (nothing
// after an idle spell as long), and until its paced start when they are
// behind.
func TestPace(t *testing.T) {
	now := time.Now()
	e := &Engine{cfg: Config{Debounce: 50 * time.Millisecond}, now: func() time.Time { return now },
		watermark: map[string]time.Time{"camera": now.Add(-300 * time.Millisecond), "dossier": now.Add(-30 * time.Second)}}
	next := time.Now().Add(800 * time.Millisecond)
	if got := e.pace("camera", next, 10*time.Millisecond); got != 50*time.Millisecond {
		t.Errorf("writers keeping up, a recomputation just ended: waits %v, want the debounce", got)
	}
	if got := e.pace("camera", next, 50*time.Millisecond); got != 0 {
		t.Errorf("writers keeping up, loop idle for the debounce: waits %v, want nothing", got)
	}
	for _, idle := range []time.Duration{0, time.Minute} {
		if got := e.pace("dossier", next, idle); got < 700*time.Millisecond || got > 800*time.Millisecond {
			t.Errorf("writers 30 s behind, idle %v: waits %v, want until the paced start (~800ms)", idle, got)
		}
		if got := e.pace("dossier", time.Now().Add(-time.Second), idle); got != 50*time.Millisecond {
			t.Errorf("writers behind, paced start passed, idle %v: waits %v, want the debounce", idle, got)
		}
	}
}
