package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/pagestyle"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

//go:embed templates/*.html templates/partials/*.html
var templateFS embed.FS

// pageCSP is every page's Content-Security-Policy: nothing from elsewhere,
// styles only from the stylesheet file and script only from the one
// script file (no inline style or script, so no 'unsafe-inline').
const pageCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// renderer holds the parsed pages.
type renderer struct {
	pages map[string]*template.Template
}

func newRenderer() (*renderer, error) {
	rd := &renderer{pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"stamp": stamp, "when": when}
	// Every file but the layout is a page defining "body"; the page's name
	// is its file name without ".html".
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		name := strings.TrimSuffix(path.Base(file), ".html")
		if name == "layout" {
			continue
		}
		// Partials (templates/partials) are shared pieces, such as a
		// form's fields, that any page may use.
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html", file)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		rd.pages[name] = t
	}
	return rd, nil
}

// stamp writes a time as pages show it without script: UTC.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// when is a time for people: UTC in a <time> element whose datetime the
// page's script (assets/flowgate.js), when it runs, rewrites in the
// browser's time zone. A zero time is "—".
func when(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `">` + stamp(t) + `</time>`)
}

// view is what the layout reads; Data is the page's own.
type view struct {
	Title, Notice string
	// User is who is signed in ("" on pages for nobody), CSRF the token
	// of every form on the page, the sign-out form's included.
	User, CSRF string
	CSS        string
	// Script is the URL of the portal's one script (pagestyle).
	Script string
	// Nav is the menu entry of the page ("home", "tasks", "admin/users"),
	// marked as the current one; a Nav starting with "admin" also shows
	// the management site's own menu.
	Nav string
	// Admin shows the way to the management site.
	Admin bool
	Data  any
}

// InAdmin reports whether the page belongs to the management site.
func (v view) InAdmin() bool { return v.Nav == "admin" || strings.HasPrefix(v.Nav, "admin/") }

// securityHeaders are on every page: personal pages are never cached.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// render writes a page in the layout with the security headers.
func (h *Handler) render(w http.ResponseWriter, status int, name string, v view) {
	v.CSS, v.Script = pagestyle.URL(), pagestyle.ScriptURL()
	var buf bytes.Buffer
	if err := h.rd.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		h.o.Logger.Error("rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// statusPage is a page that only says something: 403, 404, 409, 500.
func (h *Handler) statusPage(w http.ResponseWriter, status int, u *user, title, message string) {
	v := view{Title: title, Data: message}
	if u != nil {
		v.User, v.CSRF = u.sess.User, u.csrf
	}
	h.render(w, status, "status", v)
}

func (h *Handler) notFound(w http.ResponseWriter, u *user) {
	h.statusPage(w, http.StatusNotFound, u, "Not found", "There is nothing for you at this address.")
}

// user is the signed-in person a page is for.
type user struct {
	sess   store.Session
	caller engine.Caller
	csrf   string
}

func (u *user) view(title string, data any) view {
	return view{Title: title, User: u.sess.User, CSRF: u.csrf, Admin: u.caller.Admin, Data: data}
}

// readForm reads a posted form of at most limit bytes and checks its CSRF
// token before anything is done with it, answering 400 or 403 (nothing
// changed) and returning false when either fails.
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request, u *user, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		h.statusPage(w, http.StatusBadRequest, u, "The form could not be read", "Go back and try again.")
		return false
	}
	if !authserver.CheckCSRF(r) {
		h.csrfRefused(w, u)
		return false
	}
	return true
}

// postedForm is signedIn for a POST: the form is read and its CSRF token
// checked before anything else (400 or 403, nothing changed, nil).
func (h *Handler) postedForm(w http.ResponseWriter, r *http.Request) *user {
	u := h.signedIn(w, r)
	if u == nil || !h.readForm(w, r, u, maxFormBytes) {
		return nil
	}
	return u
}

func (h *Handler) csrfRefused(w http.ResponseWriter, u *user) {
	h.statusPage(w, http.StatusForbidden, u, "Not allowed", "The form has expired. Go back, reload the page and try again.")
}

// adminUser is signedIn for the management site: anyone without the
// role admin gets the 403 page and nil.
func (h *Handler) adminUser(w http.ResponseWriter, r *http.Request) *user {
	u := h.signedIn(w, r)
	if u == nil {
		return nil
	}
	if !u.caller.Admin {
		h.statusPage(w, http.StatusForbidden, u, "Not allowed", "These pages are for administrators (role admin).")
		return nil
	}
	return u
}

// signedIn returns the page's user; without a session it sends the
// browser to the sign-in page, which returns here, and returns nil.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) *user {
	sess, ok := h.o.Sessions.SignedIn(w, r)
	if !ok {
		target := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			target = r.URL.Path
		}
		noStoreRedirect(w, r, authserver.LoginURL(target))
		return nil
	}
	c := userCaller(sess)
	acct, err := h.o.Users.GetUser(r.Context(), sess.User)
	if err != nil || acct.Disabled {
		// The account went away under a live session: it may do nothing.
		h.statusPage(w, http.StatusForbidden, nil, "Not allowed", "Your account cannot use these pages.")
		return nil
	}
	c.Roles = acct.Roles
	// On pages, the role admin alone makes an administrator: the session
	// is the user's own, with no token scopes to narrow it.
	c.Admin = slices.Contains(acct.Roles, resource.AdminRole)
	return &user{sess: sess, caller: c, csrf: h.o.Sessions.CSRFToken(w, r)}
}

func userCaller(sess store.Session) engine.Caller {
	return engine.Caller{User: flow.User{ID: principal.User(sess.User), Kind: principal.KindUser, Subject: sess.User, Issuer: resource.OwnIssuerName}}
}
