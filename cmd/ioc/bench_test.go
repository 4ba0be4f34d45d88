package main

import (
	"testing"
	"time"
)

// A pass of the bench's pool has ids of its own and times moved back by
// whole spans; the first pass keeps the times.
func TestPassBody(t *testing.T) {
	body := []byte(`[{"id":"a-1","time":"2026-11-23T01:24:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},` +
		`{"id":"a-2","time":"2026-11-23T01:25:00.5+07:00"}]`)
	got := string(passBody(body, "p", 2, 20*time.Minute))
	want := `[{"id":"p2-a-1","time":"2026-11-23T00:44:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},` +
		`{"id":"p2-a-2","time":"2026-11-23T00:45:00.5+07:00"}]`
	if got != want {
		t.Errorf("pass 2:\n got %s\nwant %s", got, want)
	}
	if got := string(passBody(body, "w", 0, 20*time.Minute)); got != `[{"id":"w0-a-1","time":"2026-11-23T01:24:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},{"id":"w0-a-2","time":"2026-11-23T01:25:00.5+07:00"}]` {
		t.Errorf("pass 0: %s", got)
	}
}
