package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebsocketWaitsForTheWatch: until the node follows the KPI values,
// /ws answers 503 with a Retry-After rather than take a client whose
// snapshot could be followed by a value the node never hears.
func TestWebsocketWaitsForTheWatch(t *testing.T) {
	a := &App{serving: make(chan struct{})}
	w := httptest.NewRecorder()
	a.serveWS(w, httptest.NewRequest("GET", "/ws?token=x", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "the node is starting") {
		t.Fatalf("before serving: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}
