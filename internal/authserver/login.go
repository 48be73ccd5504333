package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// loginPage is GET /login: the sign-in form for a pending authorization
// request, or, for Flowgate's own pages, one that returns to return_to
// (the home page when /login is opened by itself, say from a bookmark).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("request") {
		ret, ok := "/", true
		if q.Has("return_to") {
			ret, ok = SafeReturnPath(q.Get("return_to"))
		}
		if !ok {
			s.errorPage(w, http.StatusBadRequest, "This sign-in link is not valid.", "return_to must be a path on this server")
			return
		}
		if s.toDefaultProvider(w, r, "", ret) {
			return
		}
		s.render(w, http.StatusOK, "login", s.loginData(w, r, pageData{Title: "Sign in", Client: "Flowgate", ReturnTo: ret}))
		return
	}
	req, client, ok := s.pendingRequest(w, r, q.Get("request"))
	if !ok {
		return
	}
	if s.toDefaultProvider(w, r, req.ID, "") {
		return
	}
	s.render(w, http.StatusOK, "login", s.loginData(w, r, pageData{Title: "Sign in", Client: clientName(client), Request: req.ID, Username: req.LoginHint}))
}

// loginData completes the login page: its CSRF token, the identity
// providers' buttons and whether the password form shows.
func (s *Server) loginData(w http.ResponseWriter, r *http.Request, d pageData) pageData {
	d.CSRF = s.csrfToken(w, r)
	d.Providers = s.federationButtons(d.Request, d.ReturnTo)
	d.NoLocal = s.passwordOff()
	if !d.NoLocal && s.mfa.PasskeysOffered() {
		// A discoverable ceremony: the authenticator says whose passkey it
		// is. Its state is swept from the store after five minutes.
		id, opts, err := s.mfa.BeginPasskeyLogin(r.Context(), "")
		if err != nil {
			s.logger.Error("login: starting a passkey sign-in", "err", err)
		} else {
			d.PasskeyCeremony, d.PasskeyOptions, d.Script = id, string(opts), PathPasskeyScript
		}
	}
	return d
}

// passwordOff reports whether the password form is switched off: only
// with identity providers to sign in with instead (the configuration
// refuses local: false without one, and a zero Auth is not "off").
func (s *Server) passwordOff() bool {
	return !s.opts.Auth.Login.Local && s.opts.Federation != nil
}

// toDefaultProvider sends the sign-in straight to
// auth.login.default_identity_provider, when one is set.
func (s *Server) toDefaultProvider(w http.ResponseWriter, r *http.Request, request, returnTo string) bool {
	name := s.opts.Auth.Login.DefaultIdentityProvider
	if name == "" || s.opts.Federation == nil {
		return false
	}
	http.Redirect(w, r, loginWithURL(name, request, returnTo), http.StatusSeeOther)
	return true
}

// SafeReturnPath accepts a return_to that stays on this server: an
// absolute path, not "//host" or "/\host" (which browsers take as another
// host), without control characters. Anything else would make the login
// page an open redirect.
func SafeReturnPath(p string) (string, bool) {
	if len(p) == 0 || len(p) > 2048 || p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "", false
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	return p, true
}

// LoginURL is the sign-in page that returns to returnTo (a path on this
// server) once the user has signed in: for pages outside the OpenID flow,
// such as /connect, that need a signed-in user.
func LoginURL(returnTo string) string {
	return PathLogin + "?return_to=" + url.QueryEscape(returnTo)
}

// loginSubmit is POST /login: the password check, slowed by the sign-in
// throttle and audited either way, then a fresh session, and the browser
// goes on to consent or the client (or back to return_to).
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if s.passwordOff() {
		s.errorPage(w, http.StatusForbidden, "Signing in with a password is switched off here. Use your organisation's sign-in.", "auth.login.local is false")
		return
	}
	if !s.postedForm(w, r) {
		return
	}
	req, client, returnTo, ok := s.loginTarget(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if s.auditUnavailable() != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now. Try again in a minute.", "the audit log cannot be written")
		return
	}
	username := truncate(strings.TrimSpace(r.PostForm.Get("username")), 128)
	password := r.PostForm.Get("password")
	addr := remoteIP(r)
	page := pageData{Title: "Sign in", Client: clientName(client), Username: username, ReturnTo: returnTo}
	if req != nil {
		page.Request = req.ID
	}
	page = s.loginData(w, r, page)
	attempt, err := s.limits.Begin(ctx, username, addr)
	if err != nil {
		s.logger.Error("login: reading the sign-in throttle", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	defer attempt.End()
	if d := attempt.Wait; d > 0 {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: username, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "rate limited"})
		page.Error = fmt.Sprintf("Too many attempts, wait %d seconds.", waitSeconds(d))
		s.render(w, http.StatusTooManyRequests, "login", page)
		return
	}
	user, reason, err := s.verifyPassword(ctx, username, password)
	if err != nil {
		s.logger.Error("login: reading user", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	if reason != "" {
		if err := attempt.Fail(ctx); err != nil {
			s.logger.Error("login: recording a failed sign-in", "err", err)
		}
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginFailure, User: username, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: reason})
		page.Error = "Wrong username or password."
		if reason == "user disabled" {
			page.Error = "This account is disabled."
		}
		s.render(w, http.StatusUnauthorized, "login", page)
		return
	}
	need, err := s.mfaNeeded(r, user.Username, req)
	if err != nil {
		s.logger.Error("login: reading second factors", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	if need != "" {
		// The password was right; the sign-in completes (and the
		// throttle forgets this pair's failures) only after the second
		// factor.
		p := mfaPending{User: user.Username, ReturnTo: returnTo, Need: need}
		if req != nil {
			p.Request = req.ID
		}
		if err := s.startMFAStep(w, r, p); err != nil {
			s.logger.Error("login: starting the second step", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		}
		return
	}
	now := s.now()
	amr := []string{"pwd"}
	if err := s.startSession(w, r, user.Username, now, amr); err != nil {
		s.logger.Error("login: creating session", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	if err := attempt.Succeed(ctx); err != nil {
		s.logger.Error("login: clearing failed sign-ins", "err", err)
	}
	if req == nil {
		s.audit(ctx, r, store.AuditEvent{Event: audit.LoginSuccess, User: user.Username, Outcome: audit.OutcomeSuccess})
		redirect(w, r, returnTo)
		return
	}
	if err := s.st.CompleteAuthRequest(ctx, req.ID, user.Username, now, amr); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.LoginSuccess, User: user.Username, Client: client.ID, Outcome: audit.OutcomeSuccess})
	req.User, req.AuthTime, req.AMR, req.Done = user.Username, now, amr, true
	redirect(w, r, s.afterLogin(ctx, req, client))
}

// loginTarget reads where a sign-in goes on to: an OpenID authorization
// request (with its client) or, for Flowgate's own pages, a path on this
// server. It answers and returns false when neither is valid.
func (s *Server) loginTarget(w http.ResponseWriter, r *http.Request) (req *store.AuthRequest, client *store.Client, returnTo string, ok bool) {
	if id := r.PostForm.Get("request"); id != "" || !r.PostForm.Has("return_to") {
		req, client, ok = s.pendingRequest(w, r, id)
		return req, client, "", ok
	}
	if returnTo, ok = SafeReturnPath(r.PostForm.Get("return_to")); !ok {
		s.errorPage(w, http.StatusBadRequest, "This sign-in link is not valid.", "return_to must be a path on this server")
		return nil, nil, "", false
	}
	return nil, &store.Client{Name: "Flowgate"}, returnTo, true
}

// verifyPassword checks a username and password. A refusal is a reason for
// the audit log ("unknown user", "wrong password", "user disabled"); err is
// the store's failure. The password is verified even for unknown users
// (against a decoy), so the answer takes as long whether or not the account
// exists.
func (s *Server) verifyPassword(ctx context.Context, username, password string) (store.User, string, error) {
	user, err := s.st.GetUser(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, "", err
	}
	valid := s.hasher.Verify(password, user.PasswordHash) && err == nil
	switch {
	case err != nil:
		return user, "unknown user", nil
	case !valid:
		return user, "wrong password", nil
	case user.Disabled:
		return user, "user disabled", nil
	}
	return user, "", nil
}

// startSession creates a session for username and sets its cookie. The
// session id is fresh at every sign-in, and the request's old session is
// ended: no fixation.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, username string, now time.Time, amr []string) error {
	ctx := r.Context()
	sid := randomToken(32)
	if err := s.st.CreateSession(ctx, store.Session{IDHash: hashToken(sid), User: username, AuthTime: now, LastSeen: now,
		ExpiresAt: now.Add(s.opts.Auth.Session.IdleTimeout), AMR: amr}); err != nil {
		return err
	}
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		_ = s.st.DeleteSession(ctx, hashToken(old.Value))
	}
	s.setSessionCookie(w, sid)
	// A new session says nothing of an identity provider until the
	// federated sign-in sets it again, after this.
	if c, err := r.Cookie(idpCookie); err == nil && c.Value != "" {
		http.SetCookie(w, &http.Cookie{Name: idpCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	}
	return nil
}
