package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of routes() (SPEC §6). It is
// written by hand, as the contract callers read; the tests check that it
// lists exactly the registered routes with their scopes and switches, and
// validate every answer they receive against its schemas.
//
//go:embed openapi.json
var openAPIDocument []byte

// serveOpenAPI serves GET /api/v1/openapi.json, without credentials: a
// client needs it to learn how to get them.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}
