package web

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/store"
)

// IdentityStore is what the users, clients, trusted issuers and OAuth
// servers pages read and change (through package account and admin).
type IdentityStore interface {
	account.Store
	admin.Store
}

// IdentityOptions are what the management site's users, clients, trusted
// issuers and OAuth servers pages need. Every change goes through the
// operation the admin API uses (package account and admin), audited the
// same way.
type IdentityOptions struct {
	Store IdentityStore
	// MFA resets users' second factors; nil shows no reset button.
	MFA *mfa.Service
	// Changes makes the changes to clients, issuers and OAuth servers.
	Changes *admin.Service
	// Audit receives the user account changes (package account).
	Audit audit.Recorder
	// Hasher hashes the passwords an administrator sets.
	Hasher *credential.Hasher
	// HTTPClient makes the issuer and OAuth server tests' requests; it
	// must dial through the egress policy.
	HTTPClient *http.Client
	// PublicURL gives an OAuth server created without redirect_uri its
	// default (PublicURL + "/oauth-callback").
	PublicURL string
}

// registerAdminIdentity adds the management site's pages about who may do
// what: users, clients, trusted issuers, OAuth servers. Without
// Options.Identity they are not served.
func (h *Handler) registerAdminIdentity(mux *http.ServeMux) {
	if h.o.Identity == nil {
		return
	}
	mux.HandleFunc("GET /admin/users", h.adminUsers)
	mux.HandleFunc("POST /admin/users", h.adminCreateUser)
	mux.HandleFunc("GET /admin/users/{username}", h.adminUserPage)
	mux.HandleFunc("POST /admin/users/{username}", h.adminUpdateUser)
	mux.HandleFunc("POST /admin/users/{username}/password", h.adminSetPassword)
	mux.HandleFunc("POST /admin/users/{username}/disable", h.adminSetDisabled(true))
	mux.HandleFunc("POST /admin/users/{username}/enable", h.adminSetDisabled(false))
	mux.HandleFunc("POST /admin/users/{username}/sessions", h.adminEndSessions)
	mux.HandleFunc("POST /admin/users/{username}/mfa/reset", h.adminResetMFA)

	mux.HandleFunc("GET /admin/clients", h.adminClients)
	mux.HandleFunc("POST /admin/clients", h.adminCreateClient)
	mux.HandleFunc("GET /admin/clients/{id}", h.adminClient)
	mux.HandleFunc("POST /admin/clients/{id}", h.adminUpdateClient)
	mux.HandleFunc("POST /admin/clients/{id}/secret", h.adminRotateSecret)
	mux.HandleFunc("GET /admin/clients/{id}/remove", h.adminConfirmRemove(clientKind()))
	mux.HandleFunc("POST /admin/clients/{id}/remove", h.adminRemove(clientKind()))

	mux.HandleFunc("GET /admin/issuers", h.adminIssuers)
	mux.HandleFunc("POST /admin/issuers", h.adminCreateIssuer)
	mux.HandleFunc("GET /admin/issuers/{name}", h.adminIssuer)
	mux.HandleFunc("POST /admin/issuers/{name}", h.adminUpdateIssuer)
	mux.HandleFunc("POST /admin/issuers/{name}/test", h.adminTestIssuer)
	mux.HandleFunc("GET /admin/issuers/{name}/remove", h.adminConfirmRemove(issuerKind()))
	mux.HandleFunc("POST /admin/issuers/{name}/remove", h.adminRemove(issuerKind()))

	mux.HandleFunc("GET /admin/oauth-servers", h.adminOAuthServers)
	mux.HandleFunc("POST /admin/oauth-servers", h.adminCreateOAuthServer)
	mux.HandleFunc("GET /admin/oauth-servers/{name}", h.adminOAuthServer)
	mux.HandleFunc("POST /admin/oauth-servers/{name}", h.adminUpdateOAuthServer)
	mux.HandleFunc("POST /admin/oauth-servers/{name}/test", h.adminTestOAuthServer)
	mux.HandleFunc("GET /admin/oauth-servers/{name}/remove", h.adminConfirmRemove(oauthServerKind()))
	mux.HandleFunc("POST /admin/oauth-servers/{name}/remove", h.adminRemove(oauthServerKind()))
}

// The page data of the template admin-id: one of the four is set.
type idPage struct {
	List   *listPage
	Edit   *editPage
	Secret *secretPage
	Remove *removePage
}

// listPage is a list of entries with a form to create one.
type listPage struct {
	Columns []string
	Rows    []listRow
	Empty   string
	// Next is the link to the next page of the list; "" on the last.
	Next   string
	Create *idForm
}

// listRow is one entry: Title links to Link, Meta says the rest.
type listRow struct {
	Link, Title, Meta string
}

// add appends the row of an entry: cells are its key, then the other
// columns' values, of which the non-empty ones are shown by name.
func (lp *listPage) add(link string, cells ...string) {
	var meta []string
	for i, c := range cells[1:] {
		if c != "" {
			meta = append(meta, lp.Columns[i+1]+": "+c)
		}
	}
	lp.Rows = append(lp.Rows, listRow{Link: link, Title: cells[0], Meta: strings.Join(meta, " · ")})
}

// editPage is one entry: facts, forms, buttons, a test's result.
type editPage struct {
	Facts   []fact
	Probe   *probeView
	Forms   []*idForm
	Buttons []*idForm
	Remove  string
	Back    link
	// Links is a user's sign-in links (user pages with identity
	// providers only).
	Links *linkSection
}

type fact struct{ Name, Value string }

type link struct{ Href, Label string }

// probeView is a test's outcome, in words.
type probeView struct {
	OK    bool
	Facts []fact
	Error string
}

// secretPage shows a generated client secret, in this answer only.
type secretPage struct {
	ClientID, Secret, Message string
	Back                      link
}

// removePage asks to confirm a removal.
type removePage struct {
	What, Action string
	Cancel       link
}

// idForm is a form of the management site with its inputs, each showing
// what was entered and what is wrong with it.
type idForm struct {
	Heading, Action, Submit, Hint string
	Inputs                        []*input
	// Error is a problem that is no input's.
	Error string
	// CSRF is the page's token, set as the page is rendered.
	CSRF string
}

// input is one input of an idForm.
type input struct {
	Name, Label, Hint string
	// Kind is text, email, url, password, textarea, select, checkbox or
	// checks (a group of checkboxes, one per option).
	Kind     string
	Value    string
	Checked  bool
	Options  []string
	Selected []string
	Required bool
	Error    string
}

// IsSelected reports whether option o of a checks input is ticked.
func (in *input) IsSelected(o string) bool {
	return slices.Contains(in.Selected, o)
}

// input returns the form's input called name, or nil.
func (f *idForm) input(name string) *input {
	for _, in := range f.Inputs {
		if in.Name == name {
			return in
		}
	}
	return nil
}

// fail puts msg next to the input called name, or at the form's top when
// there is no such input.
func (f *idForm) fail(name, msg string) {
	if in := f.input(name); in != nil {
		if in.Error != "" {
			in.Error += "; "
		}
		in.Error += msg
		return
	}
	if f.Error != "" {
		f.Error += " "
	}
	f.Error += name + ": " + msg
}

// failAll puts each problem of a configuration validator next to its
// input: scopes[1] and scope_map.x belong to scopes and scope_map.
func (f *idForm) failAll(err error) {
	for _, e := range unjoin(err) {
		var fe *config.FieldError
		if errors.As(e, &fe) {
			name := fe.Path
			if i := strings.IndexAny(name, "[."); i > 0 {
				name = name[:i]
			}
			f.fail(name, fe.Err.Error())
			continue
		}
		if f.Error != "" {
			f.Error += " "
		}
		f.Error += e.Error()
	}
}

// Failed reports whether any problem was put on the form.
func (f *idForm) Failed() bool { return f.failed() }

// failed reports whether any problem was put on the form.
func (f *idForm) failed() bool {
	if f.Error != "" {
		return true
	}
	for _, in := range f.Inputs {
		if in.Error != "" {
			return true
		}
	}
	return false
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// maxAdminForm bounds a posted management form (a PEM key or a key set
// is the largest thing in one).
const maxAdminForm = 256 << 10

// adminPost is adminUser for a posted form: the form is read and its
// CSRF token checked before anything else (403, nothing changed). It
// returns the user, and a context carrying the request's origin for the
// audit records.
func (h *Handler) adminPost(w http.ResponseWriter, r *http.Request) (*user, context.Context) {
	u := h.adminUser(w, r)
	if u == nil || !h.readForm(w, r, u, maxAdminForm) {
		return nil, nil
	}
	return u, audit.WithOrigin(r.Context(), r, "")
}

// who is who makes a change, as the audit log names them: the user's
// principal, as the API names the caller of a token.
func (u *user) who() string { return principal.User(u.sess.User) }

// renderID renders the template admin-id in the menu entry nav.
func (h *Handler) renderID(w http.ResponseWriter, status int, u *user, nav, title, notice string, p idPage) {
	var forms []*idForm
	if p.List != nil && p.List.Create != nil {
		forms = append(forms, p.List.Create)
	}
	if p.Edit != nil {
		forms = append(append(forms, p.Edit.Forms...), p.Edit.Buttons...)
	}
	for _, f := range forms {
		f.CSRF = u.csrf
	}
	v := u.view(title, p)
	v.Nav, v.Notice = nav, notice
	h.render(w, status, "admin-id", v)
}

// notice is the confirmation a change's redirect asks for (?done=): one
// of a fixed list, so no link can make a page say something else.
func notice(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "created":
		return "Created."
	case "saved":
		return "Saved."
	case "password":
		return "The password was changed."
	case "disabled":
		return "The user is disabled: their sessions ended and their refresh tokens were revoked."
	case "enabled":
		return "The user is enabled and may sign in again."
	case "sessions":
		return "The user's sessions ended and their refresh tokens were revoked."
	case "mfa":
		return "The user's second factor is removed; they set one up again."
	case "removed":
		return "Removed."
	}
	return ""
}

// redirectDone answers a change with a 303 to target, asking it to
// confirm the change done (see notice).
func redirectDone(w http.ResponseWriter, r *http.Request, target, done string) {
	if done != "" {
		target += "?done=" + done
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// listCursor reads the list page asked for (?cursor=).
func listCursor(r *http.Request) store.Page {
	return store.Page{Limit: store.DefaultLimit, Cursor: r.URL.Query().Get("cursor")}
}

func nextLink(base, cursor string) string {
	if cursor == "" {
		return ""
	}
	return base + "?cursor=" + url.QueryEscape(cursor)
}

// words splits a list typed into one input: by commas, spaces or lines.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// pairs reads "key = value" lines into a map; a line without "=" is
// reported under the input's name.
func pairs(s string) (map[string]string, string) {
	var m map[string]string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, "each line must be key = value; \"" + line + "\" has no ="
		}
		if m == nil {
			m = map[string]string{}
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, ""
}

func pairsText(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k + " = " + m[k] + "\n")
	}
	return b.String()
}

// storeFailure shows a store refusal on the form (a taken key is 409);
// false when it is a failure of ours, already answered.
func (h *Handler) storeFailure(w http.ResponseWriter, u *user, f *idForm, key string, err error) (int, bool) {
	switch {
	case errors.Is(err, store.ErrConflict):
		f.fail(key, "is already taken")
		return http.StatusConflict, true
	case errors.Is(err, store.ErrNotFound):
		h.notFound(w, u)
		return 0, false
	}
	h.pageError(w, u, "saving a change", err)
	return 0, false
}
