// Package pagestyle is the one stylesheet of every page Flowgate shows
// people: the provider's sign-in, consent and logout pages and the work
// portal. Pages link it (no inline style), so their Content-Security-Policy
// needs only style-src 'self'. It also holds the portal's one small script
// (ScriptPath), which pages load from the same origin (script-src 'self')
// and do without.
package pagestyle

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"sync"
)

// Path is where the stylesheet is served.
const Path = "/assets/flowgate.css"

//go:embed flowgate.css
var css []byte

//go:embed flowgate.js
var script []byte

// ScriptPath is where the script is served.
const ScriptPath = "/assets/flowgate.js"

// version is the stylesheet's content hash, computed once.
var version = sync.OnceValue(func() string { return hash(css) })

// scriptVersion is the script's content hash, computed once.
var scriptVersion = sync.OnceValue(func() string { return hash(script) })

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ScriptURL is what pages load: ScriptPath with the content hash.
func ScriptURL() string { return ScriptPath + "?v=" + scriptVersion() }

// ServeScript answers GET ScriptPath, cached like the stylesheet.
func ServeScript(w http.ResponseWriter, r *http.Request) {
	serve(w, r, "text/javascript; charset=utf-8", script, scriptVersion())
}

// URL is what pages link: Path with the content hash, so a browser may
// keep it for a year and still fetches a changed one at once.
func URL() string { return Path + "?v=" + version() }

// Serve answers GET Path: cacheable, revalidated by its ETag.
func Serve(w http.ResponseWriter, r *http.Request) {
	serve(w, r, "text/css; charset=utf-8", css, version())
}

func serve(w http.ResponseWriter, r *http.Request, contentType string, body []byte, version string) {
	etag := `"` + version + `"`
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", etag)
	if r.URL.Query().Get("v") == version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(body)
}
