package connectors_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

const accessTTL = 600 * time.Second

// Client credentials with each client authentication method the peer
// registers; the peer refuses a method other than the client's, so a
// success proves the method was the one configured.
func TestClientCredentialsAuthMethods(t *testing.T) {
	jwks, rsaPath, ecPath := pkjwtKeys(t)
	p := oauthpeer.Start(t, oauthpeer.Options{PKJWTJWKS: jwks, AccessTTL: accessTTL})
	ctx := testCtx(t)
	tests := []struct {
		name string
		srv  store.OAuthServer
		// check looks at the token request as sent.
		check func(t *testing.T, r recorded)
	}{
		{"client_secret_basic", store.OAuthServer{ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret, ClientAuth: connectors.AuthClientSecretBasic},
			func(t *testing.T, r recorded) {
				if id, secret, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok || id != oauthpeer.BasicClient || secret != oauthpeer.BasicSecret {
					t.Fatalf("no Basic client authentication: %v", r.Header)
				}
				if r.Form.Has("client_secret") {
					t.Fatal("client_secret in the body as well")
				}
			}},
		{"default is client_secret_basic", store.OAuthServer{ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret},
			func(t *testing.T, r recorded) {
				if _, _, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok {
					t.Fatal("no Basic client authentication")
				}
			}},
		{"client_secret_post", store.OAuthServer{ClientID: oauthpeer.PostClient, ClientSecret: oauthpeer.PostSecret, ClientAuth: connectors.AuthClientSecretPost},
			func(t *testing.T, r recorded) {
				if r.Form.Get("client_id") != oauthpeer.PostClient || r.Form.Get("client_secret") != oauthpeer.PostSecret {
					t.Fatalf("client_secret_post form %v", r.Form)
				}
				if r.Header.Get("Authorization") != "" {
					t.Fatal("Authorization header as well")
				}
			}},
		{"private_key_jwt RS256", store.OAuthServer{ClientID: oauthpeer.JWTClient, ClientAuth: connectors.AuthPrivateKeyJWT, PrivateKeyFile: rsaPath, KeyID: "rsa-1"},
			func(t *testing.T, r recorded) { checkAssertion(t, r, p.Issuer+"/token", "rsa-1", jose.RS256) }},
		{"private_key_jwt ES256", store.OAuthServer{ClientID: oauthpeer.JWTClient, ClientAuth: connectors.AuthPrivateKeyJWT, PrivateKeyFile: ecPath, KeyID: "ec-1"},
			func(t *testing.T, r recorded) { checkAssertion(t, r, p.Issuer+"/token", "ec-1", jose.ES256) }},
	}
	grants := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := tc.srv
			srv.MetadataURL, srv.Scopes = p.MetadataURL(), []string{"api.read"}
			c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec, Timeout: 5 * time.Second}})
			var jtis []string
			// Twice: a private_key_jwt assertion is single use, so the
			// second request needs a new one.
			for range 2 {
				tok, err := c.ClientCredentials(ctx, nil)
				if err != nil {
					t.Fatalf("client credentials: %v", err)
				}
				grants++
				if tok.AccessToken == "" || tok.RefreshToken != "" {
					t.Fatalf("token: access %t, refresh %t; want access only", tok.AccessToken != "", tok.RefreshToken != "")
				}
				if !strings.EqualFold(tok.TokenType, "bearer") {
					t.Fatalf("token type %q", tok.TokenType)
				}
				if d := time.Until(tok.Expiry); d < accessTTL-10*time.Second || d > accessTTL {
					t.Fatalf("expiry in %s, want about %s", d, accessTTL)
				}
				if tok.ExpiresIn < 590 || tok.ExpiresIn > 600 {
					t.Fatalf("expires_in %d, want about 600", tok.ExpiresIn)
				}
				if !slices.Equal(tok.Scopes, []string{"api.read"}) {
					t.Fatalf("scopes %q, want [api.read]", tok.Scopes)
				}
				r := rec.last(t, "/token")
				if r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != "api.read" {
					t.Fatalf("token request form %v", r.Form)
				}
				tc.check(t, r)
				jtis = append(jtis, assertionID(t, r))
			}
			if jtis[0] != "" && jtis[0] == jtis[1] {
				t.Fatal("the same client assertion jti was sent twice")
			}
			if s := p.Stats(t); s.ClientCredentialsGrants != grants {
				t.Fatalf("provider counted %d client credentials grants, want %d", s.ClientCredentialsGrants, grants)
			}
		})
	}

	// What the provider must refuse, so the successes above mean
	// something. (oidc-provider takes client_secret_basic and
	// client_secret_post as one method, so which one was sent is checked
	// on the request above instead.)
	refused := []struct {
		name string
		srv  store.OAuthServer
	}{
		{"wrong secret", store.OAuthServer{ClientID: oauthpeer.BasicClient, ClientSecret: "not-the-secret"}},
		{"wrong secret posted", store.OAuthServer{ClientID: oauthpeer.PostClient, ClientSecret: "not-the-secret", ClientAuth: connectors.AuthClientSecretPost}},
		// The JWKS has no key rsa-2: the provider picks the key by the
		// assertion's kid, so a kid not sent (or ignored) would pass.
		{"unknown key id", store.OAuthServer{ClientID: oauthpeer.JWTClient, ClientAuth: connectors.AuthPrivateKeyJWT, PrivateKeyFile: rsaPath, KeyID: "rsa-2"}},
		{"another key's id", store.OAuthServer{ClientID: oauthpeer.JWTClient, ClientAuth: connectors.AuthPrivateKeyJWT, PrivateKeyFile: rsaPath, KeyID: "ec-1"}},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			srv := tc.srv
			srv.MetadataURL = p.MetadataURL()
			_, err := newClient(t, srv, connectors.Options{}).ClientCredentials(ctx, nil)
			ce := wantKind(t, err, connectors.KindOther)
			if ce.Code != "invalid_client" || ce.Op != "client_credentials" || ce.Server != "peer" {
				t.Fatalf("error %+v, want invalid_client at client_credentials of peer", ce)
			}
			notIn(t, "error message", err.Error(), oauthpeer.BasicSecret, oauthpeer.PostSecret, "not-the-secret")
		})
	}
	if s := p.Stats(t); s.ClientCredentialsGrants != grants {
		t.Fatalf("provider counted %d client credentials grants, want %d", s.ClientCredentialsGrants, grants)
	}
}

// checkAssertion checks an RFC 7523 client assertion as sent: its
// header names the key, its claims the client and the endpoint.
func checkAssertion(t *testing.T, r recorded, aud, kid string, alg jose.SignatureAlgorithm) {
	t.Helper()
	if r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		t.Fatalf("client_assertion_type %q", r.Form.Get("client_assertion_type"))
	}
	if r.Form.Get("client_id") != oauthpeer.JWTClient || r.Form.Has("client_secret") || r.Header.Get("Authorization") != "" {
		t.Fatalf("private_key_jwt request has client_id %q, client_secret %t, Authorization %t",
			r.Form.Get("client_id"), r.Form.Has("client_secret"), r.Header.Get("Authorization") != "")
	}
	tok, err := jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("client assertion: %v", err)
	}
	if h := tok.Headers[0]; h.KeyID != kid || h.Algorithm != string(alg) {
		t.Fatalf("assertion header kid %q alg %q, want %q %s", h.KeyID, h.Algorithm, kid, alg)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != oauthpeer.JWTClient || c.Subject != oauthpeer.JWTClient || !c.Audience.Contains(aud) || c.ID == "" {
		t.Fatalf("assertion claims %+v, want iss = sub = %s, aud %s, a jti", c, oauthpeer.JWTClient, aud)
	}
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life <= 0 || life > 5*time.Minute {
		t.Fatalf("assertion lives %s, want a short while", life)
	}
}

func assertionID(t *testing.T, r recorded) string {
	t.Helper()
	a := r.Form.Get("client_assertion")
	if a == "" {
		return ""
	}
	tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// Endpoints come from discovery, from configuration, or both with the
// configuration winning; discovery is cached for an hour, a failed one
// not at all.
func TestDiscovery(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{AccessTTL: accessTTL})
	ctx := testCtx(t)
	basic := store.OAuthServer{ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret}

	t.Run("metadata_url", func(t *testing.T) {
		rec := &recorder{}
		now := time.Now()
		clock := func() time.Time { return now }
		srv := basic
		srv.MetadataURL = p.MetadataURL()
		c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec}, Now: clock})
		e, err := c.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := connectors.Endpoints{Authorization: p.Issuer + "/auth", Token: p.Issuer + "/token",
			Refresh: p.Issuer + "/token", Revocation: p.Issuer + "/token/revocation"}
		if e != want {
			t.Fatalf("endpoints %+v, want %+v", e, want)
		}
		if _, err := c.ClientCredentials(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.requests("/openid-configuration")); n != 1 {
			t.Fatalf("metadata fetched %d times, want once (cached)", n)
		}
		now = now.Add(61 * time.Minute)
		if _, err := c.ClientCredentials(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.requests("/openid-configuration")); n != 2 {
			t.Fatalf("metadata fetched %d times after an hour, want twice", n)
		}
	})

	t.Run("explicit endpoints", func(t *testing.T) {
		rec := &recorder{}
		srv := basic
		srv.AuthorizationEndpoint, srv.TokenEndpoint = p.Issuer+"/auth", p.Issuer+"/token"
		c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec}})
		e, err := c.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := connectors.Endpoints{Authorization: p.Issuer + "/auth", Token: p.Issuer + "/token", Refresh: p.Issuer + "/token"}
		if e != want {
			t.Fatalf("endpoints %+v, want %+v", e, want)
		}
		if _, err := c.ClientCredentials(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.requests("")); n != 1 {
			t.Fatalf("%d requests, want the token request alone (no discovery)", n)
		}
		if err := c.Revoke(ctx, "whatever", ""); !errors.Is(err, connectors.ErrNoRevocationEndpoint) {
			t.Fatalf("revoke without endpoint: %v, want ErrNoRevocationEndpoint", err)
		}
	})

	t.Run("configuration wins over discovery", func(t *testing.T) {
		rec := &recorder{}
		srv := basic
		srv.MetadataURL = p.MetadataURL()
		// A query string reaches the same endpoints and tells the
		// configured URLs from the discovered ones.
		srv.TokenEndpoint = p.Issuer + "/token?configured=1"
		srv.RefreshEndpoint = p.Issuer + "/token?refresh=1"
		srv.RevocationEndpoint = p.Issuer + "/token/revocation?configured=1"
		c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec}})
		e, err := c.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Token != srv.TokenEndpoint || e.Refresh != srv.RefreshEndpoint || e.Revocation != srv.RevocationEndpoint || e.Authorization != p.Issuer+"/auth" {
			t.Fatalf("endpoints %+v", e)
		}
		if _, err := c.ClientCredentials(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if r := rec.last(t, "/token"); r.URL.Query().Get("configured") != "1" {
			t.Fatalf("token request went to %s", r.URL)
		}
	})

	t.Run("failed discovery is not cached", func(t *testing.T) {
		rec := &recorder{}
		srv := basic
		srv.MetadataURL = p.Issuer + "/no-such-metadata"
		c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec}})
		for range 2 {
			_, err := c.ClientCredentials(ctx, nil)
			ce := wantKind(t, err, connectors.KindOther)
			if ce.Op != "discovery" {
				t.Fatalf("op %q, want discovery", ce.Op)
			}
		}
		if n := len(rec.requests("/no-such-metadata")); n != 2 {
			t.Fatalf("metadata fetched %d times, want twice", n)
		}
	})
}

// A step's scope overrides the server's.
func TestScopeOverride(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{AccessTTL: accessTTL})
	ctx := testCtx(t)
	rec := &recorder{}
	c := newClient(t, store.OAuthServer{MetadataURL: p.MetadataURL(), ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret,
		Scopes: []string{"api.read"}}, connectors.Options{HTTPClient: &http.Client{Transport: rec}})
	for _, tc := range []struct {
		ask, want []string
	}{
		{nil, []string{"api.read"}},
		{[]string{"api.write"}, []string{"api.write"}},
		{[]string{"api.read", "api.write"}, []string{"api.read", "api.write"}},
	} {
		tok, err := c.ClientCredentials(ctx, tc.ask)
		if err != nil {
			t.Fatalf("scopes %q: %v", tc.ask, err)
		}
		got := slices.Sorted(slices.Values(tok.Scopes))
		if !slices.Equal(got, tc.want) {
			t.Fatalf("asked %q: granted %q, want %q", tc.ask, got, tc.want)
		}
		if sent := rec.last(t, "/token").Form.Get("scope"); sent != strings.Join(tc.want, " ") {
			t.Fatalf("asked %q: sent scope %q", tc.ask, sent)
		}
	}
}

// The server's params go on every token request (client credentials,
// code exchange, refresh) and on the authorization request; a request's
// own parameter wins.
func TestExtraParams(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{AccessTTL: accessTTL})
	ctx := testCtx(t)
	rec := &recorder{}
	srv := store.OAuthServer{MetadataURL: p.MetadataURL(), ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret,
		Scopes: []string{"openid", "api.read"}, RedirectURI: p.RedirectURI(),
		Params: map[string]string{"audience": "https://api.example"}}
	c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec}})

	if _, err := c.ClientCredentials(ctx, []string{"api.read"}); err != nil {
		t.Fatal(err)
	}
	r := rec.last(t, "/token")
	if r.Form.Get("audience") != "https://api.example" || r.Form.Get("scope") != "api.read" {
		t.Fatalf("client credentials form %v: want audience and scope", r.Form)
	}

	// A parameter the request has is not overridden by params; one it
	// lacks is supplied.
	scoped := srv
	scoped.Scopes, scoped.Params = nil, map[string]string{"scope": "api.write"}
	c2 := newClient(t, scoped, connectors.Options{HTTPClient: &http.Client{Transport: rec}})
	if _, err := c2.ClientCredentials(ctx, []string{"api.read"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.last(t, "/token").Form.Get("scope"); got != "api.read" {
		t.Fatalf("scope %q: the request's own scope must win over params", got)
	}
	tok, err := c2.ClientCredentials(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.last(t, "/token").Form.Get("scope"); got != "api.write" || !slices.Equal(tok.Scopes, []string{"api.write"}) {
		t.Fatalf("scope sent %q, granted %q: want api.write from params", got, tok.Scopes)
	}

	u, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "s", Params: map[string]string{"audience": "https://other.example"}})
	if err != nil {
		t.Fatal(err)
	}
	cb := p.Login(t, u, oauthpeer.LoginOptions{})
	tok, err = c.Exchange(ctx, cb.Query().Get("code"), "", nil)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if r := rec.last(t, "/token"); r.Form.Get("grant_type") != "authorization_code" || r.Form.Get("audience") != "https://api.example" {
		t.Fatalf("code exchange form %v: no audience", r.Form)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	r = rec.last(t, "/token")
	if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("audience") != "https://api.example" {
		t.Fatalf("refresh form %v: no audience", r.Form)
	}
	if r.Form.Has("scope") {
		t.Fatalf("refresh sent scope %q: a refresh keeps the grant's scopes", r.Form.Get("scope"))
	}
}
