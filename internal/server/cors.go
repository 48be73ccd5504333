package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// CORS says which requests get cross-origin answers (docs/security.md,
// browser clients): requests to Paths (exact) or under Prefixes from an
// origin Allowed accepts. Credentials (cookies) are never allowed across
// origins, and no answer is ever "*": browser apps call with tokens, and
// each origin is named by a client.
type CORS struct {
	Paths    []string
	Prefixes []string
	Allowed  func(ctx context.Context, origin string) bool
}

// The methods and request headers a preflight allows, and the response
// headers a browser app may read.
const (
	corsMethods       = "GET, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, DPoP, Idempotency-Key"
	corsExposeHeaders = "WWW-Authenticate, DPoP-Nonce, Location, X-Request-Id, Retry-After"
)

// SetCORS turns CORS answers on; call before Serve.
func (s *Server) SetCORS(c CORS) { s.cors = &c }

func (c *CORS) covers(path string) bool {
	return slices.Contains(c.Paths, path) || slices.ContainsFunc(c.Prefixes, func(p string) bool { return strings.HasPrefix(path, p) })
}

// handle answers CORS for r: it adds the headers to w, and answers a
// preflight itself (true: nothing more to do). Preflights are answered
// before the router, which would say 405 to OPTIONS.
func (c *CORS) handle(w http.ResponseWriter, r *http.Request) bool {
	if c == nil || !c.covers(r.URL.Path) {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	allowed := origin != "" && c.Allowed != nil && c.Allowed(r.Context(), origin)
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		if !allowed {
			// No CORS headers: the browser refuses the real request.
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	return false
}
