package connectors_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

func TestAuthCodeURL(t *testing.T) {
	ctx := testCtx(t)
	srv := store.OAuthServer{
		AuthorizationEndpoint: "https://idp.example/authorize?tenant=t1",
		TokenEndpoint:         "https://idp.example/token",
		ClientID:              "cid",
		ClientSecret:          "csecret",
		Scopes:                []string{"openid", "api.read"},
		Params:                map[string]string{"audience": "https://api.example", "resource": "https://res.example"},
		UsePrompt:             true,
		RedirectURI:           "https://flowgate.example/oauth-callback",
	}
	c := newClient(t, srv, connectors.Options{})
	verifier := connectors.NewVerifier()
	if len(verifier) < 43 || verifier == connectors.NewVerifier() {
		t.Fatalf("verifier %d characters, or not random", len(verifier))
	}
	raw, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "st-1", PKCEVerifier: verifier, Params: map[string]string{"audience": "https://other.example"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sum := sha256.Sum256([]byte(verifier))
	want := map[string]string{
		"response_type":         "code",
		"client_id":             "cid",
		"redirect_uri":          srv.RedirectURI,
		"state":                 "st-1",
		"scope":                 "openid api.read",
		"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
		"code_challenge_method": "S256",
		"prompt":                "consent",
		"audience":              "https://other.example", // the request's params win
		"resource":              "https://res.example",
		"tenant":                "t1", // the endpoint's own query is kept
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if strings.Contains(raw, "csecret") || q.Has("code_verifier") || q.Has("client_secret") {
		t.Errorf("authorization URL leaks the secret or the verifier: %s", raw)
	}
	if u.Host != "idp.example" || u.Path != "/authorize" {
		t.Errorf("authorization URL %s", raw)
	}

	// The step's use_prompt and scope override the server's; no
	// verifier, no challenge.
	no := false
	raw, err = c.AuthCodeURL(ctx, connectors.AuthRequest{State: "st-2", UsePrompt: &no, Scopes: []string{"api.write"}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(raw)
	q = u.Query()
	if q.Has("prompt") || q.Has("code_challenge") || q.Get("scope") != "api.write" || q.Get("audience") != "https://api.example" {
		t.Errorf("overridden request %s", raw)
	}
	srv.UsePrompt = false
	yes := true
	for _, tc := range []struct {
		over   *bool
		prompt bool
	}{{nil, false}, {&yes, true}} {
		raw, err = newClient(t, srv, connectors.Options{}).AuthCodeURL(ctx, connectors.AuthRequest{State: "s", UsePrompt: tc.over})
		if err != nil {
			t.Fatal(err)
		}
		u, _ = url.Parse(raw)
		if got := u.Query().Get("prompt") == "consent"; got != tc.prompt {
			t.Errorf("use_prompt false, override %v: prompt=consent %t", tc.over, got)
		}
	}

	if _, err := c.AuthCodeURL(ctx, connectors.AuthRequest{}); err == nil {
		t.Error("AuthCodeURL without state: no error")
	}
	srv.AuthorizationEndpoint = ""
	_, err = newClient(t, srv, connectors.Options{}).AuthCodeURL(ctx, connectors.AuthRequest{State: "s"})
	wantKind(t, err, connectors.KindConfig)
}

// The authorization code flow through the provider's own pages, with each
// client authentication method: exchange (PKCE), refresh with rotation,
// the provider's reuse detection, and revocation.
func TestCodeFlow(t *testing.T) {
	jwks, rsaPath, _ := pkjwtKeys(t)
	p := oauthpeer.Start(t, oauthpeer.Options{PKJWTJWKS: jwks, AccessTTL: accessTTL, RedirectURI: "http://127.0.0.1:9/oauth-callback"})
	ctx := testCtx(t)
	servers := []store.OAuthServer{
		{Name: "basic", ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret},
		{Name: "post", ClientID: oauthpeer.PostClient, ClientSecret: oauthpeer.PostSecret, ClientAuth: connectors.AuthClientSecretPost},
		{Name: "jwt", ClientID: oauthpeer.JWTClient, ClientAuth: connectors.AuthPrivateKeyJWT, PrivateKeyFile: rsaPath, KeyID: "rsa-1"},
	}
	var want oauthpeer.Stats
	for _, srv := range servers {
		t.Run(srv.Name, func(t *testing.T) {
			srv.MetadataURL, srv.RedirectURI, srv.Scopes = p.MetadataURL(), p.RedirectURI(), []string{"openid", "api.read"}
			rec := &recorder{}
			c := newClient(t, srv, connectors.Options{HTTPClient: &http.Client{Transport: rec, Timeout: 5 * time.Second}})

			verifier := connectors.NewVerifier()
			yes := true
			authURL, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "state-" + srv.Name, PKCEVerifier: verifier, UsePrompt: &yes})
			if err != nil {
				t.Fatal(err)
			}
			cb := p.Login(t, authURL, oauthpeer.LoginOptions{Login: "carol"})
			q := cb.Query()
			if err := c.CallbackError(q); err != nil {
				t.Fatalf("callback error on success: %v", err)
			}
			if q.Get("state") != "state-"+srv.Name || q.Get("code") == "" {
				t.Fatalf("callback %v", q)
			}

			tok, err := c.Exchange(ctx, q.Get("code"), verifier, nil)
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			want.CodeGrants++
			if tok.AccessToken == "" || tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
				t.Fatalf("exchange gave access %t, refresh %t, type %q", tok.AccessToken != "", tok.RefreshToken != "", tok.TokenType)
			}
			if !slices.Contains(tok.Scopes, "api.read") || tok.ExpiresIn < 590 || tok.ExpiresIn > 600 {
				t.Fatalf("exchange: scopes %q, expires_in %d", tok.Scopes, tok.ExpiresIn)
			}
			if r := rec.last(t, "/token"); r.Form.Get("code_verifier") != verifier || r.Form.Get("redirect_uri") != p.RedirectURI() {
				t.Fatalf("exchange form lacks the verifier or the redirect URI: %v", r.Form.Get("redirect_uri"))
			}
			r1, err := c.Refresh(ctx, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			want.RefreshGrants++
			if !r1.Rotated || r1.RefreshToken == tok.RefreshToken || r1.RefreshToken == "" {
				t.Fatalf("refresh: rotated %t, new refresh token %t; the peer rotates on every use", r1.Rotated, r1.RefreshToken != tok.RefreshToken)
			}
			if r1.AccessToken == "" || r1.AccessToken == tok.AccessToken || r1.ExpiresIn < 590 {
				t.Fatalf("refresh: new access token %t, expires_in %d", r1.AccessToken != tok.AccessToken, r1.ExpiresIn)
			}
			if rf := rec.last(t, "/token").Form; rf.Get("grant_type") != "refresh_token" || rf.Get("refresh_token") != tok.RefreshToken {
				t.Fatal("refresh form lacks grant_type or the refresh token")
			}

			// The old refresh token again is reuse: invalid_grant, and the
			// provider revokes the grant, the new refresh token with it.
			_, err = c.Refresh(ctx, tok.RefreshToken)
			ce := wantKind(t, err, connectors.KindInvalidGrant)
			want.RefreshErrors++
			if ce.Code != "invalid_grant" || ce.Op != "refresh" {
				t.Fatalf("reuse: %+v", ce)
			}
			notIn(t, "error message", err.Error(), tok.RefreshToken, r1.RefreshToken)
			_, err = c.Refresh(ctx, r1.RefreshToken)
			wantKind(t, err, connectors.KindInvalidGrant)
			want.RefreshErrors++
			_, err = c.Refresh(ctx, "")
			wantKind(t, err, connectors.KindInvalidGrant)

			// A new login, revoked: the refresh token is dead after.
			authURL, err = c.AuthCodeURL(ctx, connectors.AuthRequest{State: "again"})
			if err != nil {
				t.Fatal(err)
			}
			tok, err = c.Exchange(ctx, p.Login(t, authURL, oauthpeer.LoginOptions{}).Query().Get("code"), "", nil)
			if err != nil {
				t.Fatalf("exchange without PKCE: %v", err)
			}
			want.CodeGrants++
			if err := c.Revoke(ctx, tok.RefreshToken, "refresh_token"); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			want.Revocations++
			if r := rec.last(t, "/revocation"); r.Form.Get("token") != tok.RefreshToken || r.Form.Get("token_type_hint") != "refresh_token" {
				t.Fatal("revocation form lacks the token or the hint")
			}
			_, err = c.Refresh(ctx, tok.RefreshToken)
			wantKind(t, err, connectors.KindInvalidGrant)
			want.RefreshErrors++

			got := p.Stats(t)
			got.ClientCredentialsGrants, got.Grants = 0, 0
			if got != want {
				t.Fatalf("provider stats %+v, want %+v", got, want)
			}
		})
	}

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		srv := servers[0]
		srv.MetadataURL, srv.RedirectURI, srv.Scopes = p.MetadataURL(), p.RedirectURI(), []string{"api.read"}
		c := newClient(t, srv, connectors.Options{})
		authURL, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "s", PKCEVerifier: connectors.NewVerifier()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Exchange(ctx, p.Login(t, authURL, oauthpeer.LoginOptions{}).Query().Get("code"), connectors.NewVerifier(), nil)
		wantKind(t, err, connectors.KindInvalidGrant)
	})

	t.Run("code used twice", func(t *testing.T) {
		srv := servers[0]
		srv.MetadataURL, srv.RedirectURI, srv.Scopes = p.MetadataURL(), p.RedirectURI(), []string{"api.read"}
		c := newClient(t, srv, connectors.Options{})
		authURL, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "s"})
		if err != nil {
			t.Fatal(err)
		}
		code := p.Login(t, authURL, oauthpeer.LoginOptions{}).Query().Get("code")
		tok, err := c.Exchange(ctx, code, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Exchange(ctx, code, "", nil)
		wantKind(t, err, connectors.KindInvalidGrant)
		// RFC 6749 §4.1.2: the provider revokes what the code gave.
		_, err = c.Refresh(ctx, tok.RefreshToken)
		wantKind(t, err, connectors.KindInvalidGrant)
	})

	t.Run("revocation refused", func(t *testing.T) {
		srv := servers[0]
		srv.MetadataURL, srv.ClientSecret = p.MetadataURL(), "not-the-secret"
		err := newClient(t, srv, connectors.Options{}).Revoke(ctx, "whatever", "")
		ce := wantKind(t, err, connectors.KindOther)
		if ce.Code != "invalid_client" || ce.Op != "revoke" {
			t.Fatalf("revoke with a wrong secret: %+v", ce)
		}
		notIn(t, "error message", err.Error(), "not-the-secret")
	})
}

// The user cancelling at the provider's consent page comes back as
// error=access_denied, which CallbackError turns into KindAccessDenied
// (oauth_user_login -2).
func TestAccessDenied(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{})
	ctx := testCtx(t)
	c := newClient(t, store.OAuthServer{MetadataURL: p.MetadataURL(), ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret,
		RedirectURI: p.RedirectURI(), Scopes: []string{"openid", "api.read"}}, connectors.Options{})
	authURL, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "deny-me", PKCEVerifier: connectors.NewVerifier()})
	if err != nil {
		t.Fatal(err)
	}
	q := p.Login(t, authURL, oauthpeer.LoginOptions{Deny: true}).Query()
	if q.Get("state") != "deny-me" || q.Has("code") {
		t.Fatalf("callback %v", q)
	}
	ce := wantKind(t, c.CallbackError(q), connectors.KindAccessDenied)
	if ce.Code != "access_denied" || ce.Op != "authorize" || ce.Description == "" {
		t.Fatalf("callback error %+v", ce)
	}
	for code, kind := range map[string]connectors.Kind{
		"temporarily_unavailable": connectors.KindUnreachable,
		"server_error":            connectors.KindUnreachable,
		"invalid_scope":           connectors.KindInvalidScope,
		"invalid_request":         connectors.KindOther,
	} {
		wantKind(t, c.CallbackError(url.Values{"error": {code}}), kind)
	}
	if s := p.Stats(t); s.CodeGrants != 0 {
		t.Fatalf("code grants %d after a denial", s.CodeGrants)
	}
}

// A provider that is not running is KindUnreachable (oauth_user_login -3)
// for every operation, discovery included.
func TestUnreachable(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{})
	ctx := testCtx(t)
	discovered := newClient(t, store.OAuthServer{MetadataURL: p.MetadataURL(), ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret}, connectors.Options{})
	configured := newClient(t, store.OAuthServer{TokenEndpoint: p.Issuer + "/token", RevocationEndpoint: p.Issuer + "/token/revocation",
		ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret}, connectors.Options{})
	// Discovered while the provider was up, then cached.
	if _, err := discovered.Endpoints(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, store.OAuthServer{MetadataURL: p.MetadataURL(), ClientID: oauthpeer.BasicClient}, connectors.Options{})
	p.Stop()

	ops := map[string]func() error{
		"discovery":          func() error { _, err := fresh.Endpoints(ctx); return err },
		"client_credentials": func() error { _, err := discovered.ClientCredentials(ctx, nil); return err },
		"exchange":           func() error { _, err := configured.Exchange(ctx, "code", "", nil); return err },
		"refresh":            func() error { _, err := configured.Refresh(ctx, "rt"); return err },
		"revoke":             func() error { return configured.Revoke(ctx, "rt", "refresh_token") },
	}
	for op, fn := range ops {
		err := fn()
		ce := wantKind(t, err, connectors.KindUnreachable)
		if ce.Op != op {
			t.Errorf("op %q, want %q", ce.Op, op)
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("%s: %v does not wrap the network error", op, err)
		}
	}
}
