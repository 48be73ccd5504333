package authserver

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"html/template"
	"math"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/pagestyle"
)

//go:embed templates/*.html
var templateFS embed.FS

type pages struct {
	t *template.Template
}

// pageCSP is the pages' Content-Security-Policy: nothing from elsewhere,
// no inline script or style; the stylesheet is Flowgate's one file
// (internal/pagestyle), which wraps long names (an e-mail address as
// username) on a 375 px screen.
const pageCSP = "default-src 'self'; style-src 'self'; frame-ancestors 'none'"

func newPages() (*pages, error) {
	t, err := template.New("pages").Funcs(template.FuncMap{
		"stylesheet": pagestyle.URL,
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &pages{t: t}, nil
}

// pageData is what every page template reads.
type pageData struct {
	Title, Client, Error, Detail string
	CSRF, Request, Username      string
	// ReturnTo is where a sign-in without an authorization request goes
	// afterwards: a path on this server (see SafeReturnPath).
	ReturnTo string
	Scopes   []string
	Done     bool
	// Action is where the logout form posts (default /logout), and Fields
	// the parameters it carries there.
	Action string
	Fields []hiddenField
	// Providers are the "Sign in with …" buttons; NoLocal hides the
	// password form (auth.login.local: false).
	Providers []fedButton
	NoLocal   bool
	// UpstreamLogout is the identity provider's logout URL offered after
	// signing out, and UpstreamTitle its name.
	UpstreamLogout, UpstreamTitle string
	// Enrol shows the second-factor enrolment (QR code and Secret)
	// instead of the code form; Codes are recovery codes shown once.
	Enrol  bool
	Secret string
	Codes  []string
	// PasskeyCeremony and PasskeyOptions offer a passkey at the second
	// step (the ceremony's handle and the options for the browser, JSON);
	// NoCode hides the code form of a user without an authenticator app.
	PasskeyCeremony, PasskeyOptions string
	NoCode                          bool
	// Script is the page's one script, if it has one.
	Script string
}

// hiddenField is a parameter a form carries on.
type hiddenField struct{ Name, Value string }

// render writes a page with the security headers every page carries.
func (s *Server) render(w http.ResponseWriter, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := s.pages.t.ExecuteTemplate(&buf, name, d); err != nil {
		s.logger.Error("rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is for requests that cannot be sent back to a client: no
// redirect. Details appear only with auth.show_detailed_errors.
func (s *Server) errorPage(w http.ResponseWriter, status int, msg, detail string) {
	if !s.opts.Auth.ShowDetailedErrors {
		detail = ""
	}
	s.render(w, status, "error", pageData{Title: "Something went wrong", Error: msg, Detail: detail})
}

// csrfToken returns the double-submit token, setting its cookie when the
// browser has none. SameSite=Strict keeps other sites from sending it; the
// form must echo its value.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := randomToken(32)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	return v
}

// CSRFToken is the double-submit token for a form on Flowgate's other
// pages (internal/web): the same cookie and check as the provider's own
// forms, so one token serves every page.
func (s *Server) CSRFToken(w http.ResponseWriter, r *http.Request) string { return s.csrfToken(w, r) }

// CheckCSRF reports whether a parsed POST form carries the browser's CSRF
// token in its csrf_token field, compared in constant time.
func CheckCSRF(r *http.Request) bool { return checkCSRF(r) }

func checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf_token"))) == 1
}

func waitSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

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
