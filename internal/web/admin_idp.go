package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/store"
)

// Paths of the identity providers' pages and of the link removals.
const (
	PathAdminIdPs = "/admin/identity-providers"
	// PathAdminIdPTest checks a provider's metadata and key set now.
	PathAdminIdPTest = "/admin/identity-providers/{provider}/test"
	// PathAdminLinkRemove removes anyone's link (administrators); the
	// form names provider, subject and return_to (a path here).
	PathAdminLinkRemove = "/admin/identity-providers/links/remove"
	// PathAccountLinkRemove removes one of the signed-in user's own links.
	PathAccountLinkRemove = "/account/links/remove"
)

// registerAdminIdentityProviders adds /admin/identity-providers and the
// link removals (the sections of /account and /admin/users post to them).
func (h *Handler) registerAdminIdentityProviders(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathAdminIdPs, h.adminIdPs)
	mux.HandleFunc("POST "+PathAdminIdPTest, h.adminIdPTest)
	mux.HandleFunc("POST "+PathAdminLinkRemove, h.adminLinkRemove)
	mux.HandleFunc("POST "+PathAccountLinkRemove, h.accountLinkRemove)
}

// idpRow is one provider as the page shows it.
type idpRow struct {
	config.IdentityProvider
	RedirectURI string
	// Tested is set after a test of this provider: OK or the problem.
	Tested           bool
	TestOK           bool
	TestError        string
	Keys             int
	EndSession, JWKS string
}

// idpPage is the page's data.
type idpPage struct {
	Providers []idpRow
	Links     []store.FederationLink
}

func (h *Handler) adminIdPs(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.renderIdPs(w, r, u, http.StatusOK, "", nil)
}

// renderIdPs shows the providers and every link; tested, when not nil,
// is the provider just tested.
func (h *Handler) renderIdPs(w http.ResponseWriter, r *http.Request, u *user, status int, notice string, tested *idpRow) {
	var d idpPage
	if f := h.o.Federation; f != nil {
		for _, b := range f.Buttons() {
			c, _ := f.Provider(b.Name)
			row := idpRow{IdentityProvider: c, RedirectURI: f.RedirectURI()}
			if tested != nil && tested.Name == c.Name {
				row = *tested
			}
			d.Providers = append(d.Providers, row)
		}
		links, err := f.Links(r.Context(), "")
		if err != nil {
			h.o.Logger.Error("listing federation links", "err", err)
			h.statusPage(w, http.StatusInternalServerError, u, "Something went wrong", "The links could not be read; try again later.")
			return
		}
		d.Links = links
	}
	if notice == "" && r.URL.Query().Get("removed") == "1" {
		notice = "The link was removed."
	}
	v := u.view("Identity providers", d)
	v.Nav, v.Notice = "admin/identity-providers", notice
	h.render(w, status, "admin-identity-providers", v)
}

// linkSection is a user's sign-in links with their remove forms, on
// /account (Action PathAccountLinkRemove) and on an administrator's
// user page (PathAdminLinkRemove, back to that page).
type linkSection struct {
	Links            []store.FederationLink
	Action, ReturnTo string
	CSRF             string
	// Admin words the section for someone else's account.
	Admin bool
}

// userLinks is username's section, or nil when no identity provider
// is configured (the page then has no section).
func (h *Handler) userLinks(ctx context.Context, u *user, username string, admin bool) (*linkSection, error) {
	f := h.o.Federation
	if f == nil {
		return nil, nil
	}
	links, err := f.Links(ctx, username)
	if err != nil {
		return nil, err
	}
	s := &linkSection{Links: links, Action: PathAccountLinkRemove, CSRF: u.csrf, Admin: admin}
	if admin {
		s.Action, s.ReturnTo = PathAdminLinkRemove, userPath(username)
	}
	return s, nil
}

// adminIdPTest reads the provider's metadata and key set through the
// egress policy, as a sign-in would, and shows what it found.
func (h *Handler) adminIdPTest(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil || !h.readForm(w, r, u, maxFormBytes) {
		return
	}
	f := h.o.Federation
	name := r.PathValue("provider")
	c, ok := config.IdentityProvider{}, false
	if f != nil {
		c, ok = f.Provider(name)
	}
	if !ok {
		h.notFound(w, u)
		return
	}
	row := idpRow{IdentityProvider: c, RedirectURI: f.RedirectURI(), Tested: true}
	res, err := f.Test(r.Context(), name)
	row.JWKS, row.EndSession, row.Keys = res.Metadata.JWKSURI, res.Metadata.EndSessionEndpoint, res.Keys
	if err != nil {
		row.TestError = err.Error()
	} else {
		row.TestOK = true
	}
	h.renderIdPs(w, r, u, http.StatusOK, "", &row)
}

// adminLinkRemove removes a link for an administrator, then goes back to
// return_to (this page by default).
func (h *Handler) adminLinkRemove(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil || !h.readForm(w, r, u, maxFormBytes) {
		return
	}
	h.removeLink(w, r, u, "")
}

// accountLinkRemove removes one of the signed-in user's own links, then
// goes back to return_to (/account by default).
func (h *Handler) accountLinkRemove(w http.ResponseWriter, r *http.Request) {
	u := h.postedForm(w, r)
	if u == nil {
		return
	}
	h.removeLink(w, r, u, u.sess.User)
}

// removeLink removes the posted link; owner, when set, must be its user
// (anyone else's link is a 404, as if it did not exist).
func (h *Handler) removeLink(w http.ResponseWriter, r *http.Request, u *user, owner string) {
	f := h.o.Federation
	if f == nil {
		h.notFound(w, u)
		return
	}
	ctx := audit.WithOrigin(r.Context(), r, "")
	provider, subject := r.PostForm.Get("provider"), r.PostForm.Get("subject")
	back := PathAdminIdPs
	if owner != "" {
		back = "/account"
	}
	if ret, ok := authserver.SafeReturnPath(r.PostForm.Get("return_to")); ok {
		back = ret
	}
	if owner != "" {
		links, err := f.Links(ctx, owner)
		if err != nil {
			h.o.Logger.Error("listing federation links", "err", err)
			h.statusPage(w, http.StatusInternalServerError, u, "Something went wrong", "Try again later.")
			return
		}
		found := false
		for _, l := range links {
			found = found || (l.Provider == provider && l.Subject == subject)
		}
		if !found {
			h.notFound(w, u)
			return
		}
	}
	err := f.RemoveLink(ctx, principal.User(u.sess.User), provider, subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.notFound(w, u)
		return
	case err != nil:
		h.o.Logger.Error("removing a federation link", "err", err)
		h.statusPage(w, http.StatusInternalServerError, u, "Something went wrong", "The link was not removed; try again later.")
		return
	}
	target, _ := url.Parse(back)
	q := target.Query()
	q.Set("removed", "1")
	target.RawQuery = q.Encode()
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}
