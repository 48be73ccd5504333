package api

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// oauthServerJSON is an OAuth server as the API shows it: the client
// secret is write-only, ClientSecretSet says whether there is one.
type oauthServerJSON struct {
	Name                  string            `json:"name"`
	MetadataURL           string            `json:"metadata_url"`
	AuthorizationEndpoint string            `json:"authorization_endpoint"`
	TokenEndpoint         string            `json:"token_endpoint"`
	RefreshEndpoint       string            `json:"refresh_endpoint"`
	RevocationEndpoint    string            `json:"revocation_endpoint"`
	ClientID              string            `json:"client_id"`
	ClientSecretSet       bool              `json:"client_secret_set"`
	ClientAuth            string            `json:"client_auth"`
	PrivateKeyFile        string            `json:"private_key_file"`
	KeyID                 string            `json:"key_id"`
	Scopes                []string          `json:"scopes"`
	Params                map[string]string `json:"params"`
	UsePrompt             bool              `json:"use_prompt"`
	UsePKCE               bool              `json:"use_pkce"`
	RedirectURI           string            `json:"redirect_uri"`
	DPoP                  bool              `json:"dpop"`
	Source                string            `json:"source"`
	CreatedAt             string            `json:"created_at"`
	UpdatedAt             string            `json:"updated_at"`
}

func toOAuthServerJSON(o store.OAuthServer) oauthServerJSON {
	return oauthServerJSON{
		Name: o.Name, MetadataURL: o.MetadataURL, AuthorizationEndpoint: o.AuthorizationEndpoint,
		TokenEndpoint: o.TokenEndpoint, RefreshEndpoint: o.RefreshEndpoint, RevocationEndpoint: o.RevocationEndpoint,
		ClientID: o.ClientID, ClientSecretSet: o.ClientSecret != "", ClientAuth: o.ClientAuth,
		PrivateKeyFile: o.PrivateKeyFile, KeyID: o.KeyID, Scopes: nonNil(o.Scopes), Params: nonNilMap(o.Params),
		UsePrompt: o.UsePrompt, UsePKCE: o.UsePKCE, RedirectURI: o.RedirectURI, DPoP: o.DPoP, Source: o.Source,
		CreatedAt: timeString(o.CreatedAt), UpdatedAt: timeString(o.UpdatedAt),
	}
}

// oauthServerRequest is the body of POST and PUT. PUT replaces the whole
// entry except the client secret, which is kept when not given (it is
// never shown, so a client cannot send it back).
type oauthServerRequest struct {
	Name                  string            `json:"name"`
	MetadataURL           string            `json:"metadata_url"`
	AuthorizationEndpoint string            `json:"authorization_endpoint"`
	TokenEndpoint         string            `json:"token_endpoint"`
	RefreshEndpoint       string            `json:"refresh_endpoint"`
	RevocationEndpoint    string            `json:"revocation_endpoint"`
	ClientID              string            `json:"client_id"`
	ClientSecret          *string           `json:"client_secret"`
	ClientAuth            string            `json:"client_auth"`
	PrivateKeyFile        string            `json:"private_key_file"`
	KeyID                 string            `json:"key_id"`
	Scopes                []string          `json:"scopes"`
	Params                map[string]string `json:"params"`
	UsePrompt             *bool             `json:"use_prompt"`
	UsePKCE               *bool             `json:"use_pkce"`
	RedirectURI           string            `json:"redirect_uri"`
	DPoP                  bool              `json:"dpop"`
	// Output-only fields a GET answer carries; accepted and ignored so
	// that an answer can be edited and PUT back.
	ClientSecretSet *bool  `json:"client_secret_set"`
	Source          string `json:"source"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
}

// validOAuthServer validates a body with the configuration's rules;
// secret is the secret to keep when the body has none. False when it
// answered a 400.
func (a *API) validOAuthServer(w http.ResponseWriter, in oauthServerRequest, secret string) (store.OAuthServer, bool) {
	if in.ClientSecret != nil {
		secret = *in.ClientSecret
	}
	if in.ClientAuth == string(oidc.AuthMethodPrivateKeyJWT) && in.ClientSecret == nil {
		// Switching to a key drops a kept secret rather than failing
		// "client_secret is not used with private_key_jwt".
		secret = ""
	}
	c := config.OAuthServer{
		Name: in.Name, MetadataURL: in.MetadataURL, AuthorizationEndpoint: in.AuthorizationEndpoint,
		TokenEndpoint: in.TokenEndpoint, RefreshEndpoint: in.RefreshEndpoint, RevocationEndpoint: in.RevocationEndpoint,
		ClientID: in.ClientID, ClientSecret: secret, ClientAuth: in.ClientAuth, PrivateKeyFile: in.PrivateKeyFile,
		KeyID: in.KeyID, Scopes: slices.Clone(in.Scopes), Params: maps.Clone(in.Params),
		UsePrompt: in.UsePrompt == nil || *in.UsePrompt, UsePKCE: in.UsePKCE == nil || *in.UsePKCE,
		RedirectURI: in.RedirectURI, DPoP: in.DPoP,
	}
	o, err := admin.CheckOAuthServer(c, a.publicURL, store.SourceAPI)
	if err != nil {
		fieldErrors(w, err)
		return store.OAuthServer{}, false
	}
	return o, true
}

func (a *API) listOAuthServers(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	l, next, err := a.st.ListOAuthServers(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]oauthServerJSON, len(l))
	for i, o := range l {
		out[i] = toOAuthServerJSON(o)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

func (a *API) getOAuthServer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	o, err := a.st.GetOAuthServer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "OAuth server", name)
		return
	}
	writeJSON(w, http.StatusOK, toOAuthServerJSON(o))
}

func (a *API) createOAuthServer(w http.ResponseWriter, r *http.Request) {
	var in oauthServerRequest
	if !decode(w, r, &in) {
		return
	}
	o, ok := a.validOAuthServer(w, in, "")
	if !ok {
		return
	}
	o.CreatedAt = time.Now().UTC()
	o.UpdatedAt = o.CreatedAt
	if err := a.changes.CreateOAuthServer(r.Context(), actor(r), o); err != nil {
		a.storeError(w, r, err, "OAuth server", o.Name)
		return
	}
	w.Header().Set("Location", "/api/v1/admin/oauth-servers/"+o.Name)
	writeJSON(w, http.StatusCreated, toOAuthServerJSON(o))
}

// putOAuthServer replaces a server; the entry becomes an API one (a
// config entry edited here is rewritten from the file at the next start).
func (a *API) putOAuthServer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var in oauthServerRequest
	if !decode(w, r, &in) {
		return
	}
	if in.Name == "" {
		in.Name = name
	} else if in.Name != name {
		badRequest(w, "name", "name cannot be changed (it is the OAuth server's key)")
		return
	}
	cur, err := a.st.GetOAuthServer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "OAuth server", name)
		return
	}
	o, ok := a.validOAuthServer(w, in, cur.ClientSecret)
	if !ok {
		return
	}
	o.CreatedAt, o.UpdatedAt = cur.CreatedAt, time.Now().UTC()
	if err := a.changes.UpdateOAuthServer(r.Context(), actor(r), o); err != nil {
		a.storeError(w, r, err, "OAuth server", name)
		return
	}
	writeJSON(w, http.StatusOK, toOAuthServerJSON(o))
}

func (a *API) deleteOAuthServer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.changes.RemoveOAuthServer(r.Context(), actor(r), name); err != nil {
		a.storeError(w, r, err, "OAuth server", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// oauthServerTest is what POST …/test found: never the token itself.
// On success: the token's type, lifetime and granted scopes (Scopes is
// the older name of GrantedScopes, kept for existing callers). On
// failure: Error says what went wrong, ErrorKind classifies it as the
// flow steps do (connectors.Kind: configuration, unreachable,
// invalid_scope, …) and ErrorCode is the provider's OAuth error code
// when it sent one (invalid_client, unauthorized_client, …).
type oauthServerTest struct {
	OK            bool     `json:"ok"`
	TokenEndpoint string   `json:"token_endpoint,omitempty"`
	TokenType     string   `json:"token_type,omitempty"`
	ExpiresIn     int64    `json:"expires_in,omitempty"`
	Scopes        []string `json:"scopes,omitzero"`
	GrantedScopes []string `json:"granted_scopes,omitzero"`
	Error         string   `json:"error,omitempty"`
	ErrorKind     string   `json:"error_kind,omitempty"`
	ErrorCode     string   `json:"error_code,omitempty"`
}

// testOAuthServer runs the client credentials grant against the server,
// with the server's default scopes, and reports the outcome. It always
// answers 200 once the server exists: the test ran, OK says whether it
// worked. The token obtained is dropped, never shown or kept.
//
// The request goes through connectors.Client, as every token request of
// the flows does (discovery, client_secret_basic, client_secret_post or
// private_key_jwt, the server's params), built here from the entry as it
// is now rather than taken from the vault's cache, which may hold the
// entry as it was before an edit for up to 30 s: a test right after a
// PUT must test what was PUT.
func (a *API) testOAuthServer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	o, err := a.st.GetOAuthServer(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err, "OAuth server", name)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	p := admin.ProbeOAuthServer(ctx, a.client, a.st, o)
	res := oauthServerTest{OK: p.OK, TokenEndpoint: p.TokenEndpoint, Error: p.Err, ErrorKind: p.ErrKind, ErrorCode: p.ErrCode}
	if p.OK {
		res.TokenType, res.ExpiresIn = p.TokenType, p.ExpiresIn
		res.GrantedScopes = nonNil(p.Scopes)
		res.Scopes = res.GrantedScopes
	}
	writeJSON(w, http.StatusOK, res)
}
