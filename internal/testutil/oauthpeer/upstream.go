package oauthpeer

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Clients of the upstream identity provider (upstream.js).
const (
	UpstreamClient = "flowgate-rp"
	UpstreamSecret = "flowgate-rp-secret"
	// UpstreamJWTClient exists when Options.PKJWTJWKS is set.
	UpstreamJWTClient = "flowgate-rp-jwt"
	// AppClient gets JWT access tokens for the resource api://flowgate.
	AppClient = "app"
	AppSecret = "app-secret"
	// UpstreamAudience is the audience of the app's access tokens.
	UpstreamAudience = "api://flowgate"
)

// Account is a person at the upstream provider; the login typed on its
// page is the account id (the ID token's sub).
type Account struct {
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Name              string   `json:"name,omitempty"`
	Groups            []string `json:"groups,omitempty"`
}

// StartUpstream starts test/peers/oidc-provider/upstream.js, an identity
// provider people sign in to Flowgate through. redirectURI is Flowgate's
// /login/callback; appRedirect the app client's redirect URI.
func StartUpstream(t testing.TB, redirectURI, appRedirect string, opts Options) *Peer {
	t.Helper()
	opts.Script, opts.RedirectURI = "upstream.js", redirectURI
	if appRedirect != "" {
		opts.Env = append(opts.Env, "APP_REDIRECT="+appRedirect)
	}
	return Start(t, opts)
}

// SetAccounts replaces the upstream's accounts, by account id.
func (p *Peer) SetAccounts(t testing.TB, accounts map[string]Account) {
	t.Helper()
	body, err := json.Marshal(accounts)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, p.Issuer+"/admin/accounts", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upstream accounts: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upstream accounts: HTTP %d: %s", resp.StatusCode, b)
	}
}
