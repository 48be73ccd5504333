// Package scim is user provisioning (docs/api.md): a SCIM 2.0 service
// provider under /scim/v2/ for identity providers (Entra ID, Okta) that
// create, update, deactivate and delete Flowgate users and put them in
// groups, which are Flowgate roles. The protocol (routing, discovery
// endpoints, schema validation, filters, PATCH parsing, the error format)
// is github.com/elimity-com/scim; this package maps its resources onto
// Flowgate's users and roles.
//
// Every change of a user goes through internal/account, as the CLI and the
// admin API's do: audited, and active: false is exactly `flowgate user
// disable` (sessions ended, refresh tokens revoked). Which users and
// groups SCIM manages is kept in the store (store.SCIMResources): users
// and roles created by other means stay out of its sight.
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

// Root is the service's path.
const Root = "/scim/v2/"

// Scope is the token scope provisioning needs, besides role admin.
const Scope = "scim"

// Audit events of changes to groups (user changes are account's).
const (
	EventGroupCreated = "group.created"
	EventGroupUpdated = "group.updated"
	EventGroupRemoved = "group.removed"
	// EventUserReleased is a user no longer provisioned (SCIM DELETE):
	// the account stays, disabled.
	EventUserReleased = "user.released"
)

// Store is what provisioning needs of the store.
type Store interface {
	account.Store
	store.SCIMResources
}

// Options is what New needs; Store, Validator and Enabled are required.
type Options struct {
	Store     Store
	Validator *resource.Validator
	// Enabled reports whether the API switch apis.scim is on.
	Enabled func(ctx context.Context) bool
	// Auditor records every change; nil records nothing.
	Auditor   audit.Recorder
	PublicURL string
	Logger    *slog.Logger
	// Registerer receives the operation counters; nil registers none.
	Registerer prometheus.Registerer
}

// Service serves /scim/v2/.
type Service struct {
	o   Options
	srv elimity.Server
	ops *prometheus.CounterVec
}

// New builds the service. It panics when a required option is missing, a
// wiring mistake.
func New(o Options) *Service {
	if o.Store == nil || o.Validator == nil || o.Enabled == nil {
		panic("scim: Options need Store, Validator and Enabled")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{o: o, ops: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowgate_scim_operations_total",
		Help: "SCIM provisioning requests by resource, method and status class.",
	}, []string{"resource", "method", "status"})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.ops)
	}
	users := &userHandler{s: s}
	groups := &groupHandler{s: s}
	srv, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			DocumentationURI: optional.NewString(strings.TrimRight(o.PublicURL, "/") + "/docs/api.md"),
			AuthenticationSchemes: []elimity.AuthenticationScheme{{
				Type: elimity.AuthenticationTypeOauthBearerToken, Name: "OAuth Bearer Token",
				Description: "An access token with scope scim, for a client or user with role admin.", Primary: true,
			}},
			MaxResults:       maxResults,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []elimity.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
				Description: optional.NewString("A Flowgate user"), Schema: userSchema(), Handler: users},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups",
				Description: optional.NewString("A Flowgate role and the users who hold it"), Schema: schema.CoreGroupSchema(), Handler: groups},
		},
	}, elimity.WithBaseURL(strings.TrimRight(o.PublicURL, "/")+strings.TrimSuffix(Root, "/")), elimity.WithLogger(errLogger{o.Logger}))
	if err != nil {
		panic("scim: " + err.Error())
	}
	s.srv = srv
	return s
}

// maxResults is the most resources one list answer holds.
const maxResults = 200

// errLogger passes the library's error reports to slog.
type errLogger struct{ l *slog.Logger }

func (e errLogger) Error(args ...any) { e.l.Error("SCIM", "detail", args) }

// userSchema is the core User schema cut down to what a Flowgate user
// has: userName, name, displayName, emails and active. PATCH and filters
// naming anything else are refused (invalidPath, invalidFilter), and so
// is a POST or PUT that sets it (see strictBody), so that nothing an
// identity provider sends is silently dropped.
func userSchema() schema.Schema {
	s := schema.CoreUserSchema()
	var keep []schema.CoreAttribute
	for _, a := range s.Attributes {
		switch a.Name() {
		case "userName", "name", "displayName", "emails", "active":
			keep = append(keep, a)
		}
	}
	s.Attributes = keep
	return s
}

// Register mounts the service on mux.
func (s *Service) Register(mux *http.ServeMux) {
	var h http.Handler = http.StripPrefix("/scim", http.HandlerFunc(s.serve))
	h = s.o.Validator.Middleware(s.o.Validator.RequireScope(Scope, requireAdmin(h)))
	mux.Handle(Root, s.switched(h))
}

// switched answers 403 in the SCIM error format while apis.scim is off.
func (s *Service) switched(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !s.o.Enabled(r.Context()) {
			writeError(w, scimerr.ScimError{Status: http.StatusForbidden,
				Detail: "user provisioning is disabled (an administrator can switch it on: apis.scim, or PUT /api/v1/admin/api-switches)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAdmin refuses callers without role admin: the scim scope lets an
// identity provider's client reach the API; the role says it may change
// users.
func requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := resource.PrincipalFrom(r.Context())
		if !ok || !p.HasRole(resource.AdminRole) {
			writeError(w, scimerr.ScimError{Status: http.StatusForbidden,
				Detail: "provisioning takes role " + resource.AdminRole + " besides scope " + Scope})
			return
		}
		next.ServeHTTP(w, r.WithContext(audit.WithOrigin(r.Context(), r, p.ClientID)))
	})
}

func writeError(w http.ResponseWriter, e scimerr.ScimError) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

// statusRecorder remembers the status for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// maxBody bounds a request body.
const maxBody = 1 << 20

// serve normalises what identity providers send that the SCIM library
// would refuse, then hands the request to it.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		kind := "other"
		for _, k := range []string{"Users", "Groups", "Schemas", "ResourceTypes", "ServiceProviderConfig"} {
			if strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/v2/"), k) {
				kind = k
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.ops.WithLabelValues(kind, r.Method, statusClass(status)).Inc()
	}()
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(rec, scimerr.ScimError{Status: http.StatusRequestEntityTooLarge, Detail: "the body is over 1 MiB"})
			return
		}
		body, serr := normalise(r, body)
		if serr != nil {
			writeError(rec, *serr)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	s.srv.ServeHTTP(rec, r)
}

func statusClass(code int) string {
	return string(rune('0'+code/100)) + "xx"
}
