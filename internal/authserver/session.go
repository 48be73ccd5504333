package authserver

import (
	"context"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

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

// setSessionCookie sets the session cookie: HttpOnly, SameSite=Lax so the
// redirect back from a relying party carries it, and persistent for the
// idle timeout unless auth.session.cookie is "session".
func (s *Server) setSessionCookie(w http.ResponseWriter, value string) {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if s.opts.Auth.Session.Cookie != "session" {
		c.MaxAge = int(s.opts.Auth.Session.IdleTimeout / time.Second)
	}
	http.SetCookie(w, c)
}

// clearSessionCookie makes the browser drop the session cookie.
func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
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

// SignedIn returns the live browser session of the request, moving its
// idle expiry, for pages outside the OpenID flow (/connect,
// /oauth-callback). IDHash identifies the session without its secret.
func (s *Server) SignedIn(w http.ResponseWriter, r *http.Request) (store.Session, bool) {
	return s.currentSession(r.Context(), w, r)
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
