package authserver

import (
	"net/http"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// consentPage is GET /consent: the scopes the client asks for, shown to
// the user who signed in for the request.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	req, client, ok := s.sessionRequest(w, r, r.URL.Query().Get("request"))
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "consent", pageData{Title: "Allow access?", Client: clientName(client), CSRF: s.csrfToken(w, r),
		Request: req.ID, Username: req.User, Scopes: req.Scopes})
}

// consentSubmit is POST /consent: a denial goes back to the client as
// access_denied; an approval adds the scopes to the user's consent for
// the client and issues the code.
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
		redirect(w, r, s.errorTo(req, "access_denied", "the user denied access"))
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
		redirect(w, r, s.errorTo(req, "server_error", ""))
		return
	}
	s.audit(ctx, r, store.AuditEvent{Event: audit.ConsentGranted, User: req.User, Client: client.ID, Outcome: audit.OutcomeSuccess, Detail: "granted: " + truncate(strings.Join(req.Scopes, " "), 200)})
	redirect(w, r, s.issueCode(ctx, req))
}
