package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The trusted issuers and OAuth servers pages, each with a "test" that
// goes out through the egress policy (admin.ProbeIssuer,
// admin.ProbeOAuthServer), and the removal of a client, issuer or OAuth
// server, confirmed on a page of its own (no script needed).

// probeTimeout bounds a test's outbound requests.
const probeTimeout = 20 * time.Second

// entryKind is one of the kinds of entry a removal page is about.
type entryKind struct {
	key, base, nav, label string
	remove                func(s *admin.Service, ctx context.Context, by, key string) error
}

// The kinds of entry that are removed with a confirmation page.
func clientKind() entryKind {
	return entryKind{key: "id", base: "/admin/clients", nav: "admin/clients", label: "client", remove: (*admin.Service).RemoveClient}
}

func issuerKind() entryKind {
	return entryKind{key: "name", base: "/admin/issuers", nav: "admin/issuers", label: "trusted issuer", remove: (*admin.Service).RemoveIssuer}
}

func oauthServerKind() entryKind {
	return entryKind{key: "name", base: "/admin/oauth-servers", nav: "admin/oauth-servers", label: "OAuth server", remove: (*admin.Service).RemoveOAuthServer}
}

func (k entryKind) path(key string) string { return k.base + "/" + url.PathEscape(key) }

// adminConfirmRemove is GET …/{key}/remove: the question, with a form.
func (h *Handler) adminConfirmRemove(k entryKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := h.adminUser(w, r)
		if u == nil {
			return
		}
		key := r.PathValue(k.key)
		h.renderID(w, http.StatusOK, u, k.nav, "Remove "+k.label+" "+key, "", idPage{Remove: &removePage{
			What: k.label + " " + key, Action: k.path(key) + "/remove", Cancel: link{k.path(key), "Cancel"},
		}})
	}
}

// adminRemove is POST …/{key}/remove.
func (h *Handler) adminRemove(k entryKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ctx := h.adminPost(w, r)
		if u == nil {
			return
		}
		err := k.remove(h.o.Identity.Changes, ctx, u.who(), r.PathValue(k.key))
		if errors.Is(err, store.ErrNotFound) {
			h.notFound(w, u)
			return
		}
		if err != nil {
			h.pageError(w, u, "removing a "+k.label, err)
			return
		}
		redirectDone(w, r, k.base, "removed")
	}
}

// ---- trusted issuers

func issuerForm(t store.TrustedIssuer, isNew bool) *idForm {
	f := &idForm{Action: issuerKind().path(t.Name), Submit: "Save", Heading: "Settings"}
	if isNew {
		f = &idForm{Action: "/admin/issuers", Submit: "Add issuer", Heading: "New trusted issuer"}
		f.Inputs = append(f.Inputs, &input{Name: "name", Label: "Name", Kind: "text", Required: true, Value: t.Name,
			Hint: "Starts the principals of its callers (name:subject); cannot be changed later."})
	}
	f.Inputs = append(f.Inputs,
		&input{Name: "issuer", Label: "Issuer URL", Kind: "url", Required: true, Value: t.Issuer},
		&input{Name: "metadata_url", Label: "Metadata URL", Kind: "url", Value: t.MetadataURL, Hint: "Empty: the issuer's /.well-known/openid-configuration."},
		&input{Name: "audience", Label: "Audience", Kind: "text", Required: true, Value: t.Audience, Hint: "The aud its tokens must carry."},
		&input{Name: "subject_claim", Label: "Subject claim", Kind: "select", Options: config.SubjectClaims(), Value: t.SubjectClaim},
		&input{Name: "scope_claim", Label: "Scope claim", Kind: "select", Options: config.ScopeClaims(), Value: t.ScopeClaim},
		&input{Name: "roles_claim", Label: "Roles claim", Kind: "text", Value: t.RolesClaim, Hint: "Empty: roles."},
		&input{Name: "scope_map", Label: "Scope map", Kind: "textarea", Value: pairsText(t.ScopeMap),
			Hint: "One per line: their scope = Flowgate scope (workflows.read, workflows.start, tasks, flows.invoke, admin)."},
	)
	return f
}

// readIssuerForm reads the posted issuer and checks it with the rules the
// admin API applies (admin.CheckIssuer); ok false when the form has
// problems.
func readIssuerForm(r *http.Request, f *idForm, name string) (store.TrustedIssuer, bool) {
	pf := r.PostForm
	for _, in := range f.Inputs {
		in.Value = pf.Get(in.Name)
	}
	scopeMap, bad := pairs(pf.Get("scope_map"))
	if bad != "" {
		f.fail("scope_map", bad)
	}
	t, err := admin.CheckIssuer(config.TrustedIssuer{
		Name: name, Issuer: strings.TrimSpace(pf.Get("issuer")), MetadataURL: strings.TrimSpace(pf.Get("metadata_url")),
		Audience: strings.TrimSpace(pf.Get("audience")), SubjectClaim: pf.Get("subject_claim"), ScopeClaim: pf.Get("scope_claim"),
		RolesClaim: strings.TrimSpace(pf.Get("roles_claim")), ScopeMap: scopeMap,
	}, store.SourceAPI)
	if err != nil {
		f.failAll(err)
	}
	return t, !f.failed()
}

func (h *Handler) adminIssuers(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.issuersPage(w, r, u, http.StatusOK, issuerForm(store.TrustedIssuer{SubjectClaim: "sub", ScopeClaim: "scope"}, true))
}

func (h *Handler) issuersPage(w http.ResponseWriter, r *http.Request, u *user, status int, create *idForm) {
	l, next, err := h.o.Identity.Store.ListTrustedIssuers(r.Context(), listCursor(r))
	if err != nil {
		h.pageError(w, u, "listing trusted issuers", err)
		return
	}
	lp := &listPage{Columns: []string{"Name", "Issuer", "Audience", "Source"}, Empty: "No trusted issuers yet.",
		Next: nextLink("/admin/issuers", next), Create: create}
	for _, t := range l {
		lp.add(issuerKind().path(t.Name), t.Name, t.Issuer, t.Audience, t.Source)
	}
	h.renderID(w, status, u, "admin/issuers", "Trusted issuers", notice(r), idPage{List: lp})
}

func (h *Handler) adminCreateIssuer(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	f := issuerForm(store.TrustedIssuer{}, true)
	t, ok := readIssuerForm(r, f, name)
	if !ok {
		h.issuersPage(w, r, u, http.StatusBadRequest, f)
		return
	}
	t.CreatedAt = time.Now().UTC()
	t.UpdatedAt = t.CreatedAt
	if err := h.o.Identity.Changes.CreateIssuer(ctx, u.who(), t); err != nil {
		if status, ok := h.issuerFailure(w, u, f, err); ok {
			h.issuersPage(w, r, u, status, f)
		}
		return
	}
	redirectDone(w, r, issuerKind().path(t.Name), "created")
}

// issuerFailure explains a conflict: the name or the issuer URL is taken.
func (h *Handler) issuerFailure(w http.ResponseWriter, u *user, f *idForm, err error) (int, bool) {
	if errors.Is(err, store.ErrConflict) {
		f.fail("issuer", "this name, or this issuer URL, is already a trusted issuer")
		return http.StatusConflict, true
	}
	return h.storeFailure(w, u, f, "name", err)
}

func (h *Handler) readIssuer(w http.ResponseWriter, r *http.Request, u *user) (store.TrustedIssuer, bool) {
	t, err := h.o.Identity.Store.GetTrustedIssuer(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return t, false
	}
	if err != nil {
		h.pageError(w, u, "reading a trusted issuer", err)
		return t, false
	}
	return t, true
}

func (h *Handler) adminIssuer(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	t, ok := h.readIssuer(w, r, u)
	if !ok {
		return
	}
	h.issuerPage(w, u, http.StatusOK, notice(r), t, nil, nil)
}

func (h *Handler) issuerPage(w http.ResponseWriter, u *user, status int, notice string, t store.TrustedIssuer, form *idForm, probe *probeView) {
	if form == nil {
		form = issuerForm(t, false)
	}
	ep := &editPage{
		Facts: []fact{{"Name", t.Name}, {"Source", sourceText(t.Source)}, {"Created", stampOf(t.CreatedAt)}, {"Updated", stampOf(t.UpdatedAt)}},
		Probe: probe,
		Forms: []*idForm{form},
		Buttons: []*idForm{{Action: issuerKind().path(t.Name) + "/test", Submit: "Test",
			Hint: "Reads the issuer's metadata and key set, as the token validator will."}},
		Back: link{"/admin/issuers", "All trusted issuers"}, Remove: issuerKind().path(t.Name) + "/remove",
	}
	h.renderID(w, status, u, "admin/issuers", "Trusted issuer "+t.Name, notice, idPage{Edit: ep})
}

// sourceText says where an entry came from and what editing it means.
func sourceText(s string) string {
	if s == store.SourceConfig {
		return "configuration file (a change here lasts until the next start, which applies the file again)"
	}
	return "added here or through the admin API"
}

func (h *Handler) adminUpdateIssuer(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	cur, ok := h.readIssuer(w, r, u)
	if !ok {
		return
	}
	f := issuerForm(cur, false)
	t, ok := readIssuerForm(r, f, cur.Name)
	if !ok {
		h.issuerPage(w, u, http.StatusBadRequest, "", cur, f, nil)
		return
	}
	t.CreatedAt, t.UpdatedAt = cur.CreatedAt, time.Now().UTC()
	if err := h.o.Identity.Changes.UpdateIssuer(ctx, u.who(), t); err != nil {
		if status, ok := h.issuerFailure(w, u, f, err); ok {
			h.issuerPage(w, u, status, "", cur, f, nil)
		}
		return
	}
	redirectDone(w, r, issuerKind().path(t.Name), "saved")
}

func (h *Handler) adminTestIssuer(w http.ResponseWriter, r *http.Request) {
	u, _ := h.adminPost(w, r)
	if u == nil {
		return
	}
	t, ok := h.readIssuer(w, r, u)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	p := admin.ProbeIssuer(ctx, h.o.Identity.HTTPClient, t)
	pv := &probeView{OK: p.OK, Error: p.Err, Facts: []fact{{"Metadata URL", p.MetadataURL}}}
	if p.Issuer != "" {
		pv.Facts = append(pv.Facts, fact{"Issuer in the metadata", p.Issuer})
	}
	if p.JWKSURI != "" {
		pv.Facts = append(pv.Facts, fact{"Key set", p.JWKSURI}, fact{"Keys", fmt.Sprint(p.Keys)})
	}
	if len(p.Algorithms) > 0 {
		pv.Facts = append(pv.Facts, fact{"Algorithms", strings.Join(p.Algorithms, ", ")})
	}
	h.issuerPage(w, u, http.StatusOK, "", t, nil, pv)
}

// ---- OAuth servers

func oauthServerForm(o store.OAuthServer, isNew bool) *idForm {
	f := &idForm{Action: oauthServerKind().path(o.Name), Submit: "Save", Heading: "Settings"}
	secretHint := "Leave empty to keep the current one; it is never shown."
	if isNew {
		f = &idForm{Action: "/admin/oauth-servers", Submit: "Add OAuth server", Heading: "New OAuth server"}
		f.Inputs = append(f.Inputs, &input{Name: "name", Label: "Name", Kind: "text", Required: true, Value: o.Name,
			Hint: "Flows name the server by it; cannot be changed later."})
		secretHint = "Stored sealed; never shown again."
	}
	f.Inputs = append(f.Inputs,
		&input{Name: "metadata_url", Label: "Metadata URL", Kind: "url", Value: o.MetadataURL, Hint: "The server's discovery document; or give the endpoints below."},
		&input{Name: "token_endpoint", Label: "Token endpoint", Kind: "url", Value: o.TokenEndpoint},
		&input{Name: "authorization_endpoint", Label: "Authorization endpoint", Kind: "url", Value: o.AuthorizationEndpoint},
		&input{Name: "refresh_endpoint", Label: "Refresh endpoint", Kind: "url", Value: o.RefreshEndpoint, Hint: "Empty: the token endpoint."},
		&input{Name: "revocation_endpoint", Label: "Revocation endpoint", Kind: "url", Value: o.RevocationEndpoint},
		&input{Name: "client_id", Label: "Client ID", Kind: "text", Required: true, Value: o.ClientID},
		&input{Name: "client_secret", Label: "Client secret", Kind: "password", Hint: secretHint},
		&input{Name: "client_auth", Label: "Client authentication", Kind: "select", Options: config.OutboundAuthMethods(), Value: o.ClientAuth},
		&input{Name: "private_key_file", Label: "Private key file", Kind: "text", Value: o.PrivateKeyFile, Hint: "For private_key_jwt: a PEM file on the server."},
		&input{Name: "key_id", Label: "Key ID", Kind: "text", Value: o.KeyID, Hint: "For private_key_jwt: the kid of the assertion."},
		&input{Name: "scopes", Label: "Scopes", Kind: "text", Value: strings.Join(o.Scopes, " "), Hint: "Asked for by default, separated by spaces."},
		&input{Name: "params", Label: "Extra parameters", Kind: "textarea", Value: pairsText(o.Params), Hint: "One per line: name = value (audience, resource…)."},
		&input{Name: "use_prompt", Label: "Send prompt on user sign-in", Kind: "checkbox", Checked: o.UsePrompt},
		&input{Name: "use_pkce", Label: "Use PKCE on user sign-in", Kind: "checkbox", Checked: o.UsePKCE},
		&input{Name: "redirect_uri", Label: "Redirect URI", Kind: "url", Value: o.RedirectURI, Hint: "Empty: this server's /oauth-callback."},
	)
	return f
}

// readOAuthServerForm reads the posted server and checks it with the rules
// the admin API applies (admin.CheckOAuthServer). keep is the secret kept
// when none is typed; switching to private_key_jwt drops it, as the API
// does. The typed secret is never put back into the form.
func (h *Handler) readOAuthServerForm(r *http.Request, f *idForm, name, keep string) (store.OAuthServer, bool) {
	pf := r.PostForm
	for _, in := range f.Inputs {
		switch in.Kind {
		case "checkbox":
			in.Checked = pf.Get(in.Name) != ""
		case "password":
		default:
			in.Value = pf.Get(in.Name)
		}
	}
	params, bad := pairs(pf.Get("params"))
	if bad != "" {
		f.fail("params", bad)
	}
	secret := keep
	if s := pf.Get("client_secret"); s != "" {
		secret = s
	} else if pf.Get("client_auth") == string(oidc.AuthMethodPrivateKeyJWT) {
		secret = ""
	}
	o, err := admin.CheckOAuthServer(config.OAuthServer{
		Name: name, MetadataURL: strings.TrimSpace(pf.Get("metadata_url")), TokenEndpoint: strings.TrimSpace(pf.Get("token_endpoint")),
		AuthorizationEndpoint: strings.TrimSpace(pf.Get("authorization_endpoint")), RefreshEndpoint: strings.TrimSpace(pf.Get("refresh_endpoint")),
		RevocationEndpoint: strings.TrimSpace(pf.Get("revocation_endpoint")), ClientID: strings.TrimSpace(pf.Get("client_id")),
		ClientSecret: secret, ClientAuth: pf.Get("client_auth"), PrivateKeyFile: strings.TrimSpace(pf.Get("private_key_file")),
		KeyID: strings.TrimSpace(pf.Get("key_id")), Scopes: words(pf.Get("scopes")), Params: params,
		UsePrompt: pf.Get("use_prompt") != "", UsePKCE: pf.Get("use_pkce") != "", RedirectURI: strings.TrimSpace(pf.Get("redirect_uri")),
	}, h.o.Identity.PublicURL, store.SourceAPI)
	if err != nil {
		f.failAll(err)
	}
	return o, !f.failed()
}

func (h *Handler) adminOAuthServers(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	h.oauthServersPage(w, r, u, http.StatusOK, oauthServerForm(store.OAuthServer{UsePrompt: true, UsePKCE: true}, true))
}

func (h *Handler) oauthServersPage(w http.ResponseWriter, r *http.Request, u *user, status int, create *idForm) {
	l, next, err := h.o.Identity.Store.ListOAuthServers(r.Context(), listCursor(r))
	if err != nil {
		h.pageError(w, u, "listing OAuth servers", err)
		return
	}
	lp := &listPage{Columns: []string{"Name", "Metadata or token endpoint", "Client ID", "Authentication", "Source"},
		Empty: "No OAuth servers yet.", Next: nextLink("/admin/oauth-servers", next), Create: create}
	for _, o := range l {
		where := o.MetadataURL
		if where == "" {
			where = o.TokenEndpoint
		}
		lp.add(oauthServerKind().path(o.Name), o.Name, where, o.ClientID, o.ClientAuth, o.Source)
	}
	h.renderID(w, status, u, "admin/oauth-servers", "OAuth servers", notice(r), idPage{List: lp})
}

func (h *Handler) adminCreateOAuthServer(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	f := oauthServerForm(store.OAuthServer{}, true)
	o, ok := h.readOAuthServerForm(r, f, strings.TrimSpace(r.PostForm.Get("name")), "")
	if !ok {
		h.oauthServersPage(w, r, u, http.StatusBadRequest, f)
		return
	}
	o.CreatedAt = time.Now().UTC()
	o.UpdatedAt = o.CreatedAt
	if err := h.o.Identity.Changes.CreateOAuthServer(ctx, u.who(), o); err != nil {
		if status, ok := h.storeFailure(w, u, f, "name", err); ok {
			h.oauthServersPage(w, r, u, status, f)
		}
		return
	}
	redirectDone(w, r, oauthServerKind().path(o.Name), "created")
}

func (h *Handler) readOAuthServer(w http.ResponseWriter, r *http.Request, u *user) (store.OAuthServer, bool) {
	o, err := h.o.Identity.Store.GetOAuthServer(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, u)
		return o, false
	}
	if err != nil {
		h.pageError(w, u, "reading an OAuth server", err)
		return o, false
	}
	return o, true
}

func (h *Handler) adminOAuthServer(w http.ResponseWriter, r *http.Request) {
	u := h.adminUser(w, r)
	if u == nil {
		return
	}
	o, ok := h.readOAuthServer(w, r, u)
	if !ok {
		return
	}
	h.oauthServerPage(w, u, http.StatusOK, notice(r), o, nil, nil)
}

func (h *Handler) oauthServerPage(w http.ResponseWriter, u *user, status int, notice string, o store.OAuthServer, form *idForm, probe *probeView) {
	if form == nil {
		form = oauthServerForm(o, false)
	}
	secret := "not set"
	if o.ClientSecret != "" {
		secret = "set (never shown)"
	}
	ep := &editPage{
		Facts: []fact{{"Name", o.Name}, {"Client secret", secret}, {"Source", sourceText(o.Source)},
			{"Created", stampOf(o.CreatedAt)}, {"Updated", stampOf(o.UpdatedAt)}},
		Probe: probe,
		Forms: []*idForm{form},
		Buttons: []*idForm{{Action: oauthServerKind().path(o.Name) + "/test", Submit: "Test",
			Hint: "Runs the client credentials grant with the default scopes; the token is not shown or kept."}},
		Back: link{"/admin/oauth-servers", "All OAuth servers"}, Remove: oauthServerKind().path(o.Name) + "/remove",
	}
	h.renderID(w, status, u, "admin/oauth-servers", "OAuth server "+o.Name, notice, idPage{Edit: ep})
}

func (h *Handler) adminUpdateOAuthServer(w http.ResponseWriter, r *http.Request) {
	u, ctx := h.adminPost(w, r)
	if u == nil {
		return
	}
	cur, ok := h.readOAuthServer(w, r, u)
	if !ok {
		return
	}
	f := oauthServerForm(cur, false)
	o, ok := h.readOAuthServerForm(r, f, cur.Name, cur.ClientSecret)
	if !ok {
		h.oauthServerPage(w, u, http.StatusBadRequest, "", cur, f, nil)
		return
	}
	o.CreatedAt, o.UpdatedAt = cur.CreatedAt, time.Now().UTC()
	if err := h.o.Identity.Changes.UpdateOAuthServer(ctx, u.who(), o); err != nil {
		if status, ok := h.storeFailure(w, u, f, "name", err); ok {
			h.oauthServerPage(w, u, status, "", cur, f, nil)
		}
		return
	}
	redirectDone(w, r, oauthServerKind().path(o.Name), "saved")
}

func (h *Handler) adminTestOAuthServer(w http.ResponseWriter, r *http.Request) {
	u, _ := h.adminPost(w, r)
	if u == nil {
		return
	}
	o, ok := h.readOAuthServer(w, r, u)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	p := admin.ProbeOAuthServer(ctx, h.o.Identity.HTTPClient, h.o.Identity.Store, o)
	pv := &probeView{OK: p.OK}
	if p.TokenEndpoint != "" {
		pv.Facts = append(pv.Facts, fact{"Token endpoint", p.TokenEndpoint})
	}
	if p.OK {
		scopes := strings.Join(p.Scopes, " ")
		if scopes == "" {
			scopes = "(none named by the server)"
		}
		pv.Facts = append(pv.Facts, fact{"Client credentials", "a token was issued (not shown)"},
			fact{"Token type", p.TokenType}, fact{"Expires in", fmt.Sprintf("%d s", p.ExpiresIn)}, fact{"Scopes granted", scopes})
	} else {
		pv.Error = p.Err
		if p.ErrCode != "" {
			pv.Facts = append(pv.Facts, fact{"Error code", p.ErrCode})
		}
		pv.Facts = append(pv.Facts, fact{"Kind of failure", p.ErrKind})
	}
	h.oauthServerPage(w, u, http.StatusOK, "", o, nil, pv)
}
