package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/flowgate/flowgate/internal/admin"
	"github.com/flowgate/flowgate/internal/store"
)

// clientJSON is a client as the API shows it: never the secret hash.
// ClientSecret is set only in the answer that generated it.
type clientJSON struct {
	ID                      string          `json:"id"`
	Name                    string          `json:"name"`
	RedirectURIs            []string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	Scopes                  []string        `json:"scopes"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	PublicKeyPEM            string          `json:"public_key_pem,omitempty"`
	Consent                 string          `json:"consent"`
	DPoP                    bool            `json:"dpop"`
	Roles                   []string        `json:"roles"`
	AllowedOrigins          []string        `json:"allowed_origins"`
	Audiences               []string        `json:"audiences"`
	SecretSet               bool            `json:"client_secret_set"`
	ClientSecret            string          `json:"client_secret,omitempty"`
	CreatedAt               string          `json:"created_at"`
	UpdatedAt               string          `json:"updated_at"`
}

func toClientJSON(c store.Client) clientJSON {
	out := clientJSON{
		ID: c.ID, Name: c.Name,
		RedirectURIs:            nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs:  nonNil(c.PostLogoutRedirectURIs),
		GrantTypes:              nonNil(c.GrantTypes),
		Scopes:                  nonNil(c.Scopes),
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		JWKSURI:                 c.JWKSURI, PublicKeyPEM: c.PublicKeyPEM,
		Consent: c.Consent, DPoP: c.DPoP, Roles: nonNil(c.Roles),
		AllowedOrigins: nonNil(c.AllowedOrigins), Audiences: nonNil(c.Audiences),
		SecretSet: c.SecretHash != "",
		CreatedAt: timeString(c.CreatedAt), UpdatedAt: timeString(c.UpdatedAt),
	}
	if c.JWKS != "" && json.Valid([]byte(c.JWKS)) {
		out.JWKS = json.RawMessage(c.JWKS)
	}
	return out
}

// clientRequest is the body of POST and PATCH; nil means "not given".
// There is no secret field: Flowgate generates client secrets, so that
// every one is 256 random bits.
type clientRequest struct {
	ID                      *string          `json:"id"`
	Name                    *string          `json:"name"`
	RedirectURIs            *[]string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  *[]string        `json:"post_logout_redirect_uris"`
	GrantTypes              *[]string        `json:"grant_types"`
	Scopes                  *[]string        `json:"scopes"`
	TokenEndpointAuthMethod *string          `json:"token_endpoint_auth_method"`
	JWKS                    *json.RawMessage `json:"jwks"`
	JWKSURI                 *string          `json:"jwks_uri"`
	PublicKeyPEM            *string          `json:"public_key_pem"`
	Consent                 *string          `json:"consent"`
	DPoP                    *bool            `json:"dpop"`
	Roles                   *[]string        `json:"roles"`
	AllowedOrigins          *[]string        `json:"allowed_origins"`
	Audiences               *[]string        `json:"audiences"`
}

// jwksText accepts the key set as a JSON object or as a string of JSON
// (as pasted from a provider); null or {} means none.
func jwksText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", true
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case raw[0] == '{':
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			return "", false
		}
		if len(m) == 0 {
			return "", true
		}
		return string(raw), true
	}
	return "", false
}

// applyClient copies the given fields of req onto c, applies the defaults
// of a declared client and validates the result with the configuration's
// rules; false when it answered a 400.
func applyClient(w http.ResponseWriter, req clientRequest, c *store.Client) bool {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	setList := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = slices.Clone(*src)
		}
	}
	set(&c.Name, req.Name)
	setList(&c.RedirectURIs, req.RedirectURIs)
	setList(&c.PostLogoutRedirectURIs, req.PostLogoutRedirectURIs)
	setList(&c.GrantTypes, req.GrantTypes)
	setList(&c.Scopes, req.Scopes)
	set(&c.TokenEndpointAuthMethod, req.TokenEndpointAuthMethod)
	set(&c.JWKSURI, req.JWKSURI)
	set(&c.PublicKeyPEM, req.PublicKeyPEM)
	set(&c.Consent, req.Consent)
	setList(&c.Roles, req.Roles)
	setList(&c.AllowedOrigins, req.AllowedOrigins)
	setList(&c.Audiences, req.Audiences)
	if req.DPoP != nil {
		c.DPoP = *req.DPoP
	}
	if req.JWKS != nil {
		text, ok := jwksText(*req.JWKS)
		if !ok {
			badRequest(w, "jwks", "jwks must be a JSON Web Key Set object ({\"keys\": [...]}) or a string holding one")
			return false
		}
		c.JWKS = text
	}
	if err := admin.CheckClient(c); err != nil {
		fieldErrors(w, err)
		return false
	}
	return true
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	p, ok := page(w, r)
	if !ok {
		return
	}
	clients, next, err := a.st.ListClients(r.Context(), p)
	if err != nil {
		a.listError(w, r, err)
		return
	}
	out := make([]clientJSON, len(clients))
	for i, c := range clients {
		out[i] = toClientJSON(c)
	}
	writeJSON(w, http.StatusOK, newList(out, next))
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := a.st.GetClient(r.Context(), id)
	if err != nil {
		a.storeError(w, r, err, "client", id)
		return
	}
	writeJSON(w, http.StatusOK, toClientJSON(c))
}

// createClient registers a client; a confidential one's generated secret
// is in this answer and nowhere else, ever.
func (a *API) createClient(w http.ResponseWriter, r *http.Request) {
	var req clientRequest
	if !decode(w, r, &req) {
		return
	}
	if req.ID == nil || *req.ID == "" {
		badRequest(w, "id", "id is required")
		return
	}
	now := time.Now().UTC()
	c := store.Client{ID: *req.ID, CreatedAt: now, UpdatedAt: now}
	if !applyClient(w, req, &c) {
		return
	}
	saved, secret, err := a.changes.CreateClient(r.Context(), actor(r), c)
	if err != nil {
		a.storeError(w, r, err, "client", c.ID)
		return
	}
	out := toClientJSON(saved)
	out.ClientSecret = secret
	w.Header().Set("Location", "/api/v1/admin/clients/"+c.ID)
	writeJSON(w, http.StatusCreated, out)
}

// patchClient changes the given fields. A client that becomes
// confidential gets a new secret, shown in this answer; one that stops
// using a secret loses its hash.
func (a *API) patchClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req clientRequest
	if !decode(w, r, &req) {
		return
	}
	if req.ID != nil && *req.ID != id {
		badRequest(w, "id", "id cannot be changed (it is the client's key)")
		return
	}
	c, err := a.st.GetClient(r.Context(), id)
	if err != nil {
		a.storeError(w, r, err, "client", id)
		return
	}
	if !applyClient(w, req, &c) {
		return
	}
	c, secret, err := a.changes.UpdateClient(r.Context(), actor(r), c)
	if err != nil {
		a.storeError(w, r, err, "client", id)
		return
	}
	out := toClientJSON(c)
	out.ClientSecret = secret
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.changes.RemoveClient(r.Context(), actor(r), id); err != nil {
		a.storeError(w, r, err, "client", id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateClientSecret replaces a confidential client's secret at once (the
// old one stops working) and shows the new one, this once.
func (a *API) rotateClientSecret(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	secret, err := a.changes.RotateClientSecret(r.Context(), actor(r), id)
	if errors.Is(err, admin.ErrNoSecret) {
		writeError(w, http.StatusConflict, "conflict", err.Error(), "")
		return
	}
	if err != nil {
		a.storeError(w, r, err, "client", id)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}{id, secret})
}
