package authserver

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

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
	upstream := s.upstreamLogout(ctx, x.w, x.r)
	user := s.logout(ctx, x.w, x.r)
	s.audit(ctx, nil, store.AuditEvent{Event: audit.Logout, User: user, Client: clientID, Outcome: audit.OutcomeSuccess})
	if target == "" {
		x.page = func(w http.ResponseWriter) {
			s.render(w, http.StatusOK, "logout", s.signedOut(upstream))
		}
		return "", errPage()
	}
	return target, nil
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

// logoutPage is GET /logout: the confirmation form.
func (s *Server) logoutPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "logout", pageData{Title: "Sign out", CSRF: s.csrfToken(w, r)})
}

// logoutSubmit is POST /logout: ends the session, then goes to
// auth.logoff_redirect_url or shows the signed-out page.
func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.postedForm(w, r) {
		return
	}
	ctx := r.Context()
	upstream := s.upstreamLogout(ctx, w, r)
	user := s.logout(ctx, w, r)
	s.audit(ctx, r, store.AuditEvent{Event: audit.Logout, User: user, Outcome: audit.OutcomeSuccess})
	if target := s.opts.Auth.LogoffRedirectURL; target != "" {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "logout", s.signedOut(upstream))
}

// upstreamLogout is the identity provider the session came from, when it
// came from one that advertises an end_session_endpoint: its name and
// logout URL. The remembering cookie is cleared either way.
func (s *Server) upstreamLogout(ctx context.Context, w http.ResponseWriter, r *http.Request) [2]string {
	c, err := r.Cookie(idpCookie)
	if err != nil || c.Value == "" || s.opts.Federation == nil {
		return [2]string{}
	}
	http.SetCookie(w, &http.Cookie{Name: idpCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	p, ok := s.opts.Federation.Provider(c.Value)
	if !ok {
		return [2]string{}
	}
	u := s.opts.Federation.EndSessionURL(ctx, p.Name)
	if u == "" {
		return [2]string{}
	}
	return [2]string{p.Title, u}
}

// signedOut is the signed-out page, offering the upstream provider's
// logout when there is one.
func (s *Server) signedOut(upstream [2]string) pageData {
	return pageData{Title: "Signed out", Done: true, UpstreamTitle: upstream[0], UpstreamLogout: upstream[1]}
}
