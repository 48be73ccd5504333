package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/mfa"
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
	mode := q.Get("response_mode")
	if !responseModeOK(mode) {
		mode = "" // the refusal itself goes back the default way
	}
	fail := func(code, desc string) string {
		s.audit(ctx, nil, store.AuditEvent{Event: audit.AuthorizeFailure, Client: client.ID, Outcome: audit.OutcomeFailure, Detail: code + ": " + desc})
		return s.errorResponse(redirectURI, mode, state, code, desc)
	}
	if !responseModeOK(q.Get("response_mode")) {
		return fail("invalid_request", "response_mode must be query, fragment or form_post")
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
	resources := q["resource"]
	for _, r := range resources {
		if err := s.checkResource(client, r); err != nil {
			return fail("invalid_target", "resource "+strconv.Quote(truncate(r, 128))+" is not registered for this client")
		}
	}
	// RFC 9449 §10: the code is bound to this DPoP key's thumbprint (the
	// base64url SHA-256 of its JWK, 43 characters).
	jkt := q.Get("dpop_jkt")
	if jkt != "" {
		if raw, err := base64.RawURLEncoding.DecodeString(jkt); err != nil || len(raw) != sha256.Size {
			return fail("invalid_request", "dpop_jkt must be a JWK SHA-256 thumbprint, base64url-encoded")
		}
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
		ResponseMode: mode, Resource: resources, ACRValues: acrValues(q.Get("acr_values")), DPoPJKT: jkt,
	}
	if err := s.st.CreateAuthRequest(ctx, req); err != nil {
		s.logger.Error("authorize: storing request", "err", err)
		return fail("server_error", "")
	}
	x := exchangeOf(ctx)
	sess, ok := s.currentSession(ctx, x.w, x.r)
	reauth := slices.Contains(prompt, "login") || !s.opts.Auth.Session.SSO ||
		(ok && maxAge >= 0 && now.Sub(sess.AuthTime) > time.Duration(maxAge)*time.Second) ||
		// A client asking for a second factor steps up a session that
		// signed in without one.
		(ok && s.mfa.Offered() && slices.Contains(req.ACRValues, mfa.ACRMFA) && !mfaSatisfied(sess.AMR))
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
		return s.errorTo(req, "access_denied", "the user cannot sign in")
	}
	if client.Consent != "admin" {
		granted, err := s.st.GetConsent(ctx, req.User, client.ID)
		if err != nil {
			return s.errorTo(req, "server_error", "")
		}
		missing := slices.ContainsFunc(req.Scopes, func(sc string) bool { return !slices.Contains(granted, sc) })
		if missing || slices.Contains(req.Prompt, "consent") {
			if slices.Contains(req.Prompt, "none") {
				_ = s.st.DeleteAuthRequest(ctx, req.ID)
				return s.errorTo(req, "consent_required", "the user has not consented")
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
		Resource: req.Resource, DPoPJKT: req.DPoPJKT, CreatedAt: now, ExpiresAt: now.Add(codeTTL),
	})
	if err != nil {
		s.logger.Error("authorize: storing code", "err", err)
		return s.errorTo(req, "server_error", "")
	}
	_ = s.st.DeleteAuthRequest(ctx, req.ID)
	params := url.Values{"code": {code}, "iss": {s.issuer}}
	if req.State != "" {
		params.Set("state", req.State)
	}
	return authResponse(req.RedirectURI, req.ResponseMode, params)
}

// errorResponse is an OAuth error (with iss, RFC 9207) going back to a
// registered redirect URI in the response mode asked for.
func (s *Server) errorResponse(redirectURI, mode, state, code, desc string) string {
	params := url.Values{"error": {code}, "iss": {s.issuer}}
	if desc != "" {
		params.Set("error_description", desc)
	}
	if state != "" {
		params.Set("state", state)
	}
	return authResponse(redirectURI, mode, params)
}

// errorTo is errorResponse for a pending authorization request.
func (s *Server) errorTo(req *store.AuthRequest, code, desc string) string {
	return s.errorResponse(req.RedirectURI, req.ResponseMode, req.State, code, desc)
}

// redirect sends the browser on with a 302, or answers with the
// auto-submitting page of a form_post response.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(target, formPostMarker) {
		writeFormPost(w, target)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
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

// clientName is how the pages name a client to the user.
func clientName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// acrValues reads acr_values, bounded (at most 10 values of 64 bytes) as
// it is stored with the request; only "mfa" means anything here.
func acrValues(v string) []string {
	var out []string
	for _, a := range strings.Fields(v) {
		if len(out) == 10 {
			break
		}
		out = append(out, truncate(a, 64))
	}
	return out
}
