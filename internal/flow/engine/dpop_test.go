package engine_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

// TestOutboundDPoP runs flows against the oidc-provider peer with a client
// whose tokens are DPoP-bound and with server nonces required, at its
// token endpoint and at its protected resource (checked by the peer with
// jose): the service token and a user's vault token (refreshed on use,
// since it is saved expired) both reach the resource with a proof made
// with the server's key; the same resource refuses a request without one,
// and so does the token endpoint.
func TestOutboundDPoP(t *testing.T) {
	st := openStore(t)
	peer := oauthpeer.Start(t, oauthpeer.Options{DPoPNonce: true})
	if err := st.CreateOAuthServer(t.Context(), store.OAuthServer{Name: "okta", MetadataURL: peer.MetadataURL(),
		ClientID: oauthpeer.DPoPClient, ClientSecret: oauthpeer.DPoPSecret, ClientAuth: "client_secret_basic",
		Scopes: []string{"openid", "api.read"}, UsePKCE: true, RedirectURI: peer.RedirectURI(), DPoP: true}); err != nil {
		t.Fatal(err)
	}
	v := newVault(t, st)
	eng := newEngine(t, st, engine.Config{Vault: v, PublicURL: "https://flowgate.example/"})

	// alice's connection, through the provider's own login page.
	client, err := v.Client(t.Context(), "okta")
	if err != nil {
		t.Fatal(err)
	}
	if client.DPoP() == nil {
		t.Fatal("a server with dpop has no proof maker")
	}
	verifier := connectors.NewVerifier()
	authURL, err := client.AuthCodeURL(t.Context(), connectors.AuthRequest{State: "s", PKCEVerifier: verifier, Scopes: []string{"openid", "api.read", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	cb := peer.Login(t, authURL, oauthpeer.LoginOptions{})
	tok, err := client.Exchange(t.Context(), cb.Query().Get("code"), verifier, nil)
	if err != nil {
		t.Fatalf("code exchange with DPoP: %v", err)
	}
	if !strings.EqualFold(tok.TokenType, "DPoP") || tok.RefreshToken == "" {
		t.Fatalf("code exchange: token_type %q, refresh token %v", tok.TokenType, tok.RefreshToken != "")
	}
	tok.Expiry = time.Now().Add(-time.Minute) // the step's token comes from a refresh
	if err := v.Save(t.Context(), alice.User.ID, "okta", tok); err != nil {
		t.Fatal(err)
	}

	echo := peer.Issuer + oauthpeer.DPoPEchoPath
	deploy(t, eng, `
name: dpop
permissions: {start: ["role:employee"]}
steps:
  - id: tok
    type: oauth_server_login
    server: okta
    scope: api.read
  - id: svc
    type: http
    url: `+echo+`
    auth: {server: okta, as: service}
  - id: user
    type: http
    method: POST
    url: `+echo+`
    body: {x: 1}
    auth: {server: okta, as: starter}
  - id: bare
    type: http
    url: `+echo+`
  - id: done
    type: return
    body:
      code: "${{ steps.tok.output.status_code }}"
      type: "${{ steps.tok.output.token_type }}"
      svc: "${{ steps.svc.output.status }}"
      svcsub: "${{ steps.svc.output.body.sub }}"
      user: "${{ steps.user.output.status }}"
      usersub: "${{ steps.user.output.body.sub }}"
      userjkt: "${{ steps.user.output.body.jkt }}"
      svcjkt: "${{ steps.svc.output.body.jkt }}"
      bare: "${{ steps.bare.output.status }}"
`)
	started, err := eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "dpop", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, st, started.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if inst.Status != store.StatusCompleted {
		t.Fatalf("instance %s: %s", inst.Status, inst.Error)
	}
	body := responseBody(t, inst)
	if body["code"] != 0.0 || !strings.EqualFold(body["type"].(string), "DPoP") || body["svc"] != 200.0 || body["svcsub"] != oauthpeer.DPoPClient ||
		body["user"] != 200.0 || body["usersub"] == nil || body["usersub"] == oauthpeer.DPoPClient || body["bare"] != 401.0 {
		t.Fatalf("flow answered %v", body)
	}
	// One key per server: the service and the user token are bound to it.
	if body["svcjkt"] == nil || body["svcjkt"] != body["userjkt"] {
		t.Fatalf("tokens bound to %v and %v, want the server's one key", body["svcjkt"], body["userjkt"])
	}
	stats := peer.Stats(t)
	if stats.DPoPAPICalls != 2 || stats.RefreshGrants != 1 {
		t.Fatalf("peer stats %+v: want 2 DPoP resource calls and the vault's refresh", stats)
	}

	// The peer really wants proofs: a token request without one is refused.
	req, _ := http.NewRequest(http.MethodPost, peer.Issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=api.read"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthpeer.DPoPClient, oauthpeer.DPoPSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("token request without a proof: %d, want 400", resp.StatusCode)
	}
}
