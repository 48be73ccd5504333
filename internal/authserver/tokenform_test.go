package authserver

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/jwstest"
)

// apiServer serves Flowgate's APIs trusting e's provider, wired as serve wires them.
func (e *env) apiServer(t *testing.T) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	v, err := resource.NewValidator(t.Context(), resource.OwnIssuer{
		Issuer: e.issuer, Keys: e.srv.Keys().Keyfunc, Revoked: e.srv.Revoked,
		UserRoles: func(ctx context.Context, name string) ([]string, error) {
			u, err := e.st.GetUser(ctx, name)
			if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled {
				return nil, resource.ErrUnknownPrincipal
			}
			return u.Roles, err
		},
		ClientRoles: func(ctx context.Context, id string) ([]string, error) {
			c, err := e.st.GetClient(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, resource.ErrUnknownPrincipal
			}
			return c.Roles, err
		},
	}, nil, resource.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.New(api.Options{Store: e.st, Hasher: e.hasher, Ring: e.ring, Validator: v, Logger: quiet,
		PublicURL: e.issuer, SwitchRefresh: time.Hour}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// signIn signs user in at client in a browser and redeems the code: the client's tokens.
func (e *env) signIn(t *testing.T, clientID, secret, user string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := e.oauth2Config(clientID, secret, oauth2.AuthStyleInHeader, scopes...)
	verifier := oauth2.GenerateVerifier()
	cb := e.login(browser(t), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), user, alicePass)
	tok, err := cfg.Exchange(t.Context(), cb.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a GET with a bearer token and returns the status and JSON body.
func call(t *testing.T, u, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return doJSON(t, req)
}

// TestUserNamedLikeClient: a user "ops" signs in through a client "ops" that holds role admin.
// The user's token stands for user:ops with the user's roles (and is refused at the admin
// API); the client's own token stands for client:ops. Introspection and userinfo agree.
func TestUserNamedLikeClient(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	const opsSecret = "ops-secret-0123456789"
	hash, err := e.hasher.Hash(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(ctx, store.User{Username: "ops", PasswordHash: hash, Roles: []string{"employee"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateClient(ctx, store.Client{ID: "ops", SecretHash: credential.HashClientSecret(e.ring, opsSecret),
		RedirectURIs: []string{rpCallback}, GrantTypes: []string{"authorization_code", "client_credentials"},
		Scopes: []string{"openid", "admin"}, Roles: []string{"admin"}, TokenEndpointAuthMethod: "client_secret_basic", Consent: "admin"}); err != nil {
		t.Fatal(err)
	}
	apiURL := e.apiServer(t)

	user := e.signIn(t, "ops", opsSecret, "ops", "openid", "admin").AccessToken
	code, m := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, "ops", opsSecret)
	if code != http.StatusOK {
		t.Fatalf("client credentials: %d %v", code, m)
	}
	client := m["access_token"].(string)

	if code, me := call(t, apiURL+"/api/v1/me", user); code != http.StatusOK || me["principal"] != "user:ops" ||
		fmt.Sprint(me["roles"]) != "[employee]" {
		t.Errorf("the user's token: %d %v, want user:ops with role employee", code, me)
	}
	if code, m := call(t, apiURL+"/api/v1/admin/users", user); code != http.StatusForbidden {
		t.Errorf("the user's token at the admin API: %d %v, want 403", code, m)
	}
	if code, me := call(t, apiURL+"/api/v1/me", client); code != http.StatusOK || me["principal"] != "client:ops" {
		t.Errorf("the client's token: %d %v, want client:ops", code, me)
	}
	if code, m := call(t, apiURL+"/api/v1/admin/users", client); code != http.StatusOK {
		t.Errorf("the client's token at the admin API: %d %v, want 200", code, m)
	}

	introspect := func(token string) map[string]any {
		code, m := e.tokenRequest(PathIntrospect, url.Values{"token": {token}}, "ops", opsSecret)
		if code != http.StatusOK {
			t.Fatalf("introspect: %d %v", code, m)
		}
		return m
	}
	if m := introspect(user); m["active"] != true || m["username"] != "ops" {
		t.Errorf("introspection of the user's token: %v, want username ops", m)
	}
	if m := introspect(client); m["active"] != true || m["username"] != nil {
		t.Errorf("introspection of the client's token: %v, want no username", m)
	}
	userinfo := func(token string) (int, map[string]any) {
		return call(t, e.issuer+PathUserinfo, token)
	}
	if code, m := userinfo(user); code != http.StatusOK || m["sub"] != "ops" {
		t.Errorf("userinfo with the user's token: %d %v", code, m)
	}
	if code, _ := userinfo(client); code != http.StatusForbidden {
		t.Errorf("userinfo with the client's token: %d, want 403", code)
	}
}

// resign signs the claims of one of the provider's tokens again with the provider's own key,
// with extra header parameters: what no bug in our minting would make, but what an attacker
// holding a signing path might.
func resign(t *testing.T, key *signingKey, raw string, extra map[string]any) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.MapClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	priv, ok := key.priv.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("signing key is %T, want ECDSA", key.priv)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"], tok.Header["typ"] = key.id, "at+jwt"
	for k, v := range extra {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// critHeaders are the critical-extension headers every reader must refuse.
func critHeaders() map[string]map[string]any {
	return map[string]map[string]any{
		"crit b64":     {"crit": []string{"b64"}, "b64": true},
		"crit unknown": {"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": 1},
	}
}

// TestOnlyTheSignedSpellingIsAccepted: every other spelling of a token the provider signed,
// and a token re-signed with its key but with critical header extensions, is inactive at
// introspection, refused at userinfo and at the APIs, and cannot be revoked.
func TestOnlyTheSignedSpellingIsAccepted(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	apiURL := e.apiServer(t)
	raw := e.signIn(t, "portal", portalSecret, "alice", "openid", "workflows.read").AccessToken

	refused := func(t *testing.T, what, bad string) {
		t.Helper()
		if m := e.introspect(bad); m["active"] != false {
			t.Errorf("%s: introspection %v, want active false", what, m)
		}
		if strings.Contains(bad, "\n") {
			return // no HTTP client sends a line break in a header
		}
		if code, _ := call(t, e.issuer+PathUserinfo, bad); code != http.StatusUnauthorized {
			t.Errorf("%s: userinfo %d, want 401", what, code)
		}
		if code, m := call(t, apiURL+"/api/v1/me", bad); code != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error_description"]), "malformed token") {
			t.Errorf("%s: API %d %v, want 401 malformed token", what, code, m)
		}
	}
	variants := jwstest.Respellings(raw)
	for i, bad := range variants {
		refused(t, fmt.Sprintf("spelling %d of %d", i+1, len(variants)), bad)
	}
	for name, h := range critHeaders() {
		refused(t, name, resign(t, e.srv.keys.state.Load().access, raw, h))
	}
	// The key and claims are good: without crit the re-signed token is accepted.
	if m := e.introspect(resign(t, e.srv.keys.state.Load().access, raw, nil)); m["active"] != true {
		t.Fatalf("re-signed token without crit: %v", m)
	}

	// Revoking another spelling revokes nothing.
	if code, m := e.tokenRequest(PathRevoke, url.Values{"token": {variants[len(variants)-2]}}, "portal", portalSecret); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, m)
	}
	if m := e.introspect(raw); m["active"] != true {
		t.Fatalf("the signed spelling after revoking another: %v, want active", m)
	}
	if code, m := call(t, apiURL+"/api/v1/me", raw); code != http.StatusOK {
		t.Fatalf("the signed spelling at the API: %d %v", code, m)
	}
}

// TestClientAssertionOnlyInTheSignedSpelling: a private_key_jwt assertion (go-jose's path)
// in another spelling, or with critical header extensions, authenticates no one.
func TestClientAssertionOnlyInTheSignedSpelling(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	send := func(assertion string) (int, map[string]any) {
		return e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	}
	soon := time.Now().Add(time.Minute)
	n := 0
	fresh := func() string { // a new jti each time, so no refusal is a replay
		n++
		return e.assertion(t, "k1", e.issuer+PathToken, fmt.Sprintf("j-%d", n), soon)
	}
	for i := range len(jwstest.Respellings(fresh())) {
		bad := jwstest.Respellings(fresh())[i]
		if code, m := send(bad); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("spelling %d: %d %v, want 401 invalid_client", i+1, code, m)
		}
	}
	for name, h := range critHeaders() {
		claims := jwt.MapClaims{"iss": "jwtc", "sub": "jwtc", "aud": e.issuer + PathToken, "jti": "crit-" + name,
			"exp": soon.Unix(), "iat": time.Now().Unix()}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		tok.Header["kid"] = "k1"
		for k, v := range h {
			tok.Header[k] = v
		}
		bad, err := tok.SignedString(e.jwtKey)
		if err != nil {
			t.Fatal(err)
		}
		if code, m := send(bad); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("%s: %d %v, want 401 invalid_client", name, code, m)
		}
	}
	if !e.audit.has("client_auth.failure", "failure", "malformed client assertion: malformed token") {
		t.Error("the refusals are not audited as malformed assertions")
	}
	if code, m := send(fresh()); code != http.StatusOK {
		t.Fatalf("a fresh assertion in its signed spelling: %d %v", code, m)
	}
}

// TestIDTokenHintOnlyInTheSignedSpelling: RP-initiated logout refuses an id_token_hint in
// another spelling than the one signed.
func TestIDTokenHintOnlyInTheSignedSpelling(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	rawID, _ := e.signIn(t, "portal", portalSecret, "alice", "openid").Extra("id_token").(string)
	b := browser(t)
	logout := func(hint string) *http.Response {
		return get(t, b, e.issuer+PathEndSession+"?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}}.Encode())
	}
	for i, bad := range jwstest.Respellings(rawID) {
		resp := logout(bad)
		body := readBody(resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "id_token_hint") {
			t.Errorf("spelling %d: %d, want 400 naming id_token_hint", i+1, resp.StatusCode)
		}
	}
	redirectParams(t, logout(rawID)) // the signed spelling is honoured
}

// TestTokenParameterNamesAreCaseSensitive: OAuth parameter names are
// case-sensitive (RFC 6749), so a parameter spelled in another case is an
// unknown one, ignored, whichever field it would fill.
func TestTokenParameterNamesAreCaseSensitive(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	for name, tc := range map[string]struct {
		form         url.Values
		basic        bool
		status       int
		error, scope string
	}{
		"GRANT_TYPE is not grant_type": {url.Values{"GRANT_TYPE": {"client_credentials"}}, true, http.StatusBadRequest, "invalid_request", ""},
		// With SCOPE read as scope, openid would be refused as invalid_scope.
		"SCOPE is not scope": {url.Values{"grant_type": {"client_credentials"}, "SCOPE": {"openid"}}, true, http.StatusOK, "", "workflows.read"},
		"Client_Secret is not client_secret": {url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "Client_Secret": {svcSecret}},
			false, http.StatusUnauthorized, "invalid_client", ""},
		"exact names": {url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {svcSecret}, "scope": {"flows.invoke"}},
			false, http.StatusOK, "", "flows.invoke"},
	} {
		id, secret := "", ""
		if tc.basic {
			id, secret = "portal", portalSecret
		}
		code, m := e.tokenRequest(PathToken, tc.form, id, secret)
		if code != tc.status || (tc.error != "" && m["error"] != tc.error) || (tc.scope != "" && m["scope"] != tc.scope) {
			t.Errorf("%s: %d %v, want %d error %q scope %q", name, code, m, tc.status, tc.error, tc.scope)
		}
	}
}
