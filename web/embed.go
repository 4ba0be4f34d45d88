// Package web holds the built web UI — the operations wall, the leader's
// tablet and the SQL console — embedded in the ioc binary. The sources are
// the npm project in this folder (`npm run build` writes dist/); a binary
// built before the UI serves a page saying how to build it.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist is the built UI: index.html and assets/. Built reports whether it
// holds a build.
func Dist() (fsys fs.FS, built bool) {
	sub, _ := fs.Sub(dist, "dist")
	_, err := fs.Stat(sub, "index.html")
	return sub, err == nil
}
