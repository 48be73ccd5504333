package api

// Route is a registered route as the tests see it.
type Route struct {
	Method, Path string
	// Access is public, signedIn, scoped or admin.
	Access string
	Scope  string
	Switch string
}

// Routes lists what Register mounts.
func (a *API) Routes() []Route {
	names := map[access]string{public: "public", signedIn: "signedIn", scoped: "scoped", adminOnly: "admin"}
	var out []Route
	for _, rt := range a.routes() {
		out = append(out, Route{Method: rt.method, Path: rt.path, Access: names[rt.access], Scope: rt.scope, Switch: rt.apiSwitch})
	}
	return out
}

// OpenAPIDocument is the document GET /api/v1/openapi.json serves.
var OpenAPIDocument = openAPIDocument
