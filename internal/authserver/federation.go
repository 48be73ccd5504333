package authserver

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/federation"
	"github.com/flowgate/flowgate/internal/store"
)

// Paths of federated sign-in: the start (one per provider, the button's
// target) and the redirect URI every provider sends the browser back to.
const (
	PathLoginWith     = "/login/with/{provider}"
	PathLoginCallback = federation.CallbackPath
	// fedCookie binds a federated sign-in to the browser that started it;
	// Lax so it comes back on the provider's top-level redirect.
	fedCookie = "flowgate_fed"
	// idpCookie remembers which provider the session came from, so
	// logout can offer to sign out there too. Not a secret.
	idpCookie = "flowgate_idp"
)

// fedButton is a provider's button on the login page.
type fedButton struct{ Title, URL string }

// federationButtons are the login page's "Sign in with …" buttons, each
// carrying where the sign-in goes on to.
func (s *Server) federationButtons(request, returnTo string) []fedButton {
	if s.opts.Federation == nil {
		return nil
	}
	var out []fedButton
	for _, b := range s.opts.Federation.Buttons() {
		out = append(out, fedButton{Title: b.Title, URL: loginWithURL(b.Name, request, returnTo)})
	}
	return out
}

func loginWithURL(provider, request, returnTo string) string {
	q := url.Values{}
	if request != "" {
		q.Set("request", request)
	} else if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	u := "/login/with/" + url.PathEscape(provider)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// loginWith is GET /login/with/{provider}: a fresh browser binding, the
// state saved, and the browser sent to the provider.
func (s *Server) loginWith(w http.ResponseWriter, r *http.Request) {
	if s.opts.Federation == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	var t federation.Target
	if id := q.Get("request"); id != "" || !q.Has("return_to") {
		// The request must still be pending; its page is what the user
		// would have seen.
		req, _, ok := s.pendingRequest(w, r, id)
		if !ok {
			return
		}
		t.Request = req.ID
	} else {
		ret, ok := SafeReturnPath(q.Get("return_to"))
		if !ok {
			s.errorPage(w, http.StatusBadRequest, "This sign-in link is not valid.", "return_to must be a path on this server")
			return
		}
		t.ReturnTo = ret
	}
	browser := federation.NewBrowserBinding()
	target, err := s.opts.Federation.Begin(r.Context(), r.PathValue("provider"), browser, t)
	if err != nil {
		s.federationFailed(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: fedCookie, Value: browser, Path: PathLoginCallback, HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// loginCallback is GET /login/callback: the provider's answer. The state
// is taken (once, for this browser only), the code exchanged, the ID
// token verified and the person found, linked or created; then a session
// starts as after a password sign-in, with amr "fed".
func (s *Server) loginCallback(w http.ResponseWriter, r *http.Request) {
	if s.opts.Federation == nil {
		http.NotFound(w, r)
		return
	}
	ctx := audit.WithOrigin(r.Context(), r, "")
	if s.auditUnavailable() != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now. Try again in a minute.", "the audit log cannot be written")
		return
	}
	var browser string
	if c, err := r.Cookie(fedCookie); err == nil {
		browser = c.Value
	}
	// The binding is for one sign-in: whatever follows, it is spent.
	http.SetCookie(w, &http.Cookie{Name: fedCookie, Value: "", Path: PathLoginCallback, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	res, err := s.opts.Federation.Finish(ctx, r.URL.Query(), browser)
	if err != nil {
		s.federationFailed(w, r, err)
		return
	}
	now := s.now()
	// The provider's own amr (its second factor, say) is passed on:
	// Flowgate relies on it and does not ask again.
	amr := append([]string{"fed"}, res.AMR...)
	user := res.User.Username
	if err := s.startSession(w, r, user, now, amr); err != nil {
		s.logger.Error("federated login: creating session", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: idpCookie, Value: res.Provider.Name, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	detail := "provider " + res.Provider.Name + ": " + res.How
	if res.Target.Request == "" {
		s.audit(ctx, r, store.AuditEvent{Event: audit.FederationLoginSuccess, User: user, Outcome: audit.OutcomeSuccess, Detail: detail})
		redirect(w, r, res.Target.ReturnTo)
		return
	}
	req, client, ok := s.pendingRequest(w, r, res.Target.Request)
	if !ok {
		return
	}
	if err := s.st.CompleteAuthRequest(ctx, req.ID, user, now, amr); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.FederationLoginSuccess, User: user, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: detail})
	req.User, req.AuthTime, req.AMR, req.Done = user, now, amr, true
	redirect(w, r, s.afterLogin(ctx, req, client))
}

// federationFailed answers a federated sign-in that did not work out with
// a page naming the provider and the reason (the detail only with
// auth.show_detailed_errors), audited with the reason.
func (s *Server) federationFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	var fe *federation.Error
	if !errors.As(err, &fe) {
		s.logger.Error("federated login", "err", err)
		s.audit(ctx, r, store.AuditEvent{Event: audit.FederationLoginFailure, Outcome: audit.OutcomeFailure, Detail: "internal error"})
		s.errorPage(w, http.StatusInternalServerError, "Sign-in is unavailable right now.", "")
		return
	}
	detail := "provider " + fe.Provider + ": " + fe.Code
	if fe.Provider == "" {
		detail = fe.Code
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.FederationLoginFailure, Outcome: audit.OutcomeFailure, Detail: detail})
	status := http.StatusBadRequest
	switch fe.Code {
	case "provider_unavailable":
		status = http.StatusBadGateway
	case "no_account", "user_disabled", "email_not_verified", "email_ambiguous", "access_denied":
		status = http.StatusForbidden
	case "unknown_provider":
		status = http.StatusNotFound
	}
	title := "Sign-in failed"
	if fe.Title != "" {
		title = "Sign-in with " + fe.Title + " failed"
	}
	d := fe.Detail
	if !s.opts.Auth.ShowDetailedErrors {
		d = ""
	}
	s.render(w, status, "error", pageData{Title: title, Error: fe.Reason, Detail: d})
}
