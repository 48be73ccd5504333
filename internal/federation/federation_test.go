package federation

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

// hostile is an OpenID provider whose ID tokens the test writes: the
// refusals a well-behaved provider never gives cause to (wrong audience,
// wrong nonce, another key) need one that misbehaves on purpose.
type hostile struct {
	srv      *httptest.Server
	key, bad *rsa.PrivateKey

	mu sync.Mutex
	// edit changes the claims of the next ID token; sign with the wrong
	// key when badKey.
	edit   func(c map[string]any)
	badKey bool
	noID   bool
	// nonce is the last authorization request's.
	nonce string
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	h := &hostile{}
	var err error
	if h.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if h.bad, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	iss := h.srv.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": iss + "/auth", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/jwks", "end_session_endpoint": iss + "/logout", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &h.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if u, p, ok := r.BasicAuth(); !ok || u != "fg" || p != "fg-secret" || r.PostForm.Get("code_verifier") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		now := time.Now()
		claims := map[string]any{"iss": iss, "aud": "fg", "sub": "person-1", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nonce": h.nonce, "email": "pat@example.com", "email_verified": true, "preferred_username": "pat", "groups": []string{"g-approvers", "g-other"}}
		if h.edit != nil {
			h.edit(claims)
		}
		key := h.key
		if h.badKey {
			key = h.bad
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			panic(err)
		}
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			panic(err)
		}
		idt, _ := jws.CompactSerialize()
		resp := map[string]any{"access_token": "at-1", "token_type": "Bearer", "expires_in": 300}
		if !h.noID {
			resp["id_token"] = idt
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return h
}

func (h *hostile) set(edit func(map[string]any), badKey, noID bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.edit, h.badKey, h.noID = edit, badKey, noID
}

type env struct {
	st  Store
	svc *Service
	h   *hostile
	cfg config.IdentityProvider
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends are the stores the sign-in and linking tests run on.
var backends = []string{"sqlite", "postgres"}

// testStore opens an empty store of the backend.
func testStore(t *testing.T, backend string) Store {
	t.Helper()
	opts := store.Options{Sealer: storetest.NewSealer(t)}
	var (
		st interface {
			Store
			Close() error
		}
		err error
	)
	if backend == "postgres" {
		st, err = postgres.Open(t.Context(), pgtest.DSN(t), opts)
	} else {
		st, err = sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "f.db"), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newEnv(t *testing.T, edit func(*config.IdentityProvider)) *env {
	t.Helper()
	return newEnvOn(t, "sqlite", edit)
}

func newEnvOn(t *testing.T, backend string, edit func(*config.IdentityProvider)) *env {
	t.Helper()
	h := newHostile(t)
	st := testStore(t, backend)
	c := config.IdentityProvider{Name: "corp", Issuer: h.srv.URL, ClientID: "fg", ClientSecret: "fg-secret", CreateUsers: true,
		RoleMap: map[string]string{"g-approvers": "approver"}, DefaultRoles: []string{"member"}}
	if edit != nil {
		edit(&c)
	}
	c = c.WithDefaults()
	pol, err := egress.New([]string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(t.Context(), Options{Providers: []config.IdentityProvider{c}, PublicURL: "https://flowgate.example", Store: st,
		HTTPClient: pol.Client(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, svc: svc, h: h, cfg: c}
}

// begin starts a sign-in for browser and returns the state the provider
// would send back; the provider remembers the nonce.
func (e *env) begin(t *testing.T, browser string) string {
	t.Helper()
	u, err := e.svc.Begin(t.Context(), "corp", browser, Target{ReturnTo: "/tasks"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" ||
		q.Get("redirect_uri") != "https://flowgate.example/login/callback" || q.Get("client_id") != "fg" {
		t.Fatalf("authorization request %s", u)
	}
	e.h.mu.Lock()
	e.h.nonce = q.Get("nonce")
	e.h.mu.Unlock()
	return q.Get("state")
}

func (e *env) users(t *testing.T) int {
	t.Helper()
	n, err := e.st.(store.Users).CountUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) nothingCreated(t *testing.T) {
	t.Helper()
	if n := e.users(t); n != 0 {
		t.Errorf("%d users exist, want none", n)
	}
	if links, err := e.st.ListFederationLinks(t.Context(), ""); err != nil || len(links) != 0 {
		t.Errorf("links %v, want none (%v)", links, err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	if fe.Code != "invalid_state" && fe.Provider != "corp" {
		t.Errorf("error names provider %q, want corp", fe.Provider)
	}
}

func TestSignInCreatesAndLinks(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { testSignInCreatesAndLinks(t, newEnvOn(t, b, nil)) })
	}
}

func testSignInCreatesAndLinks(t *testing.T, e *env) {
	state := e.begin(t, "browser-1")
	res, err := e.svc.Finish(t.Context(), url.Values{"state": {state}, "code": {"c1"}, "iss": {e.h.srv.URL}}, "browser-1")
	if err != nil {
		t.Fatal(err)
	}
	if res.User.Username != "pat" || res.How != "created" || res.Target.ReturnTo != "/tasks" ||
		!slices.Equal(res.User.Roles, []string{"approver", "member"}) || !res.User.EmailVerified {
		t.Fatalf("result %+v", res)
	}
	// The same state again: used.
	_, err = e.svc.Finish(t.Context(), url.Values{"state": {state}, "code": {"c1"}}, "browser-1")
	wantCode(t, err, "invalid_state")
	// A second sign-in of the same person finds the link.
	state = e.begin(t, "browser-2")
	res, err = e.svc.Finish(t.Context(), url.Values{"state": {state}, "code": {"c2"}}, "browser-2")
	if err != nil || res.User.Username != "pat" || res.How != "link" {
		t.Fatalf("second sign-in: %+v, %v", res, err)
	}
	if n := e.users(t); n != 1 {
		t.Fatalf("%d users after two sign-ins, want 1", n)
	}
	if got := e.svc.EndSessionURL(t.Context(), "corp"); got != e.h.srv.URL+"/logout?client_id=fg" {
		t.Errorf("EndSessionURL = %q", got)
	}
	if u, err := e.svc.LinkedUser(t.Context(), e.h.srv.URL, "person-1", ""); err != nil || u != "pat" {
		t.Errorf("LinkedUser = %q, %v; want pat", u, err)
	}
	if u, _ := e.svc.LinkedUser(t.Context(), "https://other.example", "person-1", ""); u != "" {
		t.Errorf("LinkedUser for another issuer = %q, want none", u)
	}
}

// TestRefusals: each bad answer is refused with its reason, and nothing is
// created.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(map[string]any)
		badKey  bool
		noID    bool
		query   url.Values
		browser string
		code    string
	}{
		{name: "wrong audience", edit: func(c map[string]any) { c["aud"] = "another-client" }, code: "invalid_id_token"},
		{name: "wrong nonce", edit: func(c map[string]any) { c["nonce"] = "someone-elses" }, code: "invalid_nonce"},
		{name: "no nonce", edit: func(c map[string]any) { delete(c, "nonce") }, code: "invalid_nonce"},
		{name: "expired", edit: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, code: "invalid_id_token"},
		{name: "another issuer", edit: func(c map[string]any) { c["iss"] = "https://evil.example" }, code: "invalid_id_token"},
		{name: "signed by another key", badKey: true, code: "invalid_id_token"},
		{name: "no ID token", noID: true, code: "invalid_id_token"},
		{name: "no subject", edit: func(c map[string]any) { delete(c, "sub") }, code: "invalid_id_token"},
		{name: "error answer", query: url.Values{"error": {"access_denied"}}, code: "access_denied"},
		{name: "mix-up", query: url.Values{"iss": {"https://evil.example"}, "code": {"c"}}, code: "invalid_issuer"},
		{name: "another browser", browser: "browser-2", code: "invalid_state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.h.set(tc.edit, tc.badKey, tc.noID)
			state := e.begin(t, "browser-1")
			q := url.Values{"code": {"c1"}}
			if tc.query != nil {
				q = tc.query
			}
			q.Set("state", state)
			browser := "browser-1"
			if tc.browser != "" {
				browser = tc.browser
			}
			_, err := e.svc.Finish(t.Context(), q, browser)
			wantCode(t, err, tc.code)
			e.nothingCreated(t)
		})
	}
}

func TestProviderDown(t *testing.T) {
	e := newEnv(t, nil)
	e.h.srv.Close()
	_, err := e.svc.Begin(t.Context(), "corp", "browser-1", Target{ReturnTo: "/"})
	wantCode(t, err, "provider_unavailable")
	var fe *Error
	errors.As(err, &fe)
	if fe.Title != "corp" || fe.Reason == "" {
		t.Errorf("error %+v", fe)
	}
	e.nothingCreated(t)
}

func TestLinkingRules(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { testLinkingRules(t, newEnvOn(t, b, nil)) })
	}
}

func testLinkingRules(t *testing.T, e *env) {
	ctx := context.Background()
	c := e.cfg
	claims := func(sub, email string, verified bool, name string, groups ...string) map[string]any {
		g := make([]any, len(groups))
		for i, x := range groups {
			g[i] = x
		}
		return map[string]any{"sub": sub, "email": email, "email_verified": verified, "preferred_username": name, "groups": g}
	}
	for _, u := range []store.User{
		{Username: "pat", Email: "other@example.com"},
		{Username: "sam", Email: "Sam@Example.com", Roles: []string{"admin"}},
		{Username: "twin1", Email: "twin@example.com"}, {Username: "twin2", Email: "twin@example.com"},
		{Username: "gone", Email: "gone@example.com", Disabled: true},
	} {
		if err := e.st.(store.Users).CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	// A taken name gets a suffix.
	u, how, err := e.svc.Resolve(ctx, c, claims("p-2", "pat2@example.com", true, "pat"))
	if err != nil || u.Username != "pat-2" || how != "created" {
		t.Fatalf("taken username: %+v %s %v", u, how, err)
	}
	// Verified email links, keeping roles given in Flowgate.
	u, how, err = e.svc.Resolve(ctx, c, claims("s-1", "sam@example.com", true, "whatever", "g-approvers"))
	if err != nil || u.Username != "sam" || how != "email" || !slices.Equal(u.Roles, []string{"admin", "approver", "member"}) {
		t.Fatalf("email link: %+v %s %v", u, how, err)
	}
	// The provider's roles are recomputed: approver goes, admin stays.
	u, _, err = e.svc.Resolve(ctx, c, claims("s-1", "sam@example.com", true, "whatever"))
	if err != nil || !slices.Equal(u.Roles, []string{"admin", "member"}) {
		t.Fatalf("roles at the next sign-in: %+v %v", u, err)
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		code   string
	}{
		{"unverified email of an existing user", claims("x-1", "other@example.com", false, "x"), "email_not_verified"},
		{"two users with the email", claims("x-2", "twin@example.com", true, "x"), "email_ambiguous"},
		{"disabled user", claims("x-3", "gone@example.com", true, "x"), "user_disabled"},
	} {
		_, _, err := e.svc.Resolve(ctx, c, tc.claims)
		wantCode(t, err, tc.code)
	}
	// link_by none does not look at the address; create_users false
	// refuses.
	none := c
	none.LinkBy, none.CreateUsers = "none", false
	_, _, err = e.svc.Resolve(ctx, none, claims("x-4", "sam@example.com", true, "x"))
	wantCode(t, err, "no_account")
	if n := e.users(t); n != 6 {
		t.Errorf("%d users, want the 5 made here and pat-2", n)
	}
	// Removing a link is audited by whoever did it, and the next sign-in
	// follows the rules again.
	if err := e.svc.RemoveLink(ctx, "user:admin", "corp", "s-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveLink(ctx, "user:admin", "corp", "s-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second removal: %v, want ErrNotFound", err)
	}
}

func TestReadClaimsAndUsername(t *testing.T) {
	c := config.IdentityProvider{Name: "x", RoleMap: map[string]string{"a": "alpha", "b": "beta"}, DefaultRoles: []string{"member"}}.WithDefaults()
	got := ReadClaims(c, map[string]any{"sub": "s", "groups": "a c b", "email_verified": "true"})
	if !slices.Equal(got.Roles, []string{"alpha", "beta", "member"}) || !got.EmailVerified {
		t.Errorf("ReadClaims = %+v", got)
	}
	entra := config.IdentityProvider{Name: "e", Template: config.IdPTemplateEntra, Tenant: "t1"}.WithDefaults()
	if got := ReadClaims(entra, map[string]any{"sub": "pairwise", "oid": "object-id"}); got.Subject != "object-id" {
		t.Errorf("Entra subject = %q, want the oid", got.Subject)
	}
	for in, want := range map[string]string{
		"alice": "alice", "Jöns Jacob": "J-ns-Jacob", "  ": "", "a/b@c.d": "a-b@c.d", "-x-": "x",
		string(make([]byte, 100)): "",
	} {
		if got := Username(in); got != want {
			t.Errorf("Username(%q) = %q, want %q", in, got, want)
		}
	}
}
