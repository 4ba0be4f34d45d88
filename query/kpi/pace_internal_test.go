package kpi

import (
	"testing"
	"time"
)

// A family's loop waits only its debounce while the writers keep up, and
// until its paced start when they are behind.
func TestPace(t *testing.T) {
	now := time.Now()
	e := &Engine{cfg: Config{Debounce: 50 * time.Millisecond}, now: func() time.Time { return now },
		watermark: map[string]time.Time{"camera": now.Add(-300 * time.Millisecond), "dossier": now.Add(-30 * time.Second)}}
	next := time.Now().Add(800 * time.Millisecond)
	if got := e.pace("camera", next); got != 50*time.Millisecond {
		t.Errorf("writers keeping up: waits %v, want the debounce", got)
	}
	if got := e.pace("dossier", next); got < 700*time.Millisecond || got > 800*time.Millisecond {
		t.Errorf("writers 30 s behind: waits %v, want until the paced start (~800ms)", got)
	}
	if got := e.pace("dossier", time.Now().Add(-time.Second)); got != 50*time.Millisecond {
		t.Errorf("writers behind, paced start passed: waits %v, want the debounce", got)
	}
}
