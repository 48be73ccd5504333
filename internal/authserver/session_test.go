package authserver

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// authorizeURL is an authorization request of portal (consent: user) with
// PKCE; extra adds or replaces parameters.
func (e *env) authorizeURL(clientID, challenge string, extra url.Values) string {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {rpCallback}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return e.issuer + PathAuthorize + "?" + q.Encode()
}

// exchange redeems a code of portal and returns the token response.
func (e *env) exchange(code, verifier string) map[string]any {
	e.t.Helper()
	status, m := e.tokenRequest(PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpCallback},
		"code_verifier": {verifier}}, "portal", portalSecret)
	if status != http.StatusOK {
		e.t.Fatalf("exchange: %d %v", status, m)
	}
	return m
}

func TestMaxAge(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	v, ch := pkce()
	b := browser(t)
	cb := e.login(b, e.authorizeURL("portal", ch, nil), "alice", alicePass)
	_, idc := decodeJWT(t, e.exchange(cb.Get("code"), v)["id_token"].(string))
	first := int64(idc["auth_time"].(float64))
	if first == 0 {
		t.Fatal("ID token has no auth_time")
	}

	// Ten minutes later (the session idles out after twenty).
	later := 10 * time.Minute
	e.srv.now = func() time.Time { return time.Now().Add(later) }
	t.Cleanup(func() { e.srv.now = time.Now })

	// max_age larger than the session's age: SSO, same auth_time.
	q := redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"max_age": {"3600"}})))
	_, idc = decodeJWT(t, e.exchange(q.Get("code"), v)["id_token"].(string))
	if got := int64(idc["auth_time"].(float64)); got != first {
		t.Errorf("SSO within max_age: auth_time %d, want %d", got, first)
	}
	// max_age smaller: prompt=none cannot sign in again...
	q = redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"max_age": {"300"}, "prompt": {"none"}})))
	if q.Get("error") != "login_required" {
		t.Errorf("max_age exceeded with prompt=none: %v", q)
	}
	// ...and without it the login page comes back; the new ID token
	// carries the new auth_time.
	resp := get(t, b, e.authorizeURL("portal", ch, url.Values{"max_age": {"300"}}))
	resp.Body.Close()
	if resp.Request.URL.Path != PathLogin {
		t.Fatalf("max_age exceeded: landed on %s, want the login page", resp.Request.URL)
	}
	cb = e.login(b, e.authorizeURL("portal", ch, url.Values{"max_age": {"300"}}), "alice", alicePass)
	_, idc = decodeJWT(t, e.exchange(cb.Get("code"), v)["id_token"].(string))
	if got := int64(idc["auth_time"].(float64)); got < first+int64(later/time.Second)-5 {
		t.Errorf("after re-authentication auth_time %d, want about %d", got, first+int64(later/time.Second))
	}
	if q := redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"max_age": {"-1"}}))); q.Get("error") != "invalid_request" {
		t.Errorf("max_age=-1: %v", q)
	}
}

func TestConsentPrompts(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	v, ch := pkce()
	b := browser(t)
	// First authorization: consent asked and given (e.login approves).
	e.login(b, e.authorizeURL("portal", ch, nil), "alice", alicePass)
	landing := func(extra url.Values) string {
		t.Helper()
		resp := get(t, b, e.authorizeURL("portal", ch, extra))
		resp.Body.Close()
		if loc, err := url.Parse(resp.Header.Get("Location")); resp.StatusCode == http.StatusFound && err == nil && loc.Host == "rp.invalid" {
			if loc.Query().Get("code") == "" {
				t.Fatalf("redirect to the RP without a code: %s", loc)
			}
			return "rp"
		}
		return resp.Request.URL.Path
	}
	if got := landing(nil); got != "rp" {
		t.Fatalf("remembered consent: landed on %s", got)
	}
	if got := landing(url.Values{"prompt": {"consent"}}); got != PathConsent {
		t.Errorf("prompt=consent: landed on %s, want the consent page", got)
	}
	// More scopes: asked again, and prompt=none cannot.
	more := url.Values{"scope": {"openid profile"}}
	q := redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"scope": {"openid profile"}, "prompt": {"none"}})))
	if q.Get("error") != "consent_required" {
		t.Errorf("more scopes with prompt=none: %v", q)
	}
	resp := get(t, b, e.authorizeURL("portal", ch, more))
	if resp.Request.URL.Path != PathConsent {
		t.Fatalf("more scopes: landed on %s, want the consent page", resp.Request.URL)
	}
	body := readBody(resp)
	if !strings.Contains(body, "<li>profile</li>") {
		t.Errorf("consent page does not list the new scope: %s", body)
	}
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		f.Set(m[1], m[2])
	}
	f.Set("decision", "approve")
	q = redirectParams(t, postForm(t, b, e.issuer+PathConsent, f))
	tok := e.exchange(q.Get("code"), v)
	if tok["scope"] != "openid profile" {
		t.Errorf("granted scope %v", tok["scope"])
	}
	// Now remembered: both scope sets go straight through.
	for _, sc := range []string{"openid profile", "openid"} {
		if got := landing(url.Values{"scope": {sc}}); got != "rp" {
			t.Errorf("scope %q after consent: landed on %s", sc, got)
		}
	}
}

func readBody(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// TestAdminConsentNeverAsks: spa is registered with consent: admin.
func TestAdminConsentNeverAsks(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	_, ch := pkce()
	b := browser(t)
	resp := get(t, b, e.authorizeURL("spa", ch, nil))
	if resp.Request.URL.Path != PathLogin {
		t.Fatalf("landed on %s, want the login page", resp.Request.URL)
	}
	f := formFields(t, resp)
	f.Set("username", "alice")
	f.Set("password", alicePass)
	if q := redirectParams(t, postForm(t, b, e.issuer+PathLogin, f)); q.Get("code") == "" {
		t.Fatalf("after login: %v", q)
	}
	// More scopes than before: still no consent page.
	if q := redirectParams(t, get(t, b, e.authorizeURL("spa", ch, url.Values{"scope": {"openid offline_access"}}))); q.Get("code") == "" {
		t.Fatalf("more scopes: %v", q)
	}
	if e.audit.has(audit.ConsentGranted, audit.OutcomeSuccess, "") {
		t.Error("a consent was recorded for an admin-consented client")
	}
}

// handlerTransport serves a client's requests with a handler, for an
// issuer URL that is not a listening server (an https one).
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	ht.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// loginResponse drives authorize and the login page without following the
// login's redirect, and returns the login POST's response.
func loginResponse(t *testing.T, c *http.Client, issuer, authURL string) *http.Response {
	t.Helper()
	resp := get(t, c, authURL)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	loginURL, _ := url.Parse(issuer)
	loginURL, _ = loginURL.Parse(resp.Header.Get("Location"))
	resp = get(t, c, loginURL.String())
	f := formFields(t, resp)
	f.Set("username", "alice")
	f.Set("password", alicePass)
	resp = postForm(t, c, issuer+PathLogin, f)
	resp.Body.Close()
	return resp
}

func sessionSetCookie(resp *http.Response) (*http.Cookie, string) {
	for _, raw := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(raw, sessionCookie+"=") {
			c, _ := http.ParseSetCookie(raw)
			return c, raw
		}
	}
	return nil, ""
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	_, ch := pkce()
	for _, tc := range []struct {
		name, issuer, cookie string
		secure, persistent   bool
	}{
		{"http persistent", "", "persistent", false, true},
		{"https persistent", "https://fg.example", "persistent", true, true},
		{"https session", "https://fg.example", "session", true, false},
		{"http session", "", "session", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := testAuth()
			auth.Session.Cookie = tc.cookie
			issuer := tc.issuer
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			if issuer == "" {
				issuer = e.issuer
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			srv, err := New(ctx, Options{Issuer: issuer, Store: e.st, Ring: e.ring, Hasher: e.hasher, Auth: auth,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			srv.Register(mux)
			c.Transport = handlerTransport{mux}
			authURL := strings.Replace(e.authorizeURL("spa", ch, nil), e.issuer, issuer, 1)
			resp := loginResponse(t, c, issuer, authURL)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			// The login sets the cookie; SSO refreshes it with the same
			// attributes.
			ssoResp := get(t, c, authURL)
			ssoResp.Body.Close()
			for step, r := range map[string]*http.Response{"login": resp, "SSO": ssoResp} {
				ck, raw := sessionSetCookie(r)
				if ck == nil {
					t.Fatalf("%s: no session cookie set", step)
				}
				if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
					t.Errorf("%s: cookie %q: want HttpOnly, SameSite=Lax, Path=/", step, raw)
				}
				if ck.Secure != tc.secure {
					t.Errorf("%s: cookie %q: Secure = %v, want %v", step, raw, ck.Secure, tc.secure)
				}
				lifetime := ck.MaxAge != 0 || !ck.Expires.IsZero() || strings.Contains(strings.ToLower(raw), "expires=")
				if lifetime != tc.persistent {
					t.Errorf("%s: cookie %q: has a lifetime = %v, want %v", step, raw, lifetime, tc.persistent)
				}
				if tc.persistent && ck.MaxAge != int(auth.Session.IdleTimeout/time.Second) {
					t.Errorf("%s: cookie Max-Age %d, want the idle timeout", step, ck.MaxAge)
				}
			}
		})
	}
}

func TestLogoutPage(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	_, ch := pkce()
	b := browser(t)
	e.login(b, e.authorizeURL("portal", ch, nil), "alice", alicePass)
	live := func() bool {
		t.Helper()
		q := redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"prompt": {"none"}})))
		return q.Get("code") != ""
	}
	if !live() {
		t.Fatal("no session after login")
	}
	resp := get(t, b, e.issuer+PathLogout)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("GET /logout: %d %v", resp.StatusCode, resp.Header)
	}
	body := readBody(resp)
	if !strings.Contains(body, `<form method="post" action="/logout">`) {
		t.Fatalf("GET /logout shows no confirm form: %s", body)
	}
	// GET alone ends nothing.
	if !live() {
		t.Fatal("GET /logout ended the session")
	}
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		f.Set(m[1], m[2])
	}
	// Without the CSRF token: refused, session kept.
	resp = postForm(t, b, e.issuer+PathLogout, url.Values{"csrf_token": {"x"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !live() {
		t.Fatalf("POST /logout without CSRF: %d", resp.StatusCode)
	}
	resp = postForm(t, b, e.issuer+PathLogout, f)
	if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "signed out") {
		t.Fatalf("POST /logout: %d %s", resp.StatusCode, body)
	}
	if live() {
		t.Fatal("session still live after POST /logout")
	}
	if !e.audit.has(audit.Logout, audit.OutcomeSuccess, "") {
		t.Error("logout not audited")
	}
}

func TestLogoffRedirectURL(t *testing.T) {
	const home = "http://rp.invalid/home"
	e := newEnvWith(t, nil, nil, true, func(a *config.Auth) { a.LogoffRedirectURL = home })
	_, ch := pkce()
	b := browser(t)
	e.login(b, e.authorizeURL("portal", ch, nil), "alice", alicePass)
	resp := get(t, b, e.issuer+PathLogout)
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(readBody(resp), -1) {
		f.Set(m[1], m[2])
	}
	resp = postForm(t, b, e.issuer+PathLogout, f)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != home {
		t.Fatalf("POST /logout: %d to %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), home)
	}
	// RP-initiated logout without post_logout_redirect_uri goes there too;
	// with a registered one, that one wins.
	resp = get(t, b, e.issuer+PathEndSession+"?client_id=portal")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != home {
		t.Fatalf("end session: %d to %q, want %s", resp.StatusCode, resp.Header.Get("Location"), home)
	}
	resp = get(t, b, e.issuer+PathEndSession+"?"+url.Values{"client_id": {"portal"}, "post_logout_redirect_uri": {rpLoggedOut}}.Encode())
	resp.Body.Close()
	if resp.Header.Get("Location") != rpLoggedOut {
		t.Fatalf("end session with post_logout_redirect_uri: to %q", resp.Header.Get("Location"))
	}
}

// signAssertion makes a client assertion for clientID with any key.
func signAssertion(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid, clientID, aud, jti string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := josejwt.Signed(signer).Claims(josejwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: josejwt.Audience{aud}, ID: jti,
		Expiry: josejwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: josejwt.NewNumericDate(time.Now()),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPrivateKeyJWTKeySources(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The client publishes its keys on a server of its own.
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rsaKey.Public(), KeyID: "r1", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(jwksSrv.Close)
	der, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, c := range []store.Client{
		{ID: "remote", GrantTypes: []string{"client_credentials"}, Scopes: []string{"flows.invoke"}, TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: jwksSrv.URL + "/jwks.json"},
		{ID: "pemc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"flows.invoke"}, TokenEndpointAuthMethod: "private_key_jwt", PublicKeyPEM: pemKey},
	} {
		if err := e.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	send := func(assertion string) (int, map[string]any) {
		return e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	}
	tokenURL := e.issuer + PathToken
	for name, tc := range map[string]struct {
		assertion string
		ok        bool
	}{
		"jwks_uri RS256 with kid":    {signAssertion(t, rsaKey, jose.RS256, "r1", "remote", tokenURL, "a1"), true},
		"jwks_uri PS256 without kid": {signAssertion(t, rsaKey, jose.PS256, "", "remote", e.issuer, "a2"), true},
		"jwks_uri wrong key":         {signAssertion(t, otherRSA, jose.RS256, "r1", "remote", tokenURL, "a3"), false},
		"public_key_pem EdDSA":       {signAssertion(t, edKey, jose.EdDSA, "", "pemc", tokenURL, "p1"), true},
		"public_key_pem wrong key":   {signAssertion(t, otherRSA, jose.RS256, "", "pemc", tokenURL, "p2"), false},
	} {
		code, m := send(tc.assertion)
		if tc.ok && (code != http.StatusOK || m["access_token"] == nil) {
			t.Errorf("%s: %d %v", name, code, m)
		}
		if !tc.ok && (code != http.StatusUnauthorized || m["error"] != "invalid_client") {
			t.Errorf("%s: %d %v, want invalid_client", name, code, m)
		}
	}
	if n := fetches.Load(); n == 0 || n > 3 {
		t.Errorf("jwks_uri fetched %d times, want it cached", n)
	}
}

func TestAccessTokenSigningAlgs(t *testing.T) {
	for _, alg := range []string{"RS256", "EdDSA", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnvWith(t, nil, nil, true, func(a *config.Auth) { a.SigningAlg = alg })
			ctx := t.Context()
			v, ch := pkce()
			cb := e.login(browser(t), e.authorizeURL("portal", ch, nil), "alice", alicePass)
			user := e.exchange(cb.Get("code"), v)
			_, cc := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
			keys := oidc.NewRemoteKeySet(ctx, e.issuer+PathJWKS)
			for name, tok := range map[string]string{"authorization_code": user["access_token"].(string), "client_credentials": cc["access_token"].(string)} {
				h, _ := decodeJWT(t, tok)
				if h["alg"] != alg || h["typ"] != "at+jwt" {
					t.Errorf("%s: header %v, want alg %s", name, h, alg)
				}
				// go-oidc verifies against the published JWKS.
				if _, err := keys.VerifySignature(ctx, tok); err != nil {
					t.Errorf("%s: go-oidc: %v", name, err)
				}
				// The resource server's key function too.
				if _, err := jwt.Parse(tok, e.srv.Keys().Keyfunc); err != nil {
					t.Errorf("%s: Keyfunc: %v", name, err)
				}
				if m := e.introspect(tok); m["active"] != true {
					t.Errorf("%s: introspection %v", name, m)
				}
			}
			// ID tokens stay RS256 whatever signs access tokens.
			if h, _ := decodeJWT(t, user["id_token"].(string)); h["alg"] != "RS256" {
				t.Errorf("ID token alg %v", h["alg"])
			}
		})
	}
}

func TestErrorPageDetails(t *testing.T) {
	for _, detailed := range []bool{true, false} {
		e := newEnvWith(t, nil, nil, true, func(a *config.Auth) { a.ShowDetailedErrors = detailed })
		b := browser(t)
		for name, tc := range map[string]struct {
			do     func() *http.Response
			status int
			msg    string
			detail string
		}{
			"unknown client": {func() *http.Response {
				return get(t, b, e.issuer+PathAuthorize+"?client_id=nobody&response_type=code")
			}, http.StatusBadRequest, "not registered", "unknown client_id"},
			"unregistered redirect": {func() *http.Response {
				return get(t, b, e.issuer+PathAuthorize+"?client_id=portal&response_type=code&redirect_uri=http://evil.invalid/")
			}, http.StatusBadRequest, "return address", "redirect_uri is not registered"},
			"expired request": {func() *http.Response {
				return get(t, b, e.issuer+PathLogin+"?request=gone")
			}, http.StatusBadRequest, "expired", "unknown or expired authorization request"},
			"CSRF": {func() *http.Response {
				return postForm(t, b, e.issuer+PathLogin, url.Values{"request": {"x"}, "csrf_token": {"y"}})
			}, http.StatusForbidden, "form has expired", "CSRF token mismatch"},
		} {
			resp := tc.do()
			body := readBody(resp)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
				t.Errorf("detailed=%v %s: %d %s", detailed, name, resp.StatusCode, body)
			}
			if strings.Contains(body, tc.detail) != detailed {
				t.Errorf("detailed=%v %s: detail shown = %v: %s", detailed, name, !detailed, body)
			}
		}
	}
}
