//go:build loadtest

package app

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/server"
)

// registerLoadTestRoutes adds, to binaries built with -tags loadtest only,
// the /api/v1/me handler without the token middleware: the load script
// compares it with the real route to measure what validation costs, through
// the same server, logging and metrics.
func registerLoadTestRoutes(srv *server.Server, v *resource.Validator) {
	fixed := &resource.Principal{ID: "client:load", Kind: resource.KindClient, Subject: "load", ClientID: "load",
		Scopes: []string{"workflows.read"}, ExpiresAt: time.Now().Add(time.Hour)}
	me := v.MeHandler()
	// Profiles of the server under load, for finding where the time goes.
	srv.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	srv.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	srv.Handle("GET /loadtest/me-without-auth", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		me.ServeHTTP(w, r.WithContext(resource.WithPrincipal(r.Context(), fixed)))
	}))
}
