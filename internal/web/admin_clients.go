package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// The clients pages: /admin/clients (list, create) and /admin/clients/{id}
// (edit, rotate secret, remove). A generated secret is shown only in the
// answer to the POST that made it (no-store), never on a page that can be
// loaded again.

func clientPath(id string) string { return "/admin/clients/" + url.PathEscape(id) }

// clientForm is the form of a client's settings, filled from c.
func clientForm(c store.Client, isNew bool) *idForm {
	f := &idForm{Action: clientPath(c.ID), Submit: "Save", Heading: "Settings"}
	if isNew {
		f = &idForm{Action: "/admin/clients", Submit: "Create client", Heading: "New client",
			Hint: "A client that authenticates with a secret gets one generated, shown once."}
		f.Inputs = append(f.Inputs, &input{Name: "id", Label: "Client ID", Kind: "text", Required: true, Value: c.ID,
			Hint: "Cannot be changed later."})
	}
	f.Inputs = append(f.Inputs,
		&input{Name: "name", Label: "Name", Kind: "text", Value: c.Name},
		&input{Name: "token_endpoint_auth_method", Label: "Token endpoint authentication", Kind: "select",
			Options: config.ClientAuthMethods(), Value: c.TokenEndpointAuthMethod,
			Hint: "none is a public client (no secret); private_key_jwt needs one key source below."},
		&input{Name: "grant_types", Label: "Grant types", Kind: "checks", Options: config.GrantTypes(), Selected: c.GrantTypes},
		&input{Name: "redirect_uris", Label: "Redirect URIs", Kind: "textarea", Value: strings.Join(c.RedirectURIs, "\n"), Hint: "One per line."},
		&input{Name: "post_logout_redirect_uris", Label: "Post-logout redirect URIs", Kind: "textarea", Value: strings.Join(c.PostLogoutRedirectURIs, "\n"), Hint: "One per line."},
		&input{Name: "scopes", Label: "Scopes", Kind: "text", Value: strings.Join(c.Scopes, " "), Hint: "The scopes the client may ask for, separated by spaces."},
		&input{Name: "consent", Label: "Consent", Kind: "select", Options: config.ConsentModes(), Value: c.Consent,
			Hint: "user: each user is asked; admin: granted by the administrator, nobody is asked."},
		&input{Name: "roles", Label: "Roles", Kind: "text", Value: strings.Join(c.Roles, " "), Hint: "The client's own roles, for its client-credentials tokens."},
		&input{Name: "dpop", Label: "Require DPoP-bound tokens", Kind: "checkbox", Checked: c.DPoP},
		&input{Name: "jwks_uri", Label: "JWKS URI", Kind: "url", Value: c.JWKSURI, Hint: "For private_key_jwt: where the client's public keys are."},
		&input{Name: "jwks", Label: "JWKS", Kind: "textarea", Value: c.JWKS, Hint: "For private_key_jwt: the client's public key set as JSON."},
		&input{Name: "public_key_pem", Label: "Public key (PEM)", Kind: "textarea", Value: c.PublicKeyPEM, Hint: "For private_key_jwt: one public key."},
	)
	return f
}

// readClientForm copies the posted settings onto c and checks them with
// the rules the admin API applies (admin.CheckClient), marking the form.
func readClientForm(r *http.Request, f *idForm, c *store.Client) {
	pf := r.PostForm
	for _, in := range f.Inputs {
		switch in.Kind {
		case "checks":
			in.Selected = pf[in.Name]
		case "checkbox":
			in.Checked = pf.Get(in.Name) != ""
		default:
			in.Value = pf.Get(in.Name)
		}
	}
	c.Name = strings.TrimSpace(pf.Get("name"))
	c.TokenEndpointAuthMethod = pf.Get("token_endpoint_auth_method")
	c.GrantTypes = pf["grant_types"]
	c.RedirectURIs = words(pf.Get("redirect_uris"))
	c.PostLogoutRedirectURIs = words(pf.Get("post_logout_redirect_uris"))
	c.Scopes = words(pf.Get("scopes"))
	c.Consent = pf.Get("consent")
	c.Roles = words(pf.Get("roles"))
	c.DPoP = pf.Get("dpop") != ""
	c.JWKSURI = strings.TrimSpace(pf.Get("jwks_uri"))
	c.JWKS = strings.TrimSpace(pf.Get("jwks"))
	c.PublicKeyPEM = strings.TrimSpace(pf.Get("public_key_pem"))
	if err := admin.CheckClient(c); err != nil {
		f.failAll(err)
	}
}

func (h *Handler) adminClients(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.clientsPage(w, r, u, http.StatusOK, clientForm(store.Client{}, true))
}

func (h *Handler) clientsPage(w http.ResponseWriter, r *http.Request, u *user, status int, create *idForm) {
	clients, next, err := h.o.Identity.Store.ListClients(r.Context(), listCursor(r))
	if err != nil {
		h.pageError(w, u, "listing clients", err)
		return
	}
	lp := &listPage{Columns: []string{"Client ID", "Name", "Authentication", "Grant types", "Scopes"}, Empty: "No clients yet.",
		Next: nextLink("/admin/clients", next), Create: create}
	for _, c := range clients {
		lp.add(clientPath(c.ID), c.ID, c.Name, c.TokenEndpointAuthMethod,
			strings.Join(c.GrantTypes, ", "), strings.Join(c.Scopes, " "))
	}
	h.renderID(w, status, u, "admin/clients", "Clients", notice(r), idPage{List: lp})
}

func (h *Handler) adminCreateClient(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	now := time.Now().UTC()
	c := store.Client{ID: strings.TrimSpace(r.PostForm.Get("id")), CreatedAt: now, UpdatedAt: now}
	f := clientForm(c, true)
	readClientForm(r, f, &c)
	if c.ID == "" && f.input("id").Error == "" {
		f.input("id").Error = "is required"
	}
	if f.failed() {
		h.clientsPage(w, r, u, http.StatusBadRequest, f)
		return
	}
	saved, secret, err := h.o.Identity.Changes.CreateClient(ctx, u.who(), c)
	if err != nil {
		if status, ok := h.storeFailure(w, u, f, "id", err); ok {
			h.clientsPage(w, r, u, status, f)
		}
		return
	}
	if secret == "" {
		redirectDone(w, r, clientPath(saved.ID), "created")
		return
	}
	h.secretPage(w, u, saved.ID, secret, "The client was created.")
}

// secretPage shows a generated secret in this answer only: the page is
// not stored (Cache-Control: no-store, as every page), and reloading its
// address shows the list, without the secret.
func (h *Handler) secretPage(w http.ResponseWriter, u *user, id, secret, message string) {
	h.renderID(w, http.StatusOK, u, "admin/clients", "Client secret", "", idPage{Secret: &secretPage{
		ClientID: id, Secret: secret, Message: message, Back: link{clientPath(id), "Go to client " + id},
	}})
}

// readClient reads the client of the path, answering 404 when there is
// none.
func (h *Handler) readClient(w http.ResponseWriter, r *http.Request, u *user) (store.Client, bool) {
	c, err := h.o.Identity.Store.GetClient(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return store.Client{}, false
	}
	if err != nil {
		h.pageError(w, u, "reading a client", err)
		return store.Client{}, false
	}
	return c, true
}

func (h *Handler) adminClient(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	c, ok := h.readClient(w, r, u)
	if !ok {
		return
	}
	h.clientPage(w, u, http.StatusOK, notice(r), c, nil)
}

func (h *Handler) clientPage(w http.ResponseWriter, u *user, status int, notice string, c store.Client, form *idForm) {
	if form == nil {
		form = clientForm(c, false)
	}
	secret := "none (public client or private_key_jwt)"
	if c.SecretHash != "" {
		secret = "set (never shown again)"
	}
	ep := &editPage{
		Facts: []fact{{"Client ID", c.ID}, {"Secret", secret}, {"Created", stampOf(c.CreatedAt)}, {"Updated", stampOf(c.UpdatedAt)}},
		Forms: []*idForm{form},
		Back:  link{"/admin/clients", "All clients"}, Remove: clientPath(c.ID) + "/remove",
	}
	if admin.NeedsSecret(c.TokenEndpointAuthMethod) {
		ep.Buttons = append(ep.Buttons, &idForm{Action: clientPath(c.ID) + "/secret", Submit: "Rotate secret",
			Hint: "A new secret replaces the current one at once; the old one stops working."})
	}
	h.renderID(w, status, u, "admin/clients", "Client "+c.ID, notice, idPage{Edit: ep})
}

func (h *Handler) adminUpdateClient(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	cur, ok := h.readClient(w, r, u)
	if !ok {
		return
	}
	next := cur
	f := clientForm(cur, false)
	readClientForm(r, f, &next)
	if f.failed() {
		h.clientPage(w, u, http.StatusBadRequest, "", cur, f)
		return
	}
	saved, secret, err := h.o.Identity.Changes.UpdateClient(ctx, u.who(), next)
	if err != nil {
		if status, ok := h.storeFailure(w, u, f, "id", err); ok {
			h.clientPage(w, u, status, "", cur, f)
		}
		return
	}
	if secret != "" {
		h.secretPage(w, u, saved.ID, secret, "The client now authenticates with a secret.")
		return
	}
	redirectDone(w, r, clientPath(saved.ID), "saved")
}

func (h *Handler) adminRotateSecret(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	id := r.PathValue("id")
	secret, err := h.o.Identity.Changes.RotateClientSecret(ctx, u.who(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.notFound(w, u)
	case errors.Is(err, admin.ErrNoSecret):
		h.statusPage(w, http.StatusConflict, u, "No secret to rotate", err.Error())
	case err != nil:
		h.pageError(w, u, "rotating a client secret", err)
	default:
		h.secretPage(w, u, id, secret, "The secret was rotated; the old one no longer works.")
	}
}
