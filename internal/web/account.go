package web

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/flow"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/vault"
)

// disconnectTimeout bounds a disconnect: the revocation at the provider
// and the store's writes.
const disconnectTimeout = 30 * time.Second

// connectionsPage is what /connections reads.
type connectionsPage struct {
	Connections []vault.Info
	// Reconnect maps a server to the link of the user's open task that
	// signs in to it again (the worklist's Reconnect).
	Reconnect map[string]string
	// Connectable are the servers the flows the user may start sign in to
	// as the user and that the user is not connected to: each with a
	// Connect button, so the sign-in can happen before a flow asks.
	Connectable []string
}

// userServers lists the OAuth servers the flows c may start reach as c: the
// servers of their oauth_user_login steps and of their http steps whose
// auth is as the starter. Those are the servers c may connect to ahead.
func (h *Handler) userServers(ctx context.Context, c engine.Caller) ([]string, error) {
	var out []string
	cursor := ""
	for {
		defs, next, err := h.o.Engine.ListStartable(ctx, c, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, d := range defs {
			d.Walk(func(s *flow.Step) {
				server := ""
				switch {
				case s.OAuthUserLogin != nil:
					server = s.OAuthUserLogin.Server
				case s.HTTP != nil && s.HTTP.Auth != nil && s.HTTP.Auth.As == flow.AuthAsStarter:
					server = s.HTTP.Auth.Server
				}
				if server != "" && !slices.Contains(out, server) {
					out = append(out, server)
				}
			})
		}
		if next == "" {
			break
		}
		cursor = next
	}
	slices.Sort(out)
	return out, nil
}

// connections is GET /connections: my connections from the vault, the
// same list as GET /api/v1/connections, never a token (vault.Info has
// none).
func (h *Handler) connections(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	list, err := h.o.Portal.Connections.List(r.Context(), u.caller.ID)
	if err != nil {
		h.pageError(w, u, "listing connections", err)
		return
	}
	page := connectionsPage{Connections: list, Reconnect: map[string]string{}}
	// A connection the provider refused is signed in again through the
	// connect task the engine put in the worklist; link to it here too.
	tasks, _, err := h.o.Engine.ListTasks(r.Context(), u.caller, false, store.TaskOpen, store.Page{Limit: store.MaxLimit})
	if err != nil {
		h.pageError(w, u, "listing tasks", err)
		return
	}
	for _, c := range list {
		for _, t := range tasks {
			if t.Type == store.TaskTypeConnect && t.ConnectURL != "" && t.Title == engine.ReconnectTitle(c.Server) {
				page.Reconnect[c.Server] = t.ConnectURL
			}
		}
	}
	servers, err := h.userServers(r.Context(), u.caller)
	if err != nil {
		h.pageError(w, u, "listing the flows' servers", err)
		return
	}
	for _, s := range servers {
		if h.hasNoConnection(list, s) {
			page.Connectable = append(page.Connectable, s)
		}
	}
	v := u.view("My connections", page)
	v.Nav = "connections"
	if s := r.URL.Query().Get("disconnected"); s != "" && h.hasNoConnection(list, s) {
		v.Notice = "Disconnected."
	}
	if s := r.URL.Query().Get("connected"); s != "" && !h.hasNoConnection(list, s) {
		v.Notice = "Connected to " + s + "."
	}
	h.render(w, http.StatusOK, "connections", v)
}

// hasNoConnection reports that server is not (or no longer) among list:
// the notice after a disconnect only says what is true.
func (h *Handler) hasNoConnection(list []vault.Info, server string) bool {
	for _, c := range list {
		if c.Server == server {
			return false
		}
	}
	return true
}

// disconnect is POST /connections/{server}/disconnect: the vault's
// Delete, the operation behind DELETE /api/v1/connections/{server}
// (tokens revoked at the provider where it can, the connection deleted
// even when revocation fails).
func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	server := r.PathValue("server")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), disconnectTimeout)
	defer cancel()
	_, revokeErr, err := h.o.Portal.Connections.Delete(ctx, u.caller.ID, server)
	if errors.Is(err, vault.ErrNotConnected) {
		h.notFound(w, u)
		return
	}
	if err != nil {
		h.pageError(w, u, "disconnecting", err)
		return
	}
	if revokeErr != nil {
		h.o.Logger.WarnContext(r.Context(), "connection deleted, but its tokens could not be revoked at the provider",
			"principal", u.caller.ID, "server", server, "err", revokeErr)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, PathConnections+"?disconnected="+url.QueryEscape(server), http.StatusSeeOther)
}

// connectAhead is POST /connections/{server}/connect: the user signs in
// at one of their flows' OAuth servers before a flow asks, through the same
// state, PKCE and callback as a flow's sign-in; the tokens go to the vault
// and the callback comes back to /connections.
func (h *Handler) connectAhead(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	server := r.PathValue("server")
	servers, err := h.userServers(ctx, u.caller)
	if err != nil {
		h.pageError(w, u, "listing the flows' servers", err)
		return
	}
	if !slices.Contains(servers, server) {
		// Only the servers the user's flows reach as the user: not a way
		// to collect tokens from any server an administrator set up.
		h.notFound(w, u)
		return
	}
	client, err := h.o.Vault.Client(ctx, server)
	if err != nil {
		h.pageError(w, u, "reading the OAuth server", err)
		return
	}
	state, verifier := randomToken(), ""
	if client.Server().UsePKCE {
		verifier = connectors.NewVerifier()
	}
	target, err := client.AuthCodeURL(ctx, connectors.AuthRequest{State: state, PKCEVerifier: verifier})
	if err != nil {
		h.statusPage(w, http.StatusBadGateway, u, "Cannot reach "+server, "Flowgate could not read how to sign in at "+server+": "+err.Error())
		return
	}
	now := h.o.Now()
	if err := h.o.States.CreateConnectState(ctx, store.ConnectState{
		StateHash: hashState(state), Principal: u.caller.ID, SessionHash: u.sess.IDHash, Server: server, Verifier: verifier,
		ExpiresAt: now.Add(stateLifetime), CreatedAt: now,
	}); err != nil {
		h.pageError(w, u, "storing the sign-in state", err)
		return
	}
	// A page with a link rather than a redirect: the pages allow forms to
	// go to Flowgate only (form-action 'self', which covers a form's
	// redirects too), and a link may leave. The page's script follows it.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	v := u.view("Sign in at "+server, continuePage{Server: server, URL: target,
		Message: "You are leaving Flowgate to sign in at " + server + "; you will come back to your connections."})
	v.Nav = "connections"
	h.render(w, http.StatusOK, "continue", v)
}

// continuePage is a page that sends the browser on to another site.
type continuePage struct {
	Server, URL, Message string
}

// accountPage is what /account reads.
type accountPage struct {
	Account  store.User
	Sessions []sessionRow
	// Links are my sign-in links (nil without identity providers).
	Links *linkSection
	// PasswordError and CurrentError are next to their fields.
	PasswordError, CurrentError string
	// MFA is the second-factor section.
	MFA mfaSection
}

// mfaSection is the second factor on /account: whether it is offered,
// enrolled or being enrolled (Secret, for typing into the app), the
// recovery codes left, and the codes of an enrolment just confirmed,
// shown this once.
type mfaSection struct {
	Offered, Enrolled bool
	Secret            string
	RecoveryLeft      int
	NewCodes          []string
	Error             string
	// PasskeysOffered shows the passkeys: the list (each with its remove
	// form) and the add form, which carries a fresh registration
	// ceremony (its handle and the browser's options, JSON).
	PasskeysOffered                 bool
	Passkeys                        []mfa.Passkey
	PasskeyCeremony, PasskeyOptions string
	PasskeyError                    string
	// PasskeyScript is the URL of the passkey forms' script.
	PasskeyScript string
}

// sessionRow is one of my browser sessions.
type sessionRow struct {
	store.Session
	Handle  string
	Current bool
}

// account is GET /account: my profile, the password form and my
// sessions.
func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	v := u.view("My account", nil)
	switch r.URL.Query().Get("done") {
	case "password":
		v.Notice = "Your password is changed."
	case "session":
		v.Notice = "The session is ended."
	case "passkey":
		v.Notice = "The passkey is added."
	case "passkey-removed":
		v.Notice = "The passkey is removed."
	}
	if r.URL.Query().Get("removed") == "1" {
		v.Notice = "The link was removed."
	}
	h.renderAccount(w, r, http.StatusOK, u, v, accountPage{})
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, u *user, v view, page accountPage) {
	acct, err := h.o.Portal.Accounts.GetUser(r.Context(), u.sess.User)
	if err != nil {
		h.pageError(w, u, "reading the account", err)
		return
	}
	sessions, err := h.o.Portal.Accounts.ListUserSessions(r.Context(), u.sess.User, h.o.Now())
	if err != nil {
		h.pageError(w, u, "listing sessions", err)
		return
	}
	page.Links, err = h.userLinks(r.Context(), u, u.sess.User, false)
	if err != nil {
		h.pageError(w, u, "listing sign-in links", err)
		return
	}
	acct.PasswordHash = ""
	page.Account = acct
	if m := h.o.Portal.MFA; m != nil && m.Offered() {
		page.MFA.Offered = true
		if page.MFA.Enrolled, err = m.HasTOTP(r.Context(), acct.Username); err != nil {
			h.pageError(w, u, "reading second factors", err)
			return
		}
		if page.MFA.Enrolled {
			page.MFA.RecoveryLeft, _ = m.RecoveryCodesLeft(r.Context(), acct.Username)
		} else if secret, err := m.Pending(r.Context(), acct.Username); err == nil {
			page.MFA.Secret = secret
		}
		if m.PasskeysOffered() {
			if err := h.passkeySection(r, &page.MFA, m, acct.Username); err != nil {
				h.pageError(w, u, "reading passkeys", err)
				return
			}
		}
	}
	for _, s := range sessions {
		page.Sessions = append(page.Sessions, sessionRow{Session: s, Handle: account.SessionHandle(s), Current: s.IDHash == u.sess.IDHash})
	}
	v.Data, v.Nav = page, "account"
	h.render(w, status, "account", v)
}

// changePassword is POST /account/password: the current password, then
// account.SetPassword, the operation of the admin API's password change
// (the same policy, audited as user.updated).
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	acct, err := h.o.Portal.Accounts.GetUser(ctx, u.sess.User)
	if err != nil {
		h.pageError(w, u, "reading the account", err)
		return
	}
	var page accountPage
	status := http.StatusBadRequest
	current, next := r.PostForm.Get("current_password"), r.PostForm.Get("new_password")
	if current == "" {
		page.CurrentError = "Enter your current password."
	} else {
		// Checking the current password is a sign-in: it is throttled
		// with the login page's and HTTP Basic's failures, so a session
		// left open cannot be used to guess it.
		addr, _ := audit.FromRequest(r)
		attempt, err := h.o.Portal.SignIns.Begin(ctx, acct.Username, addr)
		if err != nil {
			h.pageError(w, u, "reading the sign-in throttle", err)
			return
		}
		defer attempt.End()
		switch {
		case attempt.Wait > 0:
			status = http.StatusTooManyRequests
			page.CurrentError = fmt.Sprintf("Too many wrong passwords; wait %d seconds.", int(math.Ceil(attempt.Wait.Seconds())))
		case acct.PasswordHash == "" || !h.o.Portal.Hasher.Verify(current, acct.PasswordHash):
			if err := attempt.Fail(ctx); err != nil {
				h.o.Logger.Error("page: recording a failed password check", "err", err)
			}
			page.CurrentError = "This is not your current password."
		default:
			if err := attempt.Succeed(ctx); err != nil {
				h.o.Logger.Error("page: clearing failed sign-ins", "err", err)
			}
		}
	}
	if next == "" {
		page.PasswordError = "Enter a new password."
	} else if err := account.CheckPassword(next); err != nil {
		page.PasswordError = err.Error()
	}
	if page.CurrentError == "" && page.PasswordError == "" {
		err := account.SetPassword(ctx, h.o.Portal.Accounts, h.o.Portal.Audit, h.o.Portal.Hasher, u.caller.ID, u.sess.User, next)
		if err == nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, PathAccount+"?done=password", http.StatusSeeOther)
			return
		}
		h.pageError(w, u, "changing a password", err)
		return
	}
	h.renderAccount(w, r, status, u, u.view("My account", nil), page)
}

// endSession is POST /account/sessions/end: one of my sessions ended,
// as the management site ends a user's sessions (the store's session
// delete, audited).
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	handle := r.PostForm.Get("session")
	err := account.EndSession(ctx, h.o.Portal.Accounts, h.o.Portal.Audit, u.caller.ID, u.sess.User, handle, h.o.Now())
	if errors.Is(err, store.ErrNotFound) {
		h.statusPage(w, http.StatusNotFound, u, "No such session", fmt.Sprintf("You have no session %q; it may have ended already.", handle))
		return
	}
	if err != nil {
		h.pageError(w, u, "ending a session", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, PathAccount+"?done=session", http.StatusSeeOther)
}

// mfaService is the second factor when it is offered; otherwise it
// answers 404 and returns nil.
func (h *Handler) mfaService(w http.ResponseWriter, u *user) *mfa.Service {
	if m := h.o.Portal.MFA; m != nil && m.Offered() {
		return m
	}
	h.notFound(w, u)
	return nil
}

// mfaStart is POST /account/mfa/start: a new secret, unconfirmed, shown
// on /account as a QR code and as text until a code confirms it.
func (h *Handler) mfaStart(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	m := h.mfaService(w, u)
	if m == nil {
		return
	}
	if _, err := m.Begin(r.Context(), u.sess.User); err != nil && !errors.Is(err, mfa.ErrEnrolled) {
		h.pageError(w, u, "starting an enrolment", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, PathAccount+"#h-mfa", http.StatusSeeOther)
}

// mfaQR is GET /account/mfa/qr.png: the QR code of my enrolment in
// progress (404 when there is none).
func (h *Handler) mfaQR(w http.ResponseWriter, r *http.Request) {
	u := h.signedIn(w, r)
	if u == nil {
		return
	}
	if m := h.mfaService(w, u); m != nil {
		authserver.ServeQRCode(w, r, m, u.sess.User)
	}
}

// mfaConfirm is POST /account/mfa/confirm: the code from the app ends
// the enrolment, and the recovery codes are shown, this once. A wrong
// code counts as a failed sign-in in the throttle, as at sign-in.
func (h *Handler) mfaConfirm(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	m := h.mfaService(w, u)
	if m == nil {
		return
	}
	ctx := r.Context()
	addr, _ := audit.FromRequest(r)
	attempt, err := h.o.Portal.SignIns.Begin(ctx, u.sess.User, addr)
	if err != nil {
		h.pageError(w, u, "reading the sign-in throttle", err)
		return
	}
	defer attempt.End()
	var page accountPage
	status := http.StatusOK
	if attempt.Wait > 0 {
		status, page.MFA.Error = http.StatusTooManyRequests, fmt.Sprintf("Too many wrong codes; wait %d seconds.", int(math.Ceil(attempt.Wait.Seconds())))
		h.renderAccount(w, r, status, u, u.view("My account", nil), page)
		return
	}
	codes, err := m.Confirm(ctx, u.sess.User, r.PostForm.Get("code"))
	switch {
	case errors.Is(err, mfa.ErrWrongCode):
		if err := attempt.Fail(ctx); err != nil {
			h.o.Logger.Error("page: recording a failed code", "err", err)
		}
		status, page.MFA.Error = http.StatusBadRequest, "That code is not right. Enter the code the app shows now."
	case errors.Is(err, mfa.ErrNotEnrolled):
		status, page.MFA.Error = http.StatusConflict, "There is no set-up in progress. Start again."
	case err != nil:
		h.pageError(w, u, "confirming a second factor", err)
		return
	default:
		if err := attempt.Succeed(ctx); err != nil {
			h.o.Logger.Error("page: clearing failed sign-ins", "err", err)
		}
		page.MFA.NewCodes = codes
	}
	v := u.view("My account", nil)
	if codes != nil {
		v.Notice = "Your second factor is set up."
	}
	w.Header().Set("Cache-Control", "no-store")
	h.renderAccount(w, r, status, u, v, page)
}

// passkeySection fills in my passkeys and a fresh registration ceremony
// for the add form.
func (h *Handler) passkeySection(r *http.Request, sec *mfaSection, m *mfa.Service, user string) error {
	list, err := m.Passkeys(r.Context(), user)
	if err != nil {
		return err
	}
	id, opts, err := m.BeginPasskeyEnrol(r.Context(), user)
	if err != nil {
		return err
	}
	sec.PasskeysOffered, sec.Passkeys = true, list
	sec.PasskeyCeremony, sec.PasskeyOptions, sec.PasskeyScript = id, string(opts), authserver.PathPasskeyScript
	return nil
}

// passkeyAdd is POST /account/passkeys/add: the browser's answer to the
// registration ceremony of the add form, and the passkey's name.
func (h *Handler) passkeyAdd(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	m := h.mfaService(w, u)
	if m == nil {
		return
	}
	err := m.FinishPasskeyEnrol(r.Context(), u.sess.User, r.PostForm.Get("ceremony"), r.PostForm.Get("name"), []byte(r.PostForm.Get("credential")))
	var page accountPage
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, PathAccount+"?done=passkey#h-passkeys", http.StatusSeeOther)
		return
	case errors.Is(err, mfa.ErrBadPasskeyName):
		page.MFA.PasskeyError = "Give the passkey a name of 1 to 64 characters."
	case errors.Is(err, mfa.ErrPasskeyRefused):
		h.o.Logger.Info("page: passkey not added", "user", u.sess.User, "err", err)
		page.MFA.PasskeyError = "The passkey was not added: the browser's answer was not accepted. Try again."
	case errors.Is(err, mfa.ErrPasskeysOff):
		h.notFound(w, u)
		return
	default:
		h.pageError(w, u, "adding a passkey", err)
		return
	}
	h.renderAccount(w, r, http.StatusBadRequest, u, u.view("My account", nil), page)
}

// passkeyRemove is POST /account/passkeys/remove: one of my passkeys
// goes; it signs in no more.
func (h *Handler) passkeyRemove(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	m := h.mfaService(w, u)
	if m == nil {
		return
	}
	removed, err := m.RemovePasskey(r.Context(), u.sess.User, r.PostForm.Get("id"))
	if err != nil {
		h.pageError(w, u, "removing a passkey", err)
		return
	}
	if !removed {
		h.notFound(w, u)
		return
	}
	http.Redirect(w, r, PathAccount+"?done=passkey-removed#h-passkeys", http.StatusSeeOther)
}
