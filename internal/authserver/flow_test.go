package authserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/account"
	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	for _, p := range []string{PathDiscovery, PathASMetadata} {
		resp := get(t, http.DefaultClient, e.issuer+p)
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		want := map[string]string{
			"issuer": e.issuer, "authorization_endpoint": e.issuer + "/oauth2/authorize", "token_endpoint": e.issuer + "/oauth2/token",
			"jwks_uri": e.issuer + "/oauth2/jwks", "userinfo_endpoint": e.issuer + "/oauth2/userinfo",
			"revocation_endpoint": e.issuer + "/oauth2/revoke", "introspection_endpoint": e.issuer + "/oauth2/introspect",
			"end_session_endpoint": e.issuer + "/oauth2/logout",
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %s", p, k, m[k], v)
			}
		}
	}
	// go-oidc refuses a document whose issuer does not match.
	if _, err := oidc.NewProvider(t.Context(), e.issuer); err != nil {
		t.Fatal(err)
	}
	resp := get(t, http.DefaultClient, e.issuer+PathJWKS)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	algs := map[string]bool{}
	for _, k := range set.Keys {
		algs[k["alg"].(string)] = true
		if _, ok := k["d"]; ok {
			t.Fatal("JWKS publishes a private key")
		}
	}
	if !algs["ES256"] || !algs["RS256"] {
		t.Fatalf("JWKS algs = %v, want ES256 (access) and RS256 (ID)", algs)
	}
	// Wrong method: 405.
	resp = get(t, http.DefaultClient, e.issuer+PathToken)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET token: %d, want 405", resp.StatusCode)
	}
}

func TestAuthCodeFlowSQLite(t *testing.T) { testAuthCodeFlow(t, newEnv(t, nil, nil, true)) }

func TestAuthCodeFlowPostgres(t *testing.T) {
	ring := newRing(t)
	st, err := postgres.Open(context.Background(), pgtest.DSN(t), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	testAuthCodeFlow(t, newEnv(t, st, ring, true))
}

func testAuthCodeFlow(t *testing.T, e *env) {
	ctx := t.Context()
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess)
	cfg.Endpoint = provider.Endpoint()
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	verifier := oauth2.GenerateVerifier()
	nonce := "n-" + oauth2.GenerateVerifier()[:10]
	b := browser(t)
	cb := e.login(b, cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce), oauth2.SetAuthURLParam("login_hint", "alice")), "alice", alicePass)
	if cb.Get("state") != "st-1" || cb.Get("iss") != e.issuer || cb.Get("code") == "" {
		t.Fatalf("callback = %v", cb)
	}
	tok, err := cfg.Exchange(ctx, cb.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "portal"}).Verify(ctx, rawID)
	if err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != nonce || idt.Subject != "alice" {
		t.Fatalf("id token nonce %q sub %q", idt.Nonce, idt.Subject)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var profile struct {
		Email    string `json:"email"`
		AuthTime int64  `json:"auth_time"`
	}
	_ = idt.Claims(&profile)
	if profile.Email != "alice@example.com" || profile.AuthTime == 0 {
		t.Errorf("id token claims %+v", profile)
	}
	if h, _ := decodeJWT(t, rawID); h["alg"] != "RS256" {
		t.Errorf("id token alg %v, want RS256", h["alg"])
	}

	// Access token: RFC 9068.
	h, c := decodeJWT(t, tok.AccessToken)
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == nil {
		t.Errorf("access token header %v", h)
	}
	for _, k := range []string{"iss", "sub", "aud", "client_id", "scope", "exp", "iat", "jti"} {
		if _, ok := c[k]; !ok {
			t.Errorf("access token lacks %s", k)
		}
	}
	if c["aud"] != e.issuer || c["sub"] != "alice" || c["client_id"] != "portal" {
		t.Errorf("access token claims %v", c)
	}

	// Userinfo through go-oidc.
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "alice" || ui.Email != "alice@example.com" {
		t.Errorf("userinfo %+v", ui)
	}

	// Introspection: active.
	if m := e.introspect(tok.AccessToken); m["active"] != true || m["sub"] != "alice" {
		t.Fatalf("introspect = %v", m)
	}

	// Refresh rotates; the old token then revokes the family.
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token despite offline_access")
	}
	code, r1 := e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "portal", portalSecret)
	if code != http.StatusOK || r1["refresh_token"] == tok.RefreshToken || r1["refresh_token"] == nil {
		t.Fatalf("refresh: %d %v", code, r1)
	}
	rt2 := r1["refresh_token"].(string)
	if m := e.introspect(rt2); m["active"] != true {
		t.Fatalf("rotated refresh token inactive: %v", m)
	}
	code, r2 := e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "portal", portalSecret)
	if code != http.StatusBadRequest || r2["error"] != "invalid_grant" {
		t.Fatalf("refresh reuse: %d %v", code, r2)
	}
	if !e.audit.has(audit.RefreshTokenReused, "failure", "") {
		t.Error("refresh reuse not audited")
	}
	code, r3 := e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}, "portal", portalSecret)
	if code != http.StatusBadRequest || r3["error"] != "invalid_grant" {
		t.Fatalf("successor after reuse must be revoked: %d %v", code, r3)
	}

	// Revocation of the access token.
	if code, _ := e.tokenRequest(PathRevoke, url.Values{"token": {tok.AccessToken}}, "portal", portalSecret); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if m := e.introspect(tok.AccessToken); m["active"] != false {
		t.Fatalf("revoked token still active: %v", m)
	}
	if revoked, _ := e.srv.Revoked(ctx, c["jti"].(string)); !revoked {
		t.Error("Revoked(jti) = false after revocation")
	}

	// SSO: a second authorization skips login and consent.
	v2 := oauth2.GenerateVerifier()
	cb = redirectParams(t, get(t, b, cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(v2), oidc.Nonce("n2"))))
	if cb.Get("code") == "" {
		t.Fatalf("SSO authorization: %v", cb)
	}
	// prompt=login forces the login page again.
	resp := get(t, b, cfg.AuthCodeURL("st-3", oauth2.S256ChallengeOption(v2), oauth2.SetAuthURLParam("prompt", "login")))
	resp.Body.Close()
	if resp.Request.URL.Path != PathLogin {
		t.Fatalf("prompt=login landed on %s", resp.Request.URL)
	}

	// RP-initiated logout with id_token_hint and a registered URI.
	lo := e.issuer + PathEndSession + "?" + url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}.Encode()
	if q := redirectParams(t, get(t, b, lo)); q.Get("state") != "bye" {
		t.Fatalf("logout redirect %v", q)
	}
	resp = get(t, b, cfg.AuthCodeURL("st-4", oauth2.S256ChallengeOption(v2), oauth2.SetAuthURLParam("prompt", "none")))
	if q := redirectParams(t, resp); q.Get("error") != "login_required" {
		t.Fatalf("after logout prompt=none: %v", q)
	}
	for _, ev := range []string{audit.LoginSuccess, audit.ConsentGranted, audit.TokenIssued, audit.TokenRefreshed, audit.TokenRevoked, audit.Logout} {
		if !e.audit.has(ev, "success", "") {
			t.Errorf("no successful %s audit event", ev)
		}
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	_, challenge := pkce()
	base := url.Values{"client_id": {"portal"}, "redirect_uri": {rpCallback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range base {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return e.issuer + PathAuthorize + "?" + q.Encode()
	}
	b := browser(t)
	for name, tc := range map[string]struct{ url, wantErr string }{
		"PKCE plain":          {with("code_challenge_method", "plain"), "invalid_request"},
		"PKCE method absent":  {with("code_challenge_method", ""), "invalid_request"},
		"scope not allowed":   {with("scope", "openid admin"), "invalid_scope"},
		"prompt=none":         {with("prompt", "none"), "login_required"},
		"response_type token": {with("response_type", "token"), "unsupported_response_type"},
	} {
		q := redirectParams(t, get(t, b, tc.url))
		if q.Get("error") != tc.wantErr || q.Get("state") != "s" {
			t.Errorf("%s: %v, want error %s", name, q, tc.wantErr)
		}
	}
	// Public client without PKCE.
	q := url.Values{"client_id": {"spa"}, "redirect_uri": {rpCallback}, "response_type": {"code"}, "scope": {"openid"}}
	if r := redirectParams(t, get(t, b, e.issuer+PathAuthorize+"?"+q.Encode())); r.Get("error") != "invalid_request" {
		t.Errorf("public client without PKCE: %v", r)
	}
	// Unknown client and unregistered redirect URI: an error page, no redirect.
	for name, u := range map[string]string{
		"unknown client":      with("client_id", "nobody"),
		"redirect mismatch":   with("redirect_uri", "http://evil.invalid/cb"),
		"redirect uri suffix": with("redirect_uri", rpCallback+"/x"),
	} {
		resp := get(t, b, u)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Host == "rp.invalid" || !strings.Contains(string(body), "<html") {
			t.Errorf("%s: status %d at %s", name, resp.StatusCode, resp.Request.URL)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: security headers missing", name)
		}
	}
}

func TestLoginRefusalsAndConsentDeny(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader, "openid")
	v := oauth2.GenerateVerifier()
	b := browser(t)
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v))

	// Disabled user.
	resp := get(t, b, authURL)
	f := formFields(t, resp)
	f.Set("username", "bob")
	f.Set("password", alicePass)
	resp = postForm(t, b, e.issuer+PathLogin, f)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "disabled") {
		t.Fatalf("disabled user: %d %s", resp.StatusCode, body)
	}
	if !e.audit.has(audit.LoginFailure, "failure", "user disabled") {
		t.Error("disabled login not audited")
	}
	// Missing CSRF token.
	f.Set("username", "alice")
	f.Set("password", alicePass)
	f.Del("csrf_token")
	resp = postForm(t, b, e.issuer+PathLogin, f)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", resp.StatusCode)
	}
	// Repeated failures are slowed down.
	var last string
	for range 8 {
		resp := get(t, b, authURL)
		f := formFields(t, resp)
		f.Set("username", "alice")
		f.Set("password", "wrong")
		resp = postForm(t, b, e.issuer+PathLogin, f)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(body)
	}
	if !strings.Contains(last, "Too many attempts, wait") {
		t.Fatalf("no rate limit after repeated failures: %s", last)
	}
	// The throttle's state is in the store: forget alice's failures there.
	if err := e.st.ClearSignInFailures(t.Context(), "alice", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}

	// Consent denied → access_denied at the RP.
	resp = get(t, b, authURL)
	f = formFields(t, resp)
	f.Set("username", "alice")
	f.Set("password", alicePass)
	resp = postForm(t, b, e.issuer+PathLogin, f)
	if resp.Request.URL.Path != PathConsent {
		t.Fatalf("expected consent page, at %s", resp.Request.URL)
	}
	f = formFields(t, resp)
	f.Set("decision", "deny")
	if q := redirectParams(t, postForm(t, b, e.issuer+PathConsent, f)); q.Get("error") != "access_denied" {
		t.Fatalf("deny: %v", q)
	}
	if !e.audit.has(audit.ConsentDenied, "failure", "denied") {
		t.Error("consent denial not audited")
	}
}

func TestCodeRefusals(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader, "openid", "offline_access")
	b := browser(t)
	newCode := func(verifier string) string {
		return e.login(b, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice", alicePass).Get("code")
	}
	exchange := func(code, verifier, redirect string) (int, map[string]any) {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
		if verifier != "" {
			v.Set("code_verifier", verifier)
		}
		return e.tokenRequest(PathToken, v, "portal", portalSecret)
	}
	v := oauth2.GenerateVerifier()
	for name, tc := range map[string]struct{ verifier, redirect string }{
		"missing verifier":  {"", rpCallback},
		"wrong verifier":    {oauth2.GenerateVerifier(), rpCallback},
		"redirect mismatch": {v, rpCallback + "?x=1"},
	} {
		code, m := exchange(newCode(v), tc.verifier, tc.redirect)
		if code != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	// Code reuse revokes what the first exchange issued.
	c := newCode(v)
	code, first := exchange(c, v, rpCallback)
	if code != http.StatusOK {
		t.Fatalf("exchange: %d %v", code, first)
	}
	code, m := exchange(c, v, rpCallback)
	if code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", code, m)
	}
	if im := e.introspect(first["access_token"].(string)); im["active"] != false {
		t.Errorf("access token of a reused code still active: %v", im)
	}
	code, m = e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}, "portal", portalSecret)
	if code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh token of a reused code still works: %d %v", code, m)
	}
	if !e.audit.has(audit.CodeReused, "failure", "") {
		t.Error("code reuse not audited")
	}
	// Expired code (older than 60 s).
	c = newCode(v)
	e.srv.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	code, m = exchange(c, v, rpCallback)
	e.srv.now = time.Now
	if code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("expired code: %d %v", code, m)
	}
	// Expired access token: introspection says inactive.
	e.srv.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	code, old := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
	e.srv.now = time.Now
	if code != http.StatusOK {
		t.Fatalf("cc: %d %v", code, old)
	}
	if im := e.introspect(old["access_token"].(string)); im["active"] != false {
		t.Errorf("expired token active: %v", im)
	}
	// A foreign token is inactive.
	if im := e.introspect("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"); im["active"] != false {
		t.Errorf("foreign token active: %v", im)
	}
	// Ending a user's access (what disabling does): their refresh tokens
	// stop working.
	c = newCode(v)
	_, fresh := exchange(c, v, rpCallback)
	if err := account.EndAccess(ctx, e.st, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	code, _ = e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh["refresh_token"].(string)}}, "portal", portalSecret)
	if code != http.StatusBadRequest {
		t.Errorf("refresh after EndAccess: %d", code)
	}
}
