package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/pagestyle"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/throttle"
	"github.com/flowgate/flowgate/internal/vault"
)

// Paths of the portal's pages beyond home and tasks.
const (
	PathFlows         = "/flows"
	PathFlow          = "/flows/{name}"
	PathInstances     = "/instances"
	PathInstance      = "/instances/{id}"
	PathCancel        = "/instances/{id}/cancel"
	PathConnections   = "/connections"
	PathDisconnect    = "/connections/{server}/disconnect"
	PathConnectAhead  = "/connections/{server}/connect"
	PathAccount       = "/account"
	PathPassword      = "/account/password"
	PathEndSession    = "/account/sessions/end"
	PathMFAStart      = "/account/mfa/start"
	PathMFAQR         = "/account/mfa/qr.png"
	PathMFAConfirm    = "/account/mfa/confirm"
	PathPasskeyAdd    = "/account/passkeys/add"
	PathPasskeyRemove = "/account/passkeys/remove"
)

// PortalEngine is what the portal's flow and instance pages need of the
// engine beyond Engine: the operations behind the Workflow REST API's
// start, read and cancel.
type PortalEngine interface {
	StartableWorkflow(ctx context.Context, name string, c engine.Caller) (*flow.Definition, error)
	Definition(ctx context.Context, name string, version int) (*flow.Definition, error)
	StartInstance(ctx context.Context, req engine.StartRequest) (engine.Started, error)
	VisibleInstance(ctx context.Context, id string, c engine.Caller) (store.Instance, error)
	Cancel(ctx context.Context, id string, c engine.Caller) (store.Instance, error)
	// Children lists the instances an instance's flow, parallel and
	// foreach steps started, oldest first; History pages through its step
	// records merged with those of its branch instances, as the API's
	// history; CurrentSteps lists the steps it and its branch instances
	// are at. The caller has checked that the user may see it.
	ChildInstances(ctx context.Context, id string) ([]store.Instance, error)
	History(ctx context.Context, id string, p store.Page) ([]engine.HistoryRecord, string, error)
	CurrentSteps(ctx context.Context, in store.Instance) ([]engine.CurrentStep, error)
}

// Connections is what /connections needs of the token vault: the same
// list and disconnect as /api/v1/connections.
type Connections interface {
	List(ctx context.Context, principal string) ([]vault.Info, error)
	Delete(ctx context.Context, principal, server string) (revoked bool, revokeErr error, err error)
}

// AccountStore is what /account needs of the store: the accounts (the
// operations of internal/account) and the user's browser sessions.
type AccountStore interface {
	account.Store
	ListUserSessions(ctx context.Context, user string, now time.Time) ([]store.Session, error)
	DeleteSession(ctx context.Context, idHash string) error
}

// PortalOptions are the parts the portal's pages for everyone need
// beyond Options.
type PortalOptions struct {
	// Engine also reads histories: step records as stored, masked by the
	// engine before they were written, exactly as the API shows them.
	Engine      PortalEngine
	Connections Connections
	Accounts    AccountStore
	Hasher      *credential.Hasher
	Audit       audit.Recorder
	// SignIns throttles the password form's check of the current
	// password with the failed sign-ins of the login page and HTTP Basic
	// (their state is in the store).
	SignIns *throttle.Throttle
	// MFA is the second factor people enrol on /account; nil shows no
	// second-factor section.
	MFA *mfa.Service
}

// registerPortal adds the pages for everyone signed in.
func (h *Handler) registerPortal(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathHome, h.home)
	mux.HandleFunc("GET "+PathTasks, h.tasks)
	mux.HandleFunc("GET "+PathTask, h.task)
	mux.HandleFunc("POST "+PathTask, withOrigin(h.act))
	mux.HandleFunc("GET "+PathFlows, h.flows)
	mux.HandleFunc("GET "+PathFlow, h.flowDetail)
	mux.HandleFunc("POST "+PathFlow, withOrigin(h.start))
	mux.HandleFunc("GET "+PathInstances, h.instances)
	mux.HandleFunc("GET "+PathInstance, h.instance)
	mux.HandleFunc("POST "+PathCancel, withOrigin(h.cancel))
	mux.HandleFunc("GET "+PathConnections, h.connections)
	mux.HandleFunc("POST "+PathDisconnect, withOrigin(h.disconnect))
	mux.HandleFunc("POST "+PathConnectAhead, withOrigin(h.connectAhead))
	mux.HandleFunc("GET "+PathAccount, h.account)
	mux.HandleFunc("POST "+PathPassword, withOrigin(h.changePassword))
	mux.HandleFunc("POST "+PathEndSession, withOrigin(h.endSession))
	mux.HandleFunc("POST "+PathMFAStart, withOrigin(h.mfaStart))
	mux.HandleFunc("GET "+PathMFAQR, h.mfaQR)
	mux.HandleFunc("POST "+PathMFAConfirm, withOrigin(h.mfaConfirm))
	mux.HandleFunc("POST "+PathPasskeyAdd, withOrigin(h.passkeyAdd))
	mux.HandleFunc("POST "+PathPasskeyRemove, withOrigin(h.passkeyRemove))
	mux.HandleFunc("GET "+pagestyle.ScriptPath, pagestyle.ServeScript)
	// Home is "/{$}", so every other path nobody serves lands here: the
	// layout's 404 page, with the menu when someone is signed in. (The
	// API keeps its own JSON fallback under /api/v1/.)
	mux.HandleFunc("/", h.unknownPath(mux))
}

// withOrigin gives the changes a form makes the request's address and
// user agent in the audit log, as the API's routes do.
func withOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(audit.WithOrigin(r.Context(), r, "")))
	}
}

// unknownPath answers a path no page has. A path served for other
// methods (GET /oauth2/token) still gets the mux's 405 with Allow, which
// a catch-all would otherwise take away.
func (h *Handler) unknownPath(mux *http.ServeMux) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h.notFoundPage(w, r)
	}
}

// notFoundPage is the 404 page, with the menu when someone is signed in.
func (h *Handler) notFoundPage(w http.ResponseWriter, r *http.Request) {
	var u *user
	if sess, ok := h.o.Sessions.SignedIn(w, r); ok {
		u = &user{sess: sess, caller: userCaller(sess), csrf: h.o.Sessions.CSRFToken(w, r)}
	}
	h.notFound(w, u)
}
