package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// pageAnswer makes serveOp answer the op call of ctx with an error page.
func (s *Server) pageAnswer(ctx context.Context, status int, msg, detail string) error {
	exchangeOf(ctx).page = func(w http.ResponseWriter) { s.errorPage(w, status, msg, detail) }
	return errPage()
}

// verifyAuthRequest finds the client of an authorization request and
// checks its redirect URI (the only registered one when the request names
// none). Failures answer with an error page, never a redirect.
func (s *Server) verifyAuthRequest(ctx context.Context, d *oidc.AuthRequest) (store.Client, error) {
	client, err := s.st.GetClient(ctx, d.ClientID)
	if errors.Is(err, store.ErrNotFound) || d.ClientID == "" {
		return store.Client{}, s.pageAnswer(ctx, http.StatusBadRequest, "The application that sent you here is not registered.", "unknown client_id")
	}
	if err != nil {
		s.logger.Error("authorize: reading client", "err", err)
		return store.Client{}, s.pageAnswer(ctx, http.StatusInternalServerError, "The request cannot be handled right now.", "")
	}
	if d.RedirectURI == "" && len(client.RedirectURIs) == 1 {
		d.RedirectURI = client.RedirectURIs[0]
	}
	if !slices.Contains(client.RedirectURIs, d.RedirectURI) {
		return store.Client{}, s.pageAnswer(ctx, http.StatusBadRequest, "The application sent you here with a return address it has not registered.", "redirect_uri is not registered for this client")
	}
	return client, nil
}

// authorize is the authorization endpoint (RFC 6749 §4.1, OIDC Core
// §3.1.2) once op has parsed the request and accepted client and redirect
// URI. Its checks read the parameters as sent (q), since op has already
// dropped scopes it does not know. It returns where to send the browser.
func (s *Server) authorize(ctx context.Context, client *store.Client, d *oidc.AuthRequest, q url.Values) string {
	redirectURI, state := d.RedirectURI, d.State
	fail := func(code, desc string) string {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.AuthorizeFailure, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: code + ": " + desc})
		return errorURL(redirectURI, state, s.issuer, code, desc)
	}
	if q.Get("response_type") != "code" {
		return fail("unsupported_response_type", "only response_type=code is supported")
	}
	if !slices.Contains(client.GrantTypes, string(oidc.GrantTypeCode)) {
		return fail("unauthorized_client", "the client may not use the authorization code flow")
	}
	if q.Get("request") != "" || q.Get("request_uri") != "" {
		return fail("request_not_supported", "request objects are not supported")
	}
	scopes := strings.Fields(q.Get("scope"))
	for _, sc := range scopes {
		if !slices.Contains(client.Scopes, sc) {
			return fail("invalid_scope", "scope "+strconv.Quote(truncate(sc, 64))+" is not allowed for this client")
		}
	}
	// op accepts plain; plain protects nothing, so it is refused.
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fail("invalid_request", "code_challenge_method without code_challenge")
	case challenge == "" && client.TokenEndpointAuthMethod == string(oidc.AuthMethodNone):
		return fail("invalid_request", "PKCE (S256) is required for public clients")
	case challenge != "" && method != "S256":
		return fail("invalid_request", "only the S256 code_challenge_method is accepted")
	case challenge != "" && (len(challenge) != 43 || strings.Trim(challenge, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != ""):
		return fail("invalid_request", "code_challenge is not a base64url SHA-256")
	}
	prompt := strings.Fields(q.Get("prompt"))
	for _, p := range prompt {
		if p != "none" && p != "login" && p != "consent" && p != "select_account" {
			return fail("invalid_request", "unsupported prompt value")
		}
	}
	if slices.Contains(prompt, "none") && len(prompt) > 1 {
		return fail("invalid_request", "prompt=none cannot be combined")
	}
	maxAge := int64(-1)
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fail("invalid_request", "max_age must be a non-negative integer")
		}
		maxAge = n
	}
	now := s.now()
	req := store.AuthRequest{
		ID: randomToken(24), ClientID: client.ID, RedirectURI: redirectURI, Scopes: scopes, State: state,
		Nonce: d.Nonce, ResponseType: "code", CodeChallenge: challenge, CodeChallengeMethod: method,
		Prompt: prompt, MaxAge: maxAge, LoginHint: truncate(d.LoginHint, 128), CreatedAt: now, ExpiresAt: now.Add(authRequestTTL),
	}
	if err := s.st.CreateAuthRequest(ctx, req); err != nil {
		s.logger.Error("authorize: storing request", "err", err)
		return fail("server_error", "")
	}
	x := exchangeOf(ctx)
	sess, ok := s.currentSession(ctx, x.w, x.r)
	reauth := slices.Contains(prompt, "login") || !s.opts.Auth.Session.SSO ||
		(ok && maxAge >= 0 && now.Sub(sess.AuthTime) > time.Duration(maxAge)*time.Second)
	if ok && !reauth {
		if err := s.st.CompleteAuthRequest(ctx, req.ID, sess.User, sess.AuthTime, sess.AMR); err != nil {
			return fail("server_error", "")
		}
		req.User, req.AuthTime, req.AMR, req.Done = sess.User, sess.AuthTime, sess.AMR, true
		return s.afterLogin(ctx, &req, client)
	}
	if slices.Contains(prompt, "none") {
		_ = s.st.DeleteAuthRequest(ctx, req.ID)
		return fail("login_required", "the user is not signed in")
	}
	return PathLogin + "?request=" + url.QueryEscape(req.ID)
}

// afterLogin asks for consent when needed, then issues the code; it
// returns where to send the browser.
func (s *Server) afterLogin(ctx context.Context, req *store.AuthRequest, client *store.Client) string {
	user, err := s.st.GetUser(ctx, req.User)
	if err != nil || user.Disabled {
		_ = s.st.DeleteAuthRequest(ctx, req.ID)
		return errorURL(req.RedirectURI, req.State, s.issuer, "access_denied", "the user cannot sign in")
	}
	if client.Consent != "admin" {
		granted, err := s.st.GetConsent(ctx, req.User, client.ID)
		if err != nil {
			return errorURL(req.RedirectURI, req.State, s.issuer, "server_error", "")
		}
		missing := slices.ContainsFunc(req.Scopes, func(sc string) bool { return !slices.Contains(granted, sc) })
		if missing || slices.Contains(req.Prompt, "consent") {
			if slices.Contains(req.Prompt, "none") {
				_ = s.st.DeleteAuthRequest(ctx, req.ID)
				return errorURL(req.RedirectURI, req.State, s.issuer, "consent_required", "the user has not consented")
			}
			return PathConsent + "?request=" + url.QueryEscape(req.ID)
		}
	}
	return s.issueCode(ctx, req)
}

// issueCode stores a code for req and returns the client's redirect URI
// carrying it.
func (s *Server) issueCode(ctx context.Context, req *store.AuthRequest) string {
	code := randomToken(32)
	now := s.now()
	family := randomToken(16)
	err := s.st.CreateAuthCode(ctx, store.AuthCode{
		Hash: hashToken(code), ClientID: req.ClientID, RedirectURI: req.RedirectURI, User: req.User, Scopes: req.Scopes,
		Nonce: req.Nonce, CodeChallenge: req.CodeChallenge, CodeChallengeMethod: req.CodeChallengeMethod,
		AuthTime: req.AuthTime, AMR: req.AMR, AccessJTI: familyJTI(family), FamilyID: family,
		CreatedAt: now, ExpiresAt: now.Add(codeTTL),
	})
	if err != nil {
		s.logger.Error("authorize: storing code", "err", err)
		return errorURL(req.RedirectURI, req.State, s.issuer, "server_error", "")
	}
	_ = s.st.DeleteAuthRequest(ctx, req.ID)
	u, _ := url.Parse(req.RedirectURI)
	q := u.Query()
	q.Set("code", code)
	if req.State != "" {
		q.Set("state", req.State)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// redirect sends the browser on with a 302.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// currentSession returns the live session of the request's cookie and
// moves its idle expiry.
func (s *Server) currentSession(ctx context.Context, w http.ResponseWriter, r *http.Request) (store.Session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return store.Session{}, false
	}
	now := s.now()
	h := hashToken(c.Value)
	sess, err := s.st.GetSession(ctx, h, now)
	if err != nil {
		return store.Session{}, false
	}
	exp := now.Add(s.opts.Auth.Session.IdleTimeout)
	if err := s.st.TouchSession(ctx, h, now, exp); err == nil {
		s.setSessionCookie(w, c.Value)
	}
	return sess, true
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string) {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if s.opts.Auth.Session.Cookie != "session" {
		c.MaxAge = int(s.opts.Auth.Session.IdleTimeout / time.Second)
	}
	http.SetCookie(w, c)
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// pendingRequest loads the request named by the form or query.
func (s *Server) pendingRequest(w http.ResponseWriter, r *http.Request, id string) (*store.AuthRequest, *store.Client, bool) {
	ctx := r.Context()
	req, err := s.st.GetAuthRequest(ctx, id, s.now())
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "This sign-in link has expired. Go back to the application and start again.", "unknown or expired authorization request")
		return nil, nil, false
	}
	client, err := s.st.GetClient(ctx, req.ClientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "The application is no longer registered.", "")
		return nil, nil, false
	}
	return &req, &client, true
}

func clientName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("request") == "" && q.Has("return_to") {
		ret, ok := SafeReturnPath(q.Get("return_to"))
		if !ok {
			s.errorPage(w, http.StatusBadRequest, "This sign-in link is not valid.", "return_to must be a path on this server")
			return
		}
		s.render(w, http.StatusOK, "login", pageData{Title: "Sign in", Client: "Flowgate", CSRF: s.csrfToken(w, r), ReturnTo: ret})
		return
	}
	req, client, ok := s.pendingRequest(w, r, q.Get("request"))
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "login", pageData{Title: "Sign in", Client: clientName(client), CSRF: s.csrfToken(w, r), Request: req.ID, Username: req.LoginHint})
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

// SignedIn returns the live browser session of the request, moving its
// idle expiry, for pages outside the OpenID flow (/connect,
// /oauth-callback). IDHash identifies the session without its secret.
func (s *Server) SignedIn(w http.ResponseWriter, r *http.Request) (store.Session, bool) {
	return s.currentSession(r.Context(), w, r)
}

// MessagePage answers with a plain page: a title and a sentence, with the
// headers every page carries. For outcomes of /connect and
// /oauth-callback.
func (s *Server) MessagePage(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, "message", pageData{Title: title, Detail: message})
}

// ErrorPage answers with the error page; detail shows only with
// auth.show_detailed_errors.
func (s *Server) ErrorPage(w http.ResponseWriter, status int, message, detail string) {
	s.errorPage(w, status, message, detail)
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	// Either an OpenID authorization request or, for Flowgate's own pages,
	// a path to return to.
	var (
		req      *store.AuthRequest
		client   = &store.Client{Name: "Flowgate"}
		returnTo string
	)
	if id := r.PostForm.Get("request"); id != "" || !r.PostForm.Has("return_to") {
		var ok bool
		if req, client, ok = s.pendingRequest(w, r, id); !ok {
			return
		}
	} else {
		var ok bool
		if returnTo, ok = SafeReturnPath(r.PostForm.Get("return_to")); !ok {
			s.errorPage(w, http.StatusBadRequest, "This sign-in link is not valid.", "return_to must be a path on this server")
			return
		}
	}
	ctx := r.Context()
	if s.auditUnavailable() != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now. Try again in a minute.", "the audit log cannot be written")
		return
	}
	username := truncate(strings.TrimSpace(r.PostForm.Get("username")), 128)
	password := r.PostForm.Get("password")
	addr := remoteIP(r)
	page := pageData{Title: "Sign in", Client: clientName(client), CSRF: s.csrfToken(w, r), Username: username, ReturnTo: returnTo}
	if req != nil {
		page.Request = req.ID
	}
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
	user, err := s.st.GetUser(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.logger.Error("login: reading user", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	// Verify even for unknown users (against a decoy), so the answer
	// takes as long whether or not the account exists.
	valid := s.hasher.Verify(password, user.PasswordHash) && err == nil
	reason := ""
	switch {
	case err != nil:
		reason = "unknown user"
	case !valid:
		reason = "wrong password"
	case user.Disabled:
		reason = "user disabled"
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
	now := s.now()
	sid := randomToken(32)
	amr := []string{"pwd"}
	if err := s.st.CreateSession(ctx, store.Session{IDHash: hashToken(sid), User: user.Username, AuthTime: now, LastSeen: now,
		ExpiresAt: now.Add(s.opts.Auth.Session.IdleTimeout), AMR: amr}); err != nil {
		s.logger.Error("login: creating session", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	if err := attempt.Succeed(ctx); err != nil {
		s.logger.Error("login: clearing failed sign-ins", "err", err)
	}
	// A fresh session id at every login: no fixation.
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		_ = s.st.DeleteSession(ctx, hashToken(old.Value))
	}
	s.setSessionCookie(w, sid)
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

// sessionRequest loads a request that a signed-in user may act on: the
// session's user must be the one who authenticated for it.
func (s *Server) sessionRequest(w http.ResponseWriter, r *http.Request, id string) (*store.AuthRequest, *store.Client, bool) {
	req, client, ok := s.pendingRequest(w, r, id)
	if !ok {
		return nil, nil, false
	}
	sess, live := s.currentSession(r.Context(), w, r)
	if !req.Done || !live || sess.User != req.User {
		s.errorPage(w, http.StatusForbidden, "Your session has ended. Go back to the application and start again.", "no session for this request")
		return nil, nil, false
	}
	return req, client, true
}

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	req, client, ok := s.sessionRequest(w, r, r.URL.Query().Get("request"))
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "consent", pageData{Title: "Allow access?", Client: clientName(client), CSRF: s.csrfToken(w, r),
		Request: req.ID, Username: req.User, Scopes: req.Scopes})
}

func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	req, client, ok := s.sessionRequest(w, r, r.PostForm.Get("request"))
	if !ok {
		return
	}
	ctx := r.Context()
	if r.PostForm.Get("decision") != "approve" {
		_ = s.st.DeleteAuthRequest(ctx, req.ID)
		s.audit(ctx, r, store.AuditEvent{Event: audit.ConsentDenied, User: req.User, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: "denied"})
		redirectError(w, r, req.RedirectURI, req.State, s.issuer, "access_denied", "the user denied access")
		return
	}
	granted, err := s.st.GetConsent(ctx, req.User, client.ID)
	if err == nil {
		for _, sc := range req.Scopes {
			if !slices.Contains(granted, sc) {
				granted = append(granted, sc)
			}
		}
		err = s.st.PutConsent(ctx, req.User, client.ID, granted)
	}
	if err != nil {
		s.logger.Error("consent: storing", "err", err)
		redirectError(w, r, req.RedirectURI, req.State, s.issuer, "server_error", "")
		return
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.ConsentGranted, User: req.User, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "granted: " + truncate(strings.Join(req.Scopes, " "), 200)})
	redirect(w, r, s.issueCode(ctx, req))
}

// endSession is RP-initiated logout, once op has parsed the request: it
// ends the browser session and returns where to send the browser. Refusals,
// the confirmation page and the signed-out page answer with a page (serveOp
// renders it).
//
// A link to this endpoint can be put on any site, so ending a live session
// takes proof that the user or their relying party asked for it: an
// id_token_hint issued in this very session (its sub and auth_time), or
// the POST of the confirmation page with its CSRF token. Anything else is
// answered with that page. With no live session there is nothing to end,
// and the browser goes on at once.
func (s *Server) endSession(ctx context.Context, d *oidc.EndSessionRequest) (string, error) {
	clientID := d.ClientID
	var hint idTokenHint
	if raw := d.IdTokenHint; raw != "" {
		var err error
		hint, err = s.parseIDTokenHint(ctx, raw)
		if err != nil || (clientID != "" && clientID != hint.aud) {
			return "", s.pageAnswer(ctx, http.StatusBadRequest, "The logout request is not valid.", "id_token_hint is not an ID token of this issuer for this client")
		}
		clientID = hint.aud
	}
	target := s.opts.Auth.LogoffRedirectURL
	if pl := d.PostLogoutRedirectURI; pl != "" {
		client, err := s.st.GetClient(ctx, clientID)
		if clientID == "" || err != nil || !slices.Contains(client.PostLogoutRedirectURIs, pl) {
			return "", s.pageAnswer(ctx, http.StatusBadRequest, "The application asked to return to an address it has not registered.", "post_logout_redirect_uri is not registered for this client")
		}
		u, _ := url.Parse(pl)
		if st := d.State; st != "" {
			v := u.Query()
			v.Set("state", st)
			u.RawQuery = v.Encode()
		}
		target = u.String()
	}
	x := exchangeOf(ctx)
	if sess, live := s.sessionOf(ctx, x.r); live && !hint.names(sess) && !(x.r.Method == http.MethodPost && checkCSRF(x.r)) {
		// The confirmation posts the request back, without the hint: a
		// token has no place in a page, and its client is client_id.
		var fields []hiddenField
		for _, f := range []hiddenField{{"client_id", clientID}, {"post_logout_redirect_uri", d.PostLogoutRedirectURI}, {"state", d.State}} {
			if f.Value != "" {
				fields = append(fields, f)
			}
		}
		x.page = func(w http.ResponseWriter) {
			s.render(w, http.StatusOK, "logout", pageData{Title: "Sign out?", CSRF: s.csrfToken(w, x.r), Username: sess.User, Action: PathEndSession, Fields: fields})
		}
		return "", errPage()
	}
	user := s.logout(ctx, x.w, x.r)
	s.audit(ctx, nil, store.AuditEvent{Event: audit.Logout, User: user, Client: clientID, Outcome: audit.OutcomeSuccess})
	if target == "" {
		x.page = func(w http.ResponseWriter) {
			s.render(w, http.StatusOK, "logout", pageData{Title: "Signed out", Done: true})
		}
		return "", errPage()
	}
	return target, nil
}

// sessionOf returns the live session of the request's cookie, leaving its
// idle expiry alone.
func (s *Server) sessionOf(ctx context.Context, r *http.Request) (store.Session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return store.Session{}, false
	}
	sess, err := s.st.GetSession(ctx, hashToken(c.Value), s.now())
	return sess, err == nil
}

// logout deletes the session of the request and clears the cookie; it
// returns who was signed in.
func (s *Server) logout(ctx context.Context, w http.ResponseWriter, r *http.Request) string {
	sess, _ := s.sessionOf(ctx, r)
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		_ = s.st.DeleteSession(ctx, hashToken(c.Value))
	}
	s.clearSessionCookie(w)
	return sess.User
}

// idTokenHint is what RP-initiated logout reads from an ID token of ours.
type idTokenHint struct {
	aud, sub string
	authTime int64
}

// names reports whether the hint was issued in sess: to its user, for its
// sign-in (every ID token of a session carries the session's auth_time).
func (h idTokenHint) names(sess store.Session) bool {
	return h.sub != "" && h.sub == sess.User && h.authTime == sess.AuthTime.Unix()
}

// parseIDTokenHint verifies an ID token of ours (expired is fine, OIDC
// RP-Initiated Logout §2), in the one spelling that was signed. An access
// token, signed by the same issuer and carrying a sub and auth_time too, is
// not one.
func (s *Server) parseIDTokenHint(ctx context.Context, raw string) (idTokenHint, error) {
	var c struct {
		jwt.RegisteredClaims
		AuthTime int64 `json:"auth_time"`
	}
	tok, err := s.parseOwn(ctx, raw, &c, jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}), jwt.WithoutClaimsValidation())
	if err == nil {
		if typ, _ := tok.Header["typ"].(string); strings.EqualFold(typ, "at+jwt") {
			err = errNotOurs
		}
	}
	if err != nil || c.Issuer != s.issuer || len(c.Audience) != 1 {
		return idTokenHint{}, errNotOurs
	}
	return idTokenHint{aud: c.Audience[0], sub: c.Subject, authTime: c.AuthTime}, nil
}

func (s *Server) logoutPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "logout", pageData{Title: "Sign out", CSRF: s.csrfToken(w, r)})
}

func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	ctx := r.Context()
	user := s.logout(ctx, w, r)
	s.audit(ctx, r, store.AuditEvent{Event: audit.Logout, User: user, Outcome: audit.OutcomeSuccess})
	if target := s.opts.Auth.LogoffRedirectURL; target != "" {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "logout", pageData{Title: "Signed out", Done: true})
}

// postedForm reads a page's POSTed form and checks its CSRF token,
// answering with an error page when either fails.
func (s *Server) postedForm(w http.ResponseWriter, r *http.Request) bool {
	if err := parseForm(w, r); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.", err.Error())
		return false
	}
	if !checkCSRF(r) {
		s.errorPage(w, http.StatusForbidden, "The form has expired. Go back and try again.", "CSRF token mismatch")
		return false
	}
	return true
}
