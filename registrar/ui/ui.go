// Package ui is the registrar's web dashboard: hand-written HTML, CSS
// and JavaScript embedded in the binary (no build step, no CDN: it works
// offline). The page reads the admin API (/v1/status, /v1/members,
// /v1/enrp/peers, /v1/pools, /v1/pools/{handle}) and follows the change
// stream (/v1/watch, Server-Sent Events) to update itself live; its
// charts are plain SVG.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard's files; mount it under /ui/ with the
// prefix stripped.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		files.ServeHTTP(w, req)
	})
}
