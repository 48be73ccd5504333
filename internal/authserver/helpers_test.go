package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	rpCallback   = "http://rp.invalid/callback"
	rpLoggedOut  = "http://rp.invalid/bye"
	alicePass    = "correct horse battery staple"
	portalSecret = "portal-secret-0123456789"
	svcSecret    = "svc-secret-0123456789"
)

type recorder struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (r *recorder) Record(_ context.Context, e store.AuditEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Healthy is the recorder's: always writing.
func (r *recorder) Healthy() error { return nil }

func (r *recorder) has(event, outcome, detailPart string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Event == event && e.Outcome == outcome && strings.Contains(e.Detail, detailPart) {
			return true
		}
	}
	return false
}

type env struct {
	t       testing.TB
	st      store.Store
	ring    *keyring.Ring
	srv     *Server
	http    *httptest.Server
	issuer  string
	audit   *recorder
	jwtKey  *ecdsa.PrivateKey
	auth    config.Auth
	hasher  *credential.Hasher
	mux     *http.ServeMux
	cancel  context.CancelFunc
	handler http.Handler
}

func sqliteStore(t testing.TB, ring *keyring.Ring) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fg.db"), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRing(t testing.TB) *keyring.Ring {
	text, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testAuth() config.Auth {
	return config.Auth{
		AccessTokenTTL: time.Hour, IDTokenTTL: time.Hour, RefreshTokens: true, RefreshTokenTTL: 24 * time.Hour,
		SigningAlg: "ES256", Session: config.Session{Cookie: "persistent", IdleTimeout: 20 * time.Minute, SSO: true},
		ShowDetailedErrors: true, AuditLog: true,
	}
}

// newEnv starts a provider on a real HTTP server over st (nil: a fresh
// SQLite database) and seeds users and clients.
func newEnv(t testing.TB, st store.Store, ring *keyring.Ring, seed bool) *env {
	t.Helper()
	return newEnvWith(t, st, ring, seed, nil)
}

// newEnvWith is newEnv with the auth configuration changed by mod (nil:
// testAuth as it is) before the server starts.
func newEnvWith(t testing.TB, st store.Store, ring *keyring.Ring, seed bool, mod func(*config.Auth)) *env {
	t.Helper()
	if ring == nil {
		ring = newRing(t)
	}
	if st == nil {
		st = sqliteStore(t, ring)
	}
	e := &env{t: t, st: st, ring: ring, audit: &recorder{}, auth: testAuth()}
	if mod != nil {
		mod(&e.auth)
	}
	var err error
	if e.hasher, err = credential.NewHasher(credential.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}); err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }))
	t.Cleanup(e.http.Close)
	e.issuer = e.http.URL
	if seed {
		e.seed()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.cancel = cancel
	e.srv, err = New(ctx, Options{Issuer: e.issuer, Store: st, Ring: ring, Hasher: e.hasher, Auth: e.auth,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auditor: e.audit,
		// Clients' jwks_uri servers are on 127.0.0.1, which the default
		// egress policy refuses.
		HTTPClient: egresstest.Client(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	e.mux = http.NewServeMux()
	e.srv.Register(e.mux)
	e.handler = e.mux
	return e
}

func (e *env) seed() {
	t, ctx := e.t, context.Background()
	hash, err := e.hasher.Hash(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.User{
		{Username: "alice", PasswordHash: hash, Email: "alice@example.com", EmailVerified: true, Name: "Alice Example"},
		{Username: "bob", PasswordHash: hash, Disabled: true},
	} {
		if err := e.st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	e.jwtKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: e.jwtKey.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	all := []string{"authorization_code", "refresh_token", "client_credentials"}
	for _, c := range []store.Client{
		{ID: "portal", Name: "Expense portal", SecretHash: credential.HashClientSecret(e.ring, portalSecret), RedirectURIs: []string{rpCallback},
			PostLogoutRedirectURIs: []string{rpLoggedOut}, GrantTypes: all, Scopes: []string{"openid", "profile", "email", "offline_access", "workflows.read"},
			TokenEndpointAuthMethod: "client_secret_basic", Consent: "user"},
		{ID: "spa", RedirectURIs: []string{rpCallback}, GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: "none", Consent: "admin"},
		{ID: "svc", SecretHash: credential.HashClientSecret(e.ring, svcSecret), GrantTypes: []string{"client_credentials"},
			Scopes: []string{"workflows.read", "flows.invoke"}, TokenEndpointAuthMethod: "client_secret_post"},
		{ID: "jwtc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"flows.invoke"},
			TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(jwks)},
	} {
		if err := e.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) oauth2Config(clientID, secret string, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: rpCallback, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + PathAuthorize, TokenURL: e.issuer + PathToken, AuthStyle: style},
	}
}

// browser is an http.Client with cookies that stops at the RP's redirect.
func browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "rp.invalid" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

var hiddenRE = regexp.MustCompile(`name="(csrf_token|request)" value="([^"]*)"`)

// formFields reads the hidden fields of a page.
func formFields(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(string(b), -1) {
		v.Set(m[1], m[2])
	}
	if v.Get("csrf_token") == "" {
		t.Fatalf("no csrf_token on page (status %d): %s", resp.StatusCode, b)
	}
	return v
}

func get(t testing.TB, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func postForm(t testing.TB, c *http.Client, u string, v url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// redirectParams returns the query of a redirect to the RP.
func redirectParams(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want a redirect to the RP: %s", resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != "rp.invalid" {
		t.Fatalf("redirect to %q, want the RP", resp.Header.Get("Location"))
	}
	return loc.Query()
}

// login drives the login page (and the consent page when it comes) for
// an authorize URL and returns the RP's callback parameters.
func (e *env) login(c *http.Client, authURL, user, pass string) url.Values {
	t := e.t
	t.Helper()
	resp := get(t, c, authURL)
	if resp.Request.URL.Path != PathLogin {
		return redirectParams(t, resp)
	}
	f := formFields(t, resp)
	f.Set("username", user)
	f.Set("password", pass)
	resp = postForm(t, c, e.issuer+PathLogin, f)
	if resp.Request.URL.Path == PathConsent && resp.StatusCode == http.StatusOK {
		f = formFields(t, resp)
		f.Set("decision", "approve")
		resp = postForm(t, c, e.issuer+PathConsent, f)
	}
	return redirectParams(t, resp)
}

func pkce() (verifier, challenge string) {
	verifier = oauth2.GenerateVerifier()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenRequest posts a raw token-endpoint form.
func (e *env) tokenRequest(path string, v url.Values, basicID, basicSecret string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (e *env) introspect(token string) map[string]any {
	code, m := e.tokenRequest(PathIntrospect, url.Values{"token": {token}}, "portal", portalSecret)
	if code != http.StatusOK {
		e.t.Fatalf("introspect status %d: %v", code, m)
	}
	return m
}

// decodeJWT splits a token into header and claims without verifying.
func decodeJWT(t testing.TB, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	var h, c map[string]any
	for i, dst := range []*map[string]any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return h, c
}
