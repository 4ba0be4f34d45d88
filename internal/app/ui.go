package app

import (
	"bytes"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vn-ioc/ioc/web"
)

// The routes of the web UI: its pages (one index.html) and its assets.
var (
	uiPages  = []string{"/", "/wall/{dashboard}", "/tablet", "/tablet/*", "/console"}
	uiAssets = "/assets/*"
	uiPaths  = append(slices.Clone(uiPages), uiAssets)
)

// uiRoutes serves the embedded web UI: one page (index.html) for the wall,
// the tablet and the console, and its content-hashed assets. The page
// reads its token from the URL fragment or a sign-in form and talks to the
// API and the websocket of this node; nothing is fetched from elsewhere.
func uiRoutes(r chi.Router) {
	fsys, built := web.Dist()
	index, _ := fs.ReadFile(fsys, "index.html")
	start := time.Now()
	page := func(w http.ResponseWriter, req *http.Request) {
		uiHeaders(w)
		if !built {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("The web UI is not in this binary: build it with `make ui` (npm), then rebuild ioc.\n"))
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, req, "index.html", start, bytes.NewReader(index))
	}
	for _, p := range uiPages {
		r.Get(p, page)
	}
	assets := http.FileServer(http.FS(fsys))
	r.Get(uiAssets, func(w http.ResponseWriter, req *http.Request) {
		uiHeaders(w)
		// Asset names carry a hash of their content.
		if strings.Contains(path.Base(req.URL.Path), "-") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		assets.ServeHTTP(w, req)
	})
}

// uiHeaders keeps the page to its own origin: scripts, styles and
// connections to this node only (the websocket included).
func uiHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
