package api

import (
	"net/http"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/resource"
)

// access is what a route asks of its caller before its handler runs.
type access int

const (
	// public routes need no credentials (the OpenAPI document).
	public access = iota
	// signedIn routes need a valid bearer token (or HTTP Basic while it is
	// switched on) and no particular scope.
	signedIn
	// scoped routes need a token granting the route's scope; what the
	// caller may then do is the handler's business (docs/api.md: a scope is a
	// grant, not a right).
	scoped
	// adminOnly routes need a bearer token with scope admin and role admin.
	adminOnly
)

// route is one endpoint of the API. The list of them is the single source
// of what Register mounts and what the OpenAPI test checks the document
// against.
type route struct {
	method string
	// path is in ServeMux syntax, which is also OpenAPI's path template
	// syntax (/api/v1/tasks/{serial}).
	path   string
	access access
	scope  string
	// apiSwitch names the API switch that turns the route off; "" when
	// none does.
	apiSwitch string
	h         http.HandlerFunc
}

// routes lists every route of the API. The workflow, task, invoke and flow
// deploy routes exist only with an engine; the connection routes always
// do, answering 503 without a vault.
func (a *API) routes() []route {
	const admin = "/api/v1/admin"
	rs := []route{
		{method: "GET", path: "/api/v1/openapi.json", access: public, h: a.serveOpenAPI},
		{method: "GET", path: "/api/v1/me", access: signedIn, h: a.v.MeHandler().ServeHTTP},

		// The caller's vault connections. They are not behind the
		// workflow switch: disconnecting (revoking what a flow was
		// granted) stays possible while that API is off, and they need
		// the vault, not the engine.
		{method: "GET", path: "/api/v1/connections", access: scoped, scope: "workflows.read", h: a.listConnections},
		{method: "DELETE", path: "/api/v1/connections/{server}", access: scoped, scope: "workflows.read", h: a.deleteConnection},

		{method: "GET", path: admin + "/users", access: adminOnly, scope: "admin", h: a.listUsers},
		{method: "POST", path: admin + "/users", access: adminOnly, scope: "admin", h: a.createUser},
		{method: "GET", path: admin + "/users/{username}", access: adminOnly, scope: "admin", h: a.getUser},
		{method: "PATCH", path: admin + "/users/{username}", access: adminOnly, scope: "admin", h: a.patchUser},
		{method: "POST", path: admin + "/users/{username}/disable", access: adminOnly, scope: "admin", h: a.setUserDisabled(true)},
		{method: "POST", path: admin + "/users/{username}/enable", access: adminOnly, scope: "admin", h: a.setUserDisabled(false)},
		{method: "POST", path: admin + "/users/{username}/mfa/reset", access: adminOnly, scope: "admin", h: a.resetUserMFA},

		{method: "GET", path: admin + "/clients", access: adminOnly, scope: "admin", h: a.listClients},
		{method: "POST", path: admin + "/clients", access: adminOnly, scope: "admin", h: a.createClient},
		{method: "GET", path: admin + "/clients/{id}", access: adminOnly, scope: "admin", h: a.getClient},
		{method: "PATCH", path: admin + "/clients/{id}", access: adminOnly, scope: "admin", h: a.patchClient},
		{method: "DELETE", path: admin + "/clients/{id}", access: adminOnly, scope: "admin", h: a.deleteClient},
		{method: "POST", path: admin + "/clients/{id}/secret", access: adminOnly, scope: "admin", h: a.rotateClientSecret},

		{method: "GET", path: admin + "/trusted-issuers", access: adminOnly, scope: "admin", h: a.listIssuers},
		{method: "POST", path: admin + "/trusted-issuers", access: adminOnly, scope: "admin", h: a.createIssuer},
		{method: "GET", path: admin + "/trusted-issuers/{name}", access: adminOnly, scope: "admin", h: a.getIssuer},
		{method: "PUT", path: admin + "/trusted-issuers/{name}", access: adminOnly, scope: "admin", h: a.putIssuer},
		{method: "DELETE", path: admin + "/trusted-issuers/{name}", access: adminOnly, scope: "admin", h: a.deleteIssuer},
		{method: "POST", path: admin + "/trusted-issuers/{name}/test", access: adminOnly, scope: "admin", h: a.testIssuer},

		{method: "GET", path: admin + "/oauth-servers", access: adminOnly, scope: "admin", h: a.listOAuthServers},
		{method: "POST", path: admin + "/oauth-servers", access: adminOnly, scope: "admin", h: a.createOAuthServer},
		{method: "GET", path: admin + "/oauth-servers/{name}", access: adminOnly, scope: "admin", h: a.getOAuthServer},
		{method: "PUT", path: admin + "/oauth-servers/{name}", access: adminOnly, scope: "admin", h: a.putOAuthServer},
		{method: "DELETE", path: admin + "/oauth-servers/{name}", access: adminOnly, scope: "admin", h: a.deleteOAuthServer},
		{method: "POST", path: admin + "/oauth-servers/{name}/test", access: adminOnly, scope: "admin", h: a.testOAuthServer},

		{method: "GET", path: admin + "/api-switches", access: adminOnly, scope: "admin", h: a.getSwitches},
		{method: "PUT", path: admin + "/api-switches", access: adminOnly, scope: "admin", h: a.putSwitches},

		{method: "GET", path: admin + "/audit", access: adminOnly, scope: "admin", h: a.listAudit},

		// Named secrets of flows: write-only, never read back.
		{method: "GET", path: admin + "/secrets", access: adminOnly, scope: "admin", h: a.listSecrets},
		{method: "POST", path: admin + "/secrets", access: adminOnly, scope: "admin", h: a.postSecret},
		{method: "PUT", path: admin + "/secrets/{name}", access: adminOnly, scope: "admin", h: a.putSecret},
		{method: "DELETE", path: admin + "/secrets/{name}", access: adminOnly, scope: "admin", h: a.deleteSecret},
	}
	if a.engine == nil {
		return rs
	}
	const wf = SwitchWorkflow
	return append(rs,
		route{method: "GET", path: "/api/v1/workflows", access: scoped, scope: "workflows.read", apiSwitch: wf, h: a.listWorkflows},
		route{method: "GET", path: "/api/v1/workflows/{name}", access: scoped, scope: "workflows.read", apiSwitch: wf, h: a.getWorkflow},
		route{method: "POST", path: "/api/v1/workflows/{name}/instances", access: scoped, scope: "workflows.start", apiSwitch: wf, h: a.startInstance},
		route{method: "GET", path: "/api/v1/instances", access: scoped, scope: "workflows.read", apiSwitch: wf, h: a.listInstances},
		route{method: "GET", path: "/api/v1/instances/{id}", access: scoped, scope: "workflows.read", apiSwitch: wf, h: a.getInstance},
		route{method: "GET", path: "/api/v1/instances/{id}/history", access: scoped, scope: "workflows.read", apiSwitch: wf, h: a.instanceHistory},
		route{method: "POST", path: "/api/v1/instances/{id}/cancel", access: scoped, scope: "workflows.start", apiSwitch: wf, h: a.cancelInstance},
		route{method: "GET", path: "/api/v1/tasks", access: scoped, scope: "tasks", apiSwitch: wf, h: a.listTasks},
		route{method: "GET", path: "/api/v1/tasks/{serial}", access: scoped, scope: "tasks", apiSwitch: wf, h: a.getTask},
		route{method: "POST", path: "/api/v1/tasks/{serial}/actions/{action}", access: scoped, scope: "tasks", apiSwitch: wf, h: a.actOnTask},
		route{method: "POST", path: "/api/v1/flows/{name}/invoke", access: scoped, scope: "flows.invoke", apiSwitch: SwitchInvoke, h: a.invoke},
		// The signature is the webhook's credential; the engine checks it.
		route{method: "POST", path: "/hooks/{flow}/{name}", access: public, h: a.webhook},

		route{method: "GET", path: admin + "/flows", access: adminOnly, scope: "admin", h: a.listFlowVersions},
		route{method: "POST", path: admin + "/flows", access: adminOnly, scope: "admin", h: a.deployFlow},
		route{method: "GET", path: admin + "/flows/{name}", access: adminOnly, scope: "admin", h: a.getFlowVersion},
	)
}

// Register mounts every route of routes() on mux, and a JSON 404/405 for
// anything else under /api/v1/.
//
// Each route passes, outermost first: Cache-Control: no-store (answers
// describe one caller's objects, or secrets); its API switch; then the
// credentials check its access asks for (admin routes: bearer token,
// scope admin, role admin — a token scope is a grant, not a right).
func (a *API) Register(mux *http.ServeMux) {
	for _, rt := range a.routes() {
		mux.Handle(rt.method+" "+rt.path, a.chain(rt))
	}
	mux.Handle(apiRoot, noStore(apiFallback(mux)))
}

func (a *API) chain(rt route) http.Handler {
	var h http.Handler = withOrigin(rt.h)
	switch rt.access {
	case signedIn:
		h = a.Authenticate(h)
	case scoped:
		h = a.Authenticate(a.v.RequireScope(rt.scope, h))
	case adminOnly:
		h = a.admin(h)
	}
	if rt.apiSwitch != "" {
		h = a.Switch(rt.apiSwitch, h)
	}
	return noStore(h)
}

// withOrigin lets the changes a handler makes be audited with the request's
// address, user agent and the client of its token; it runs after the
// credentials check, which put the principal in the context.
func withOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var client string
		if p, ok := resource.PrincipalFrom(r.Context()); ok {
			client = p.ClientID
		}
		next.ServeHTTP(w, r.WithContext(audit.WithOrigin(r.Context(), r, client)))
	})
}

// noStore marks every answer uncacheable before the handler runs, so that
// answers written without writeJSON (204s, the middleware's refusals, an
// invoke's flow-made answer) carry it too. An invoke's return step may
// still set its own Cache-Control: the flow's author chose it.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
