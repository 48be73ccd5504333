// Package web serves Flowgate's browser endpoints outside the OpenID
// provider: the work portal (home, worklist, task form; pages.go,
// tasks.go) and the user login of oauth_user_login steps (docs/flows.md),
// GET /connect/{instance}/{step} and GET /oauth-callback.
//
// The sign-in is bound three ways before any token is stored: the state
// parameter is random, single use and short-lived; it is bound to the
// browser session that started it (a state replayed from another
// session, even the same user's, finds nothing and burns nothing); and
// only the instance's starter may start it, so the tokens stored are the
// starter's own.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/federation"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// Paths served.
const (
	PathConnect  = "/connect/{instance}/{step}"
	PathCallback = "/oauth-callback"
)

// stateLifetime bounds how long a user may take at the provider's pages.
const stateLifetime = 10 * time.Minute

// Sessions is what the pages need from the OpenID provider's browser
// sessions and page rendering (authserver.Server).
type Sessions interface {
	SignedIn(w http.ResponseWriter, r *http.Request) (store.Session, bool)
	MessagePage(w http.ResponseWriter, status int, title, message string)
	ErrorPage(w http.ResponseWriter, status int, message, detail string)
	// CSRFToken is the token every form carries (authserver.CheckCSRF
	// checks it).
	CSRFToken(w http.ResponseWriter, r *http.Request) string
}

// Engine is what the pages need from the flow engine.
type Engine interface {
	PendingConnect(ctx context.Context, instanceID, stepID string, c engine.Caller) (engine.PendingConnect, error)
	FinishConnect(ctx context.Context, res engine.ConnectResult) error
	ListTasks(ctx context.Context, c engine.Caller, all bool, status string, p store.Page) ([]store.Task, string, error)
	VisibleTask(ctx context.Context, serial int64, c engine.Caller) (store.Task, error)
	Act(ctx context.Context, serial int64, action string, data map[string]any, c engine.Caller) (store.Task, error)
	ListInstances(ctx context.Context, c engine.Caller, f store.InstanceFilter, p store.Page) ([]store.Instance, string, error)
	ListStartable(ctx context.Context, c engine.Caller, p store.Page) ([]*flow.Definition, string, error)
}

// Vault is what the pages need from the token vault.
type Vault interface {
	Client(ctx context.Context, server string) (*connectors.Client, error)
	Save(ctx context.Context, principal, server string, tok connectors.Token) error
}

// Options are what New needs.
type Options struct {
	Sessions Sessions
	Engine   Engine
	Vault    Vault
	States   store.ConnectStates
	// Users gives a signed-in user's roles (and whether the account is
	// still enabled) on every page request.
	Users store.Users
	// Operations serves the management site's dashboard, flows,
	// instances, API switches, audit log and keys (admin_operations.go).
	Operations Operations
	// Identity serves the management site's users, clients, trusted
	// issuers and OAuth servers pages; nil leaves them out.
	Identity *IdentityOptions
	// Federation lists and removes users' links to identity providers
	// and tests the providers; nil when none is configured.
	Federation *federation.Service
	Logger     *slog.Logger
	// Portal are the parts of the portal's flow, instance, connection
	// and account pages.
	Portal PortalOptions
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Handler serves the browser pages.
type Handler struct {
	o  Options
	rd *renderer
}

// New builds the handler; it fails only if the embedded pages do not
// parse.
func New(o Options) (*Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rd, err := newRenderer()
	if err != nil {
		return nil, err
	}
	return &Handler{o: o, rd: rd}, nil
}

// Register adds the routes to mux: the work portal's, then the
// management site's.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathConnect, h.connect)
	mux.HandleFunc("GET "+PathCallback, h.callback)
	h.registerPortal(mux)
	h.registerAdminOperations(mux)
	h.registerAdminIdentity(mux)
	h.registerAdminIdentityProviders(mux)
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// connect sends the signed-in starter to the provider's authorization
// endpoint for the step's server, scopes and prompt.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := h.o.Sessions.SignedIn(w, r)
	if !ok {
		noStoreRedirect(w, r, authserver.LoginURL(r.URL.RequestURI()))
		return
	}
	p, err := h.o.Engine.PendingConnect(ctx, r.PathValue("instance"), r.PathValue("step"), userCaller(sess))
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.o.Sessions.ErrorPage(w, http.StatusNotFound, "There is no sign-in for you at this link.", err.Error())
		return
	case errors.Is(err, engine.ErrNotPending):
		h.o.Sessions.ErrorPage(w, http.StatusConflict, "This sign-in is no longer pending: the flow has moved on.", err.Error())
		return
	case err != nil:
		h.internalError(w, "reading the pending sign-in", err)
		return
	}
	client, err := h.o.Vault.Client(ctx, p.Server)
	if err != nil {
		h.finish(w, r, engine.ConnectResult{PendingConnect: p, Status: engine.ConnectStatus(err), Error: err.Error()})
		return
	}
	state := randomToken()
	verifier := ""
	if client.Server().UsePKCE {
		verifier = connectors.NewVerifier()
	}
	usePrompt := p.UsePrompt
	target, err := client.AuthCodeURL(ctx, connectors.AuthRequest{State: state, PKCEVerifier: verifier, Scopes: p.Scopes, UsePrompt: &usePrompt})
	if err != nil {
		// The provider's metadata cannot be read: a connection error,
		// which the flow handles (status -3, docs/flows.md).
		h.finish(w, r, engine.ConnectResult{PendingConnect: p, Status: engine.ConnectStatus(err), Error: err.Error()})
		return
	}
	now := h.o.Now()
	err = h.o.States.CreateConnectState(ctx, store.ConnectState{
		StateHash: hashState(state), InstanceID: p.InstanceID, StepID: p.StepID, Seq: p.Seq, TaskSerial: p.TaskSerial,
		Principal: p.Principal, SessionHash: sess.IDHash, Server: p.Server, Verifier: verifier, Scopes: p.Scopes,
		ExpiresAt: now.Add(stateLifetime), CreatedAt: now,
	})
	if err != nil {
		h.internalError(w, "storing the sign-in state", err)
		return
	}
	noStoreRedirect(w, r, target)
}

// callback takes the provider's answer: the state must be one this browser
// session started and not used yet; then the code is exchanged, the tokens
// stored in the vault and the instance resumed with the outcome.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		h.o.Sessions.ErrorPage(w, http.StatusBadRequest, "This sign-in answer has no state parameter.", "")
		return
	}
	sess, ok := h.o.Sessions.SignedIn(w, r)
	if !ok {
		h.o.Sessions.ErrorPage(w, http.StatusBadRequest,
			"This sign-in must be finished in the browser session that started it; sign in to Flowgate and open the link from your worklist again.", "")
		return
	}
	cs, err := h.o.States.TakeConnectState(ctx, hashState(state), sess.IDHash, h.o.Now())
	if errors.Is(err, store.ErrNotFound) {
		h.o.Sessions.ErrorPage(w, http.StatusBadRequest,
			"This sign-in link is not valid: it has expired, was already used, or was started in another session.", "")
		return
	}
	if err != nil {
		h.internalError(w, "reading the sign-in state", err)
		return
	}
	res := engine.ConnectResult{PendingConnect: engine.PendingConnect{
		InstanceID: cs.InstanceID, StepID: cs.StepID, Seq: cs.Seq, TaskSerial: cs.TaskSerial,
		Principal: cs.Principal, Server: cs.Server, Scopes: cs.Scopes,
	}}
	if cs.Principal != userCaller(sess).ID {
		// The state is bound to this session, whose user started it;
		// a mismatch means the session changed hands. Change nothing.
		h.o.Sessions.ErrorPage(w, http.StatusBadRequest, "This sign-in belongs to another user.", "")
		return
	}
	if e := q.Get("error"); e != "" {
		res.Status = engine.ConnectStatus(&connectors.Error{Kind: kindOfAuthError(e), Server: cs.Server, Op: "authorize", Code: e})
		res.Error = fmt.Sprintf("the OAuth server answered %s", truncate(e, 64))
		if d := q.Get("error_description"); d != "" {
			res.Error += ": " + truncate(d, 200)
		}
		h.finish(w, r, res)
		return
	}
	code := q.Get("code")
	if code == "" {
		res.Status, res.Error = engine.ConnectStatus(nil), "the OAuth server's answer has neither code nor error"
		h.finish(w, r, res)
		return
	}
	client, err := h.o.Vault.Client(ctx, cs.Server)
	if err == nil {
		var tok connectors.Token
		tok, err = client.Exchange(ctx, code, cs.Verifier, cs.Scopes)
		if err == nil {
			// Stored before the flow sees it: the vault owns the
			// refresh token from now on.
			if err = h.o.Vault.Save(ctx, cs.Principal, cs.Server, tok); err == nil {
				res.Token = &tok
			} else {
				h.o.Logger.Error("connect: storing tokens", "server", cs.Server, "principal", cs.Principal, "err", err)
				err = errors.New("the tokens could not be stored")
			}
		}
	}
	if err != nil {
		res.Status, res.Error = engine.ConnectStatus(err), err.Error()
	}
	h.finish(w, r, res)
}

// kindOfAuthError classifies the error parameter of an authorization
// response (RFC 6749 §4.1.2.1).
func kindOfAuthError(code string) connectors.Kind {
	switch code {
	case "access_denied":
		return connectors.KindAccessDenied
	case "temporarily_unavailable", "server_error":
		return connectors.KindUnreachable
	case "invalid_scope":
		return connectors.KindInvalidScope
	}
	return connectors.KindOther
}

// finish resumes the instance with the outcome and tells the user; a
// sign-in made ahead from /connections has no instance and goes back
// there.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, res engine.ConnectResult) {
	if res.InstanceID == "" {
		if res.Token != nil {
			noStoreRedirect(w, r, PathConnections+"?connected="+url.QueryEscape(res.Server))
			return
		}
		h.o.Sessions.MessagePage(w, http.StatusOK, "Sign-in not completed",
			fmt.Sprintf("The sign-in to %s did not complete (%s). Nothing was stored.", res.Server, res.Error))
		return
	}
	err := h.o.Engine.FinishConnect(r.Context(), res)
	switch {
	case errors.Is(err, engine.ErrNotPending):
		h.o.Sessions.ErrorPage(w, http.StatusConflict, "The flow no longer waits for this sign-in.", err.Error())
		return
	case err != nil:
		h.internalError(w, "resuming the flow", err)
		return
	}
	if res.Token != nil {
		h.o.Sessions.MessagePage(w, http.StatusOK, "Signed in",
			fmt.Sprintf("You are connected to %s. The flow goes on; you can close this window.", res.Server))
		return
	}
	h.o.Sessions.MessagePage(w, http.StatusOK, "Sign-in not completed",
		fmt.Sprintf("The sign-in to %s did not complete (%s). The flow has been told.", res.Server, res.Error))
}

func (h *Handler) internalError(w http.ResponseWriter, doing string, err error) {
	h.o.Logger.Error("connect: "+doing, "err", err)
	h.o.Sessions.ErrorPage(w, http.StatusInternalServerError, "Something went wrong on our side; try again later.", "")
}

// noStoreRedirect is a 302 that no cache keeps and that sends no Referer
// onwards (the provider's URL carries the state).
func noStoreRedirect(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusFound)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
