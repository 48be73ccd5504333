// Package api is Flowgate's REST API (docs/api.md): the Workflow REST API
// (workflows, instances with their process flow monitor, tasks), flow
// invoke, the caller's connections to OAuth servers (the token vault),
// and the admin API (/api/v1/admin/…: users, clients, trusted issuers,
// OAuth servers, flow deploys, API switches and the audit log), with its
// OpenAPI description at /api/v1/openapi.json. Admin routes are
// for callers whose bearer token grants scope admin and who hold role
// admin. It also owns the API switches (the configuration's apis section): the Switch
// middleware that turns the workflow and invoke APIs off, and
// Authenticate, which adds legacy HTTP Basic to the bearer-token check
// when apis.basic_auth is on.
//
// Every route is declared once, in routes(): its method, pattern, scope,
// switch and handler. Register mounts that list and the OpenAPI test
// compares it with the document, so neither can drift from the other.
//
// Every answer is JSON. Errors are {"error", "error_description"} with a
// "field" naming the request field at fault where there is one; lists are
// {"items": [...], "next_cursor": "…" | null}. Secrets (passwords, client
// secrets, tokens) are never returned, except a client secret Flowgate has
// just generated, which is shown once.
package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/throttle"
	"github.com/flowgate/flowgate/internal/vault"
)

// Options is what New needs. Store, Hasher, Ring and Validator are
// required.
type Options struct {
	Store store.Store
	// Hasher hashes passwords set through the API and checks HTTP Basic
	// passwords.
	Hasher *credential.Hasher
	// Ring makes the keyed hashes client secrets are stored under.
	Ring *keyring.Ring
	// Validator checks bearer tokens on every route.
	Validator *resource.Validator
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// HTTPClient makes the requests of the trusted issuer and OAuth
	// server tests; default: a client with a 10 s timeout under
	// egress.Default().
	HTTPClient *http.Client
	// PublicURL is Flowgate's public URL; an OAuth server created
	// without redirect_uri gets PublicURL + "/oauth-callback", as in the
	// configuration file.
	PublicURL string
	// Auditor receives failed HTTP Basic sign-ins and the changes made
	// through the API, with who made them; nil records nothing.
	Auditor Auditor
	// SwitchRefresh is how long a server trusts its cached API switches
	// before reading them again (default 5 s): how long it takes several
	// servers on one database to converge after a change.
	SwitchRefresh time.Duration
	// Engine runs flows: the Workflow REST API, invoke and flow deploys
	// go through it. Nil leaves those routes out.
	Engine *engine.Engine
	// ShowDetailedErrors lets a failed invoke's answer carry the step's
	// error message; off, it names the failing step only.
	ShowDetailedErrors bool
	// Vault holds the callers' connections to OAuth servers: the
	// /api/v1/connections routes list and remove them. Nil leaves those
	// routes in place, answering 503.
	Vault *vault.Vault
}

// Auditor is where the API records sign-in failures and changes (the
// audit writer).
type Auditor interface {
	audit.Recorder
	// Healthy reports whether recorded events are being written; while it
	// fails, HTTP Basic sign-ins are refused, as the login page's are.
	Healthy() error
}

// API serves the admin API. It is safe for concurrent use.
type API struct {
	st        store.Store
	hasher    *credential.Hasher
	ring      *keyring.Ring
	v         *resource.Validator
	log       *slog.Logger
	client    *http.Client
	publicURL string
	// openapi is the document served at /api/v1/openapi.json.
	openapi  []byte
	switches *switchCache
	limits   *throttle.Throttle
	auditor  Auditor
	engine   *engine.Engine
	changes  *admin.Service
	detailed bool
	vault    *vault.Vault
}

// New builds the API. It panics when a required option is missing: that
// is a wiring mistake no caller can recover from.
func New(o Options) *API {
	if o.Store == nil || o.Hasher == nil || o.Ring == nil || o.Validator == nil {
		panic("api: Options need Store, Hasher, Ring and Validator")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = egress.Default().Client(10 * time.Second)
	}
	if o.SwitchRefresh <= 0 {
		o.SwitchRefresh = 5 * time.Second
	}
	// The embedded document is checked by the tests: failing here is a
	// build that should not have shipped.
	doc, err := servedOpenAPI(o.PublicURL)
	if err != nil {
		panic("api: " + err.Error())
	}
	return &API{
		openapi:   doc,
		st:        o.Store,
		hasher:    o.Hasher,
		ring:      o.Ring,
		v:         o.Validator,
		log:       o.Logger,
		client:    o.HTTPClient,
		publicURL: o.PublicURL,
		switches:  newSwitchCache(o.SwitchRefresh),
		limits:    throttle.New(o.Store, throttle.Options{}),
		auditor:   o.Auditor,
		engine:    o.Engine,
		changes:   &admin.Service{Store: o.Store, Ring: o.Ring, Audit: o.Auditor},
		detailed:  o.ShowDetailedErrors,
		vault:     o.Vault,
	}
}

const apiRoot = "/api/v1/"

// apiFallback answers what no API route matched with the API's JSON error
// shape: 405 with Allow when the path exists for other methods, else 404
// naming the path. (The mux's own answers are plain text, and with this
// catch-all registered it would no longer send 405 by itself.)
func apiFallback(mux *http.ServeMux) http.Handler {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != apiRoot && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")), "")
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API at %s", r.URL.Path), "")
	})
}

// admin wraps h in the bearer-token check, the admin scope and the admin
// role, in that order, so that each refusal says what is missing.
func (a *API) admin(h http.Handler) http.Handler {
	return a.v.Middleware(a.v.RequireScope(resource.AdminScope, requireAdmin(h)))
}

// requireAdmin refuses principals that may not administer
// (Principal.CanAdminister). The token's scope let the caller reach the
// API; the role says whether the caller may do this.
func requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := resource.PrincipalFrom(r.Context())
		if !ok || !p.CanAdminister() {
			id := "the caller"
			if ok {
				id = p.ID
			}
			writeError(w, http.StatusForbidden, "forbidden",
				id+" does not hold role "+resource.AdminRole+": the token grants scope admin, but a token scope is a grant, not a right", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}
