package authserver

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/store"
)

// userTokens signs user in (password alicePass) with browser b, a fresh
// one when nil, and redeems the code as portal through
// golang.org/x/oauth2, the relying party's library.
func (e *env) userTokens(t *testing.T, b *http.Client, user string, scopes ...string) *oauth2.Token {
	t.Helper()
	if b == nil {
		b = browser(t)
	}
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader, scopes...)
	v := oauth2.GenerateVerifier()
	cb := e.login(b, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(v)), user, alicePass)
	if cb.Get("code") == "" {
		t.Fatalf("no code: %v", cb)
	}
	tok, err := cfg.Exchange(t.Context(), cb.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// serviceToken is a client-credentials access token of svc.
func (e *env) serviceToken(t *testing.T) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// addClient registers a confidential client_secret_post client with roles.
func (e *env) addClient(t *testing.T, id, secret string, roles ...string) {
	t.Helper()
	err := e.st.CreateClient(t.Context(), store.Client{ID: id, SecretHash: credential.HashClientSecret(e.ring, secret),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"workflows.read"}, TokenEndpointAuthMethod: "client_secret_post", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
}

// introspectAs introspects token as a client_secret_post client.
func (e *env) introspectAs(t *testing.T, clientID, secret, token string) map[string]any {
	t.Helper()
	code, m := e.tokenRequest(PathIntrospect, url.Values{"token": {token}, "client_id": {clientID}, "client_secret": {secret}}, "", "")
	if code != http.StatusOK {
		t.Fatalf("introspect as %s: %d %v", clientID, code, m)
	}
	return m
}

// TestIntrospectionOwnTokensOrRole: a client learns about its own tokens;
// another client's only with the role introspect or admin. Anyone else is
// told active: false, exactly as for an unknown token.
func TestIntrospectionOwnTokensOrRole(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	e.addClient(t, "rs", "rs-secret-0123456789", "introspect")
	e.addClient(t, "ops", "ops-secret-0123456789", "admin")
	e.addClient(t, "other", "other-secret-0123456789", "employee")
	user := e.userTokens(t, nil, "alice", "openid", "offline_access")
	svc := e.serviceToken(t)
	tokens := map[string]string{"portal access": user.AccessToken, "portal refresh": user.RefreshToken, "svc access": svc}
	owner := map[string]string{"portal access": "portal", "portal refresh": "portal", "svc access": "svc"}
	secrets := map[string]string{"portal": portalSecret, "svc": svcSecret, "rs": "rs-secret-0123456789", "ops": "ops-secret-0123456789", "other": "other-secret-0123456789"}
	for name, tok := range tokens {
		for id, secret := range secrets {
			var m map[string]any
			if id == "portal" {
				_, m = e.tokenRequest(PathIntrospect, url.Values{"token": {tok}}, "portal", portalSecret)
			} else {
				m = e.introspectAs(t, id, secret, tok)
			}
			allowed := id == owner[name] || id == "rs" || id == "ops"
			if m["active"] != allowed {
				t.Errorf("%s introspected by %s: %v, want active %v", name, id, m, allowed)
			}
			if !allowed && len(m) != 1 {
				t.Errorf("%s introspected by %s says more than active: %v", name, id, m)
			}
			if allowed && m["client_id"] != owner[name] {
				t.Errorf("%s introspected by %s: client_id %v", name, id, m["client_id"])
			}
		}
	}
}

// TestRevokeOtherClientsTokensDoesNothing: RFC 7009 §2.1 lets only the
// client a token was issued to revoke it. Another client's request is
// answered 200 (§2.2: the answer does not tell) but revokes nothing: the
// access tokens still introspect as active and work at userinfo, and the
// refresh token still refreshes.
func TestRevokeOtherClientsTokensDoesNothing(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	user := e.userTokens(t, nil, "alice", "openid", "offline_access")
	svc := e.serviceToken(t)
	for _, rv := range []struct{ by, secret, token string }{
		{"svc", svcSecret, user.AccessToken},
		{"svc", svcSecret, user.RefreshToken},
		{"portal", portalSecret, svc},
	} {
		form := url.Values{"token": {rv.token}}
		basicID, basicSecret := "", ""
		if rv.by == "portal" {
			basicID, basicSecret = "portal", portalSecret
		} else {
			form.Set("client_id", rv.by)
			form.Set("client_secret", rv.secret)
		}
		if code, m := e.tokenRequest(PathRevoke, form, basicID, basicSecret); code != http.StatusOK {
			t.Fatalf("revoke by %s: %d %v, want 200", rv.by, code, m)
		}
	}
	if m := e.introspectAs(t, "svc", svcSecret, svc); m["active"] != true {
		t.Errorf("svc's token after portal revoked it: %v", m)
	}
	// The user's access token: introspection and userinfo, through go-oidc.
	if _, m := e.tokenRequest(PathIntrospect, url.Values{"token": {user.AccessToken}}, "portal", portalSecret); m["active"] != true {
		t.Errorf("portal's access token after svc revoked it: %v", m)
	}
	provider, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if ui, err := provider.UserInfo(t.Context(), oauth2.StaticTokenSource(user)); err != nil || ui.Subject != "alice" {
		t.Errorf("userinfo with portal's access token after svc revoked it: %v %v", ui, err)
	}
	// The refresh token, through golang.org/x/oauth2.
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader)
	expired := &oauth2.Token{RefreshToken: user.RefreshToken}
	next, err := cfg.TokenSource(t.Context(), expired).Token()
	if err != nil || next.AccessToken == "" {
		t.Fatalf("refresh after svc revoked portal's refresh token: %v", err)
	}
}
